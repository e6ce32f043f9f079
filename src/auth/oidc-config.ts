import { z } from 'zod';

/**
 * The `auth` section of the pgward configuration. Parsing resolves presets
 * and defaults, so consumers only ever see the resolved shapes below.
 */

export const AuthMode = { Passthrough: 'passthrough', Oidc: 'oidc' } as const;
export type AuthMode = (typeof AuthMode)[keyof typeof AuthMode];

export const IssuerPreset = { Kubernetes: 'kubernetes', Azure: 'azure' } as const;
export type IssuerPreset = (typeof IssuerPreset)[keyof typeof IssuerPreset];

/** Asymmetric JWS algorithms jose can verify against a public JWKS. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA', 'Ed25519',
] as const;
export type JwsAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export const DEFAULT_ALGORITHMS: readonly JwsAlgorithm[] = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
];

/**
 * Claim defaults per preset; explicit `usernameClaim`/`groupsClaim` win.
 * - kubernetes: service-account tokens carry `sub` = system:serviceaccount:<ns>:<name>
 *   and no groups; `kubernetes.io.namespace` etc. stay readable in `claims`.
 * - azure: `upn` exists for users only, so fall back to `preferred_username`;
 *   app roles arrive in `roles`, security groups in `groups`.
 */
export const ISSUER_PRESETS: Readonly<Record<IssuerPreset, { usernameClaims: readonly string[]; groupsClaims: readonly string[] }>> = {
  kubernetes: { usernameClaims: ['sub'], groupsClaims: [] },
  azure: { usernameClaims: ['upn', 'preferred_username'], groupsClaims: ['groups', 'roles'] },
};

const DEFAULT_USERNAME_CLAIMS: readonly string[] = ['preferred_username'];
const DEFAULT_GROUPS_CLAIMS: readonly string[] = ['groups'];

/** Issuer after parsing: presets applied, single values widened to lists. */
export interface IssuerConfig {
  issuer: string;
  audience: readonly string[];
  jwksUri?: string;
  /** Tried in order; the first non-empty string wins. Dotted paths allowed. */
  usernameClaims: readonly string[];
  /** All listed claims are merged. Empty = the issuer carries no groups. */
  groupsClaims: readonly string[];
  preset?: IssuerPreset;
  allowInsecureHttp: boolean;
}

export interface UserMapEntry {
  /** Source text of the pattern, implicitly anchored at both ends. */
  token: string;
  /** Target PostgreSQL user; `\1`..`\9` refer to capture groups of `token`. */
  user: string;
}

export type UserBinding =
  | { mode: 'match' }
  | { mode: 'any' }
  | { mode: 'map'; map: readonly UserMapEntry[] };

export interface ThrottleConfig {
  maxFailures: number;
  windowSeconds: number;
  lockoutSeconds: number;
}

export interface OidcConfig {
  issuers: readonly IssuerConfig[];
  clockToleranceSeconds: number;
  algorithms: readonly JwsAlgorithm[];
  tokenCacheSize: number;
  tokenCacheTtlSeconds: number;
  maxTokenBytes: number;
  jwksCooldownSeconds: number;
  jwksCacheMaxAgeSeconds: number;
  fetchTimeoutSeconds: number;
  userBinding: UserBinding;
  maxSessionLifetimeSeconds?: number;
  terminateAtExpiry: boolean;
  throttle: ThrottleConfig;
  devIssuer?: { enabled: boolean };
  /** Offer SASL OAUTHBEARER (PostgreSQL 18 libpq, RFC 7628) instead of a cleartext password prompt. */
  oauthBearer: { enabled: boolean; scope: string; issuer?: string };
}

export interface AuthConfig {
  mode: AuthMode;
  oidc?: OidcConfig;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

function isLoopback(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

/**
 * Keys fetched over plain HTTP can be swapped by anyone on the path, which
 * hands them every identity; only loopback (or an explicit opt-in) may skip TLS.
 * OIDC Discovery 1.0 §3 / RFC 8414 §2: the issuer uses https, no query or fragment.
 */
export function endpointUrlProblem(value: string, allowInsecureHttp: boolean, what: string, isIssuer: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${what} is not a URL: ${value}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `${what} must be an https URL`;
  if (url.protocol === 'http:' && !allowInsecureHttp && !isLoopback(url)) {
    return `${what} must use https (plain http only for loopback, or set allowInsecureHttp)`;
  }
  if (url.username || url.password) return `${what} must not embed credentials`;
  if (isIssuer && (url.search || url.hash)) return `${what} must not have a query or fragment`;
  return undefined;
}

/** `a.b.c`; segments may themselves contain dots (resolved against the payload). */
const claimPathSchema = z.string().min(1).max(256);

const algorithmSchema = z.string().transform((alg, ctx): JwsAlgorithm => {
  // RFC 8725 §2.1, §3.1: "none" turns verification off, and an HMAC alg lets a
  // published public key be used as the shared secret. Neither may be configurable.
  if (alg.toLowerCase() === 'none') {
    ctx.addIssue({ code: 'custom', message: 'algorithm "none" is never accepted' });
    return z.NEVER;
  }
  if (/^HS\d+$/i.test(alg)) {
    ctx.addIssue({ code: 'custom', message: `symmetric algorithm ${alg} is never accepted; issuers publish public keys` });
    return z.NEVER;
  }
  if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
    ctx.addIssue({ code: 'custom', message: `unsupported algorithm ${alg}; use one of ${ASYMMETRIC_ALGORITHMS.join(', ')}` });
    return z.NEVER;
  }
  return alg as JwsAlgorithm;
});

const issuerSchema = z
  .strictObject({
    issuer: z.string().min(1),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    jwksUri: z.string().min(1).optional(),
    usernameClaim: z.union([claimPathSchema, z.array(claimPathSchema).min(1)]).optional(),
    groupsClaim: z.union([claimPathSchema, z.array(claimPathSchema), z.null(), z.literal(false)]).optional(),
    preset: z.enum([IssuerPreset.Kubernetes, IssuerPreset.Azure]).optional(),
    allowInsecureHttp: z.boolean().default(false),
  })
  .transform((raw, ctx): IssuerConfig => {
    const issuerProblem = endpointUrlProblem(raw.issuer, raw.allowInsecureHttp, 'issuer', true);
    if (issuerProblem) ctx.addIssue({ code: 'custom', message: issuerProblem, path: ['issuer'] });
    if (raw.jwksUri !== undefined) {
      const problem = endpointUrlProblem(raw.jwksUri, raw.allowInsecureHttp, 'jwksUri', false);
      if (problem) ctx.addIssue({ code: 'custom', message: problem, path: ['jwksUri'] });
    }
    const preset = raw.preset ? ISSUER_PRESETS[raw.preset] : undefined;
    const usernameClaims =
      raw.usernameClaim === undefined
        ? (preset?.usernameClaims ?? DEFAULT_USERNAME_CLAIMS)
        : typeof raw.usernameClaim === 'string' ? [raw.usernameClaim] : raw.usernameClaim;
    const groupsClaims =
      raw.groupsClaim === undefined
        ? (preset?.groupsClaims ?? DEFAULT_GROUPS_CLAIMS)
        : raw.groupsClaim === null || raw.groupsClaim === false ? []
          : typeof raw.groupsClaim === 'string' ? [raw.groupsClaim] : raw.groupsClaim;
    const resolved: IssuerConfig = {
      issuer: raw.issuer,
      audience: typeof raw.audience === 'string' ? [raw.audience] : raw.audience,
      usernameClaims,
      groupsClaims,
      allowInsecureHttp: raw.allowInsecureHttp,
    };
    if (raw.jwksUri !== undefined) resolved.jwksUri = raw.jwksUri;
    if (raw.preset !== undefined) resolved.preset = raw.preset;
    return resolved;
  });

/** Number of capture groups a pattern defines (an empty alternative always matches). */
function captureGroupCount(re: RegExp): number {
  return (new RegExp(`${re.source}|`, re.flags).exec('')?.length ?? 1) - 1;
}

/** Compile a user-map pattern the way the verifier uses it: anchored, unicode. */
export function compileUserMapPattern(token: string): RegExp {
  return new RegExp(`^(?:${token})$`, 'u');
}

const userMapEntrySchema = z
  .strictObject({ token: z.string().min(1).max(1024), user: z.string().min(1).max(256) })
  .superRefine((entry, ctx) => {
    let re: RegExp;
    try {
      re = compileUserMapPattern(entry.token);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `invalid regex: ${(err as Error).message}`, path: ['token'] });
      return;
    }
    const groups = captureGroupCount(re);
    for (const m of entry.user.matchAll(/\\(\d)/g)) {
      if (Number(m[1]) > groups || m[1] === '0') {
        ctx.addIssue({ code: 'custom', message: `${m[0]} does not name a capture group of token`, path: ['user'] });
      }
    }
  });

const userBindingSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('match') }),
  z.strictObject({ mode: z.literal('any') }),
  z.strictObject({ mode: z.literal('map'), map: z.array(userMapEntrySchema).min(1) }),
]);

const throttleSchema = z.strictObject({
  maxFailures: z.number().int().min(1).default(5),
  windowSeconds: z.number().positive().default(60),
  lockoutSeconds: z.number().min(0).default(60),
});

export const oidcConfigSchema = z
  .strictObject({
    issuers: z.array(issuerSchema).default([]),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
    algorithms: z.array(algorithmSchema).min(1).default([...DEFAULT_ALGORITHMS]),
    tokenCacheSize: z.number().int().min(0).default(10_000),
    tokenCacheTtlSeconds: z.number().int().min(1).default(300),
    // The issue asks that at least 16 KiB tokens be accepted (Azure tokens
    // with many groups get large); the ceiling bounds work per attempt.
    maxTokenBytes: z.number().int().min(16_384).max(1_048_576).default(65_536),
    jwksCooldownSeconds: z.number().min(0).default(30),
    jwksCacheMaxAgeSeconds: z.number().positive().default(600),
    fetchTimeoutSeconds: z.number().positive().max(60).default(5),
    userBinding: userBindingSchema.prefault({ mode: 'match' }),
    maxSessionLifetimeSeconds: z.number().int().positive().optional(),
    terminateAtExpiry: z.boolean().default(true),
    throttle: throttleSchema.prefault({}),
    devIssuer: z.strictObject({ enabled: z.boolean() }).optional(),
    oauthBearer: z
      .strictObject({
        enabled: z.boolean().default(false),
        scope: z.string().min(1).default('openid'),
        /** The issuer advertised to clients for discovery; defaults to the first configured one. */
        issuer: z.string().min(1).optional(),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const dev = cfg.devIssuer?.enabled === true;
    if (dev && cfg.issuers.length > 0) {
      // A dev key on disk next to production issuers would let anyone who can
      // read that file mint tokens the production verifier accepts.
      ctx.addIssue({ code: 'custom', message: 'devIssuer.enabled cannot be combined with configured issuers', path: ['devIssuer'] });
    }
    if (!dev && cfg.issuers.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'at least one issuer is required (or enable devIssuer)', path: ['issuers'] });
    }
    const advertised = cfg.oauthBearer.issuer;
    if (advertised !== undefined && !cfg.issuers.some((iss) => iss.issuer === advertised)) {
      ctx.addIssue({ code: 'custom', message: `oauthBearer.issuer ${advertised} is not a configured issuer`, path: ['oauthBearer', 'issuer'] });
    }
    const seen = new Set<string>();
    cfg.issuers.forEach((iss, i) => {
      if (seen.has(iss.issuer)) ctx.addIssue({ code: 'custom', message: `duplicate issuer ${iss.issuer}`, path: ['issuers', i, 'issuer'] });
      seen.add(iss.issuer);
    });
  }) satisfies z.ZodType<OidcConfig, unknown>;

export const authConfigSchema = z
  .strictObject({
    mode: z.enum([AuthMode.Passthrough, AuthMode.Oidc]).default(AuthMode.Passthrough),
    oidc: oidcConfigSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.mode === AuthMode.Oidc && cfg.oidc === undefined) {
      ctx.addIssue({ code: 'custom', message: 'auth.mode "oidc" requires an auth.oidc section', path: ['oidc'] });
    }
  }) satisfies z.ZodType<AuthConfig, unknown>;

export type OidcConfigInput = z.input<typeof oidcConfigSchema>;
export type IssuerConfigInput = z.input<typeof issuerSchema>;
export type AuthConfigInput = z.input<typeof authConfigSchema>;

/** Parse and resolve; throws a ZodError naming every problem. */
export function parseAuthConfig(input: unknown): AuthConfig {
  return authConfigSchema.parse(input);
}

export function parseOidcConfig(input: unknown): OidcConfig {
  return oidcConfigSchema.parse(input);
}
