import { createHash } from 'node:crypto';
import {
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type CryptoKey,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import { LRUCache } from 'lru-cache';
import { AuthThrottle, throttleKeys } from './auth-throttle.js';
import type { Identity } from './identity.js';
import { JwksCache, JwksUnavailableError, type AuthLog, type JwksCacheStats } from './jwks-cache.js';
import { compileUserMapPattern, type IssuerConfig, type OidcConfig, type UserBinding } from './oidc-config.js';

export type { AuthLog } from './jwks-cache.js';

export const FailureReason = {
  Malformed: 'malformed',
  TooLarge: 'too_large',
  AlgNotAllowed: 'alg_not_allowed',
  UnknownIssuer: 'unknown_issuer',
  BadSignature: 'bad_signature',
  UnknownKey: 'unknown_key',
  Expired: 'expired',
  NotYetValid: 'not_yet_valid',
  WrongAudience: 'wrong_audience',
  WrongIssuer: 'wrong_issuer',
  MissingUsername: 'missing_username',
  UserMismatch: 'user_mismatch',
  JwksUnavailable: 'jwks_unavailable',
  Throttled: 'throttled',
} as const;
export type FailureReason = (typeof FailureReason)[keyof typeof FailureReason];

/**
 * `detail` is for the audit log only; clients get a generic 28P01/28000 so
 * they cannot probe which check failed.
 */
export type VerifyResult =
  | { ok: true; identity: Identity; cached: boolean }
  | { ok: false; reason: FailureReason; detail: string };

export interface VerifierOptions {
  fetch?: typeof fetch;
  /** Milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
  log?: AuthLog;
  /**
   * Failure throttle consulted on every verify. Defaults to one built from
   * config.throttle; pass a shared instance to pool counts across verifiers,
   * or false to leave throttling entirely to the caller.
   */
  throttle?: AuthThrottle | false;
}

export interface VerifyContext {
  /** Client address, for per-address throttling. */
  remoteAddress?: string | undefined;
}

/** Reasons that say nothing about the client and must not lock it out. */
const NOT_CLIENT_FAULT: ReadonlySet<FailureReason> = new Set([FailureReason.JwksUnavailable, FailureReason.Throttled]);

// Compact JWS is three base64url segments (RFC 7515 §7.1); anything else,
// including a five-part JWE, is refused before a byte is decoded.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_USERNAME_LENGTH = 1024;
// A key-id-less token against a JWKS with several same-type keys may try this many.
const MAX_CANDIDATE_KEYS = 5;

interface VerifiedToken {
  readonly issuer: IssuerConfig;
  readonly claims: Readonly<Record<string, unknown>>;
  readonly username: string;
  readonly groups: readonly string[];
  readonly exp: number;
}

type Failure = Extract<VerifyResult, { ok: false }>;

function fail(reason: FailureReason, detail: string): Failure {
  return { ok: false, reason, detail };
}

class VerifyFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.detail);
  }
}

interface CompiledMapEntry {
  readonly re: RegExp;
  readonly user: string;
}

/**
 * Turns an OIDC token presented as a PostgreSQL password into an Identity.
 * Knows nothing about sockets or the wire protocol; may fetch the issuers'
 * discovery documents and key sets.
 */
export class OidcVerifier {
  private readonly config: OidcConfig;
  private readonly now: () => number;
  private readonly log: AuthLog | undefined;
  private readonly throttle: AuthThrottle | undefined;
  private readonly issuers: ReadonlyMap<string, { config: IssuerConfig; keys: JwksCache }>;
  private readonly tokenCache: LRUCache<string, VerifiedToken> | undefined;
  private readonly userMap: readonly CompiledMapEntry[];
  private readonly algorithms: readonly string[];

  constructor(config: OidcConfig, options: VerifierOptions = {}) {
    this.config = config;
    this.now = options.now ?? Date.now;
    this.log = options.log;
    this.throttle =
      options.throttle === false ? undefined : (options.throttle ?? new AuthThrottle({ ...config.throttle, now: this.now }));
    // Belt and braces: the schema already refuses these, but a hand-built
    // config must not smuggle them in either (RFC 8725 §3.1).
    this.algorithms = config.algorithms.filter((a) => a.toLowerCase() !== 'none' && !/^HS/i.test(a));
    if (this.algorithms.length === 0) throw new Error('no asymmetric algorithms configured');
    const fetchImpl = options.fetch ?? globalThis.fetch;
    const issuers = new Map<string, { config: IssuerConfig; keys: JwksCache }>();
    for (const issuer of config.issuers) {
      issuers.set(issuer.issuer, {
        config: issuer,
        keys: new JwksCache({
          issuer: issuer.issuer,
          jwksUri: issuer.jwksUri,
          allowInsecureHttp: issuer.allowInsecureHttp,
          fetch: fetchImpl,
          now: this.now,
          cooldownMs: config.jwksCooldownSeconds * 1000,
          maxAgeMs: config.jwksCacheMaxAgeSeconds * 1000,
          timeoutMs: config.fetchTimeoutSeconds * 1000,
          log: this.log,
        }),
      });
    }
    this.issuers = issuers;
    this.tokenCache =
      config.tokenCacheSize > 0
        ? new LRUCache<string, VerifiedToken>({
            max: config.tokenCacheSize,
            ttl: config.tokenCacheTtlSeconds * 1000,
            ttlResolution: 0,
            perf: { now: this.now },
          })
        : undefined;
    this.userMap = compileUserMap(config.userBinding);
  }

  /**
   * Verify `token` for a client that asked to log in as `startupUser`.
   * Never throws for a bad token; every refusal is a VerifyResult.
   */
  async verify(token: string, startupUser: string, context: VerifyContext = {}): Promise<VerifyResult> {
    const keys = throttleKeys({ remoteAddress: context.remoteAddress, user: startupUser });
    if (this.throttle) {
      const decision = this.throttle.check(keys);
      if (!decision.allowed) {
        return fail(FailureReason.Throttled, `too many failures for ${decision.key}; retry in ${decision.retryAfterSeconds}s`);
      }
    }
    let result: VerifyResult;
    try {
      result = await this.verifyUnthrottled(token, startupUser);
    } catch (err) {
      // Unreachable by design; fail closed if it ever happens.
      result = fail(FailureReason.BadSignature, `verification error: ${(err as Error).message}`);
    }
    if (!result.ok && this.throttle && !NOT_CLIENT_FAULT.has(result.reason)) this.throttle.recordFailure(keys);
    return result;
  }

  /** Key-set counters per issuer, e.g. for metrics and tests. */
  jwksStats(): Record<string, JwksCacheStats> {
    const out: Record<string, JwksCacheStats> = {};
    for (const [iss, { keys }] of this.issuers) out[iss] = keys.stats();
    return out;
  }

  /** Drop every cached verification (e.g. after a config reload). */
  clearTokenCache(): void {
    this.tokenCache?.clear();
  }

  private async verifyUnthrottled(token: string, startupUser: string): Promise<VerifyResult> {
    const max = this.config.maxTokenBytes;
    if (typeof token !== 'string') return fail(FailureReason.Malformed, 'token is not a string');
    // Length first: UTF-8 never has fewer bytes than UTF-16 code units, so this
    // refuses a huge string without walking it.
    if (token.length > max || Buffer.byteLength(token, 'utf8') > max) {
      return fail(FailureReason.TooLarge, `token exceeds ${max} bytes`);
    }
    if (!COMPACT_JWS.test(token)) {
      const parts = token.split('.').length;
      return fail(FailureReason.Malformed, parts === 5 ? 'encrypted tokens (JWE) are not supported' : 'not a compact JWS');
    }

    const cacheKey = this.tokenCache ? sha256(token) : undefined;
    if (cacheKey !== undefined) {
      const hit = this.tokenCache!.get(cacheKey);
      if (hit) {
        // The TTL already stops at exp; this guards against clock steps.
        if (hit.exp * 1000 > this.now()) return this.bind(hit, startupUser, true);
        this.tokenCache!.delete(cacheKey);
      }
    }

    let verified: VerifiedToken;
    try {
      verified = await this.verifyToken(token);
    } catch (err) {
      if (err instanceof VerifyFailure) return err.failure;
      return mapJoseError(err);
    }
    if (cacheKey !== undefined) {
      const ttl = Math.min(this.config.tokenCacheTtlSeconds * 1000, verified.exp * 1000 - this.now());
      if (ttl > 0) this.tokenCache!.set(cacheKey, verified, { ttl });
    }
    return this.bind(verified, startupUser, false);
  }

  private async verifyToken(token: string): Promise<VerifiedToken> {
    // Unverified decoding only picks the issuer and rejects bad algorithms
    // early; no decoded value is trusted before jwtVerify succeeds.
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch (err) {
      throw new VerifyFailure(fail(FailureReason.Malformed, `cannot decode token: ${(err as Error).message}`));
    }
    if (typeof alg !== 'string' || !this.algorithms.includes(alg)) {
      throw new VerifyFailure(fail(FailureReason.AlgNotAllowed, `algorithm ${JSON.stringify(alg)} is not allowed`));
    }
    if (typeof iss !== 'string' || iss === '') throw new VerifyFailure(fail(FailureReason.Malformed, 'token has no "iss" claim'));
    const issuer = this.issuers.get(iss);
    if (!issuer) {
      // OIDC Core §3.1.3.7 step 2: iss must match exactly; tell near misses
      // apart in the audit log because they are usually config typos.
      const near = [...this.issuers.keys()].find((known) => sameIssuerLoosely(known, iss));
      if (near !== undefined) {
        throw new VerifyFailure(fail(FailureReason.WrongIssuer, `token iss ${JSON.stringify(iss)} does not exactly match configured ${near}`));
      }
      throw new VerifyFailure(fail(FailureReason.UnknownIssuer, `issuer ${JSON.stringify(iss)} is not configured`));
    }

    const options: JWTVerifyOptions = {
      issuer: issuer.config.issuer,
      audience: [...issuer.config.audience],
      algorithms: [...this.algorithms],
      clockTolerance: this.config.clockToleranceSeconds,
      currentDate: new Date(this.now()),
      requiredClaims: ['exp'],
    };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, issuer.keys.getKey, options));
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
      payload = await this.verifyWithCandidates(token, err, options);
    }

    const claims = deepFreeze(payload as Record<string, unknown>);
    const username = extractUsername(claims, issuer.config.usernameClaims);
    if (typeof username !== 'string') throw new VerifyFailure(fail(FailureReason.MissingUsername, username.problem));
    return {
      issuer: issuer.config,
      claims,
      username,
      groups: extractGroups(claims, issuer.config.groupsClaims),
      // requiredClaims guarantees a numeric exp.
      exp: payload.exp!,
    };
  }

  /** RFC 7515 §6: without a kid the verifier may try each plausible key. */
  private async verifyWithCandidates(
    token: string,
    err: InstanceType<typeof joseErrors.JWKSMultipleMatchingKeys>,
    options: JWTVerifyOptions,
  ): Promise<JWTPayload> {
    let tried = 0;
    for await (const key of err as unknown as AsyncIterable<CryptoKey>) {
      if (++tried > MAX_CANDIDATE_KEYS) break;
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new joseErrors.JWSSignatureVerificationFailed();
  }

  private bind(token: VerifiedToken, startupUser: string, cached: boolean): VerifyResult {
    const user = this.bindUser(token.username, startupUser);
    if (user === undefined) {
      return fail(FailureReason.UserMismatch, `token user ${JSON.stringify(token.username)} may not log in as ${JSON.stringify(startupUser)} (binding ${this.config.userBinding.mode})`);
    }
    const identity: Identity = {
      user,
      groups: token.groups,
      claims: token.claims,
      source: 'oidc',
      issuer: token.issuer.issuer,
      expiresAt: token.exp,
    };
    const sub = token.claims['sub'];
    if (typeof sub === 'string') identity.subject = sub;
    return { ok: true, identity: Object.freeze(identity), cached };
  }

  /** The PostgreSQL user this token may act as, or undefined. */
  private bindUser(tokenUser: string, startupUser: string): string | undefined {
    const binding: UserBinding = this.config.userBinding;
    switch (binding.mode) {
      case 'match':
        return tokenUser === startupUser ? startupUser : undefined;
      case 'any':
        return tokenUser;
      case 'map':
        // pg_ident semantics: any line that maps the token user onto the
        // requested user grants it.
        for (const entry of this.userMap) {
          const m = entry.re.exec(tokenUser);
          if (!m) continue;
          const target = entry.user.replace(/\\(\d)/g, (_, d: string) => m[Number(d)] ?? '');
          if (target === startupUser) return startupUser;
        }
        return undefined;
    }
  }
}

function compileUserMap(binding: UserBinding): CompiledMapEntry[] {
  if (binding.mode !== 'map') return [];
  return binding.map.map((e) => ({ re: compileUserMapPattern(e.token), user: e.user }));
}

function sha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

function sameIssuerLoosely(a: string, b: string): boolean {
  const norm = (s: string) => {
    try {
      const u = new URL(s);
      return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`.toLowerCase();
    } catch {
      return s.replace(/\/+$/, '').toLowerCase();
    }
  };
  return norm(a) === norm(b);
}

/**
 * Resolve a dotted claim path. A segment may itself contain dots — the
 * Kubernetes claim is literally named "kubernetes.io" — so the longest
 * existing key wins at each level.
 */
export function getClaim(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  const parts = path.split('.');
  for (let i = parts.length - 1; i >= 1; i -= 1) {
    const head = parts.slice(0, i).join('.');
    if (!Object.hasOwn(claims, head)) continue;
    const next = claims[head];
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) {
      const found = getClaim(next as Record<string, unknown>, parts.slice(i).join('.'));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function extractUsername(claims: Readonly<Record<string, unknown>>, paths: readonly string[]): string | { problem: string } {
  for (const path of paths) {
    const value = getClaim(claims, path);
    if (typeof value !== 'string' || value === '') continue;
    // PostgreSQL strings are NUL-terminated; a NUL would let the name be
    // read differently downstream.
    if (value.includes('\0')) return { problem: `claim ${path} contains NUL` };
    if (value.length > MAX_USERNAME_LENGTH) return { problem: `claim ${path} is longer than ${MAX_USERNAME_LENGTH}` };
    return value;
  }
  return { problem: `none of the claims ${paths.join(', ')} holds a non-empty string` };
}

function extractGroups(claims: Readonly<Record<string, unknown>>, paths: readonly string[]): readonly string[] {
  const out = new Set<string>();
  for (const path of paths) {
    const value = getClaim(claims, path);
    if (typeof value === 'string') {
      if (value !== '') out.add(value);
    } else if (Array.isArray(value)) {
      for (const g of value) if (typeof g === 'string' && g !== '') out.add(g);
    }
  }
  return Object.freeze([...out]);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function mapJoseError(err: unknown): Failure {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof JwksUnavailableError) return fail(FailureReason.JwksUnavailable, message);
  if (err instanceof joseErrors.JWTExpired) return fail(FailureReason.Expired, message);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' && err.reason === 'check_failed') return fail(FailureReason.NotYetValid, message);
    if (err.claim === 'aud') return fail(FailureReason.WrongAudience, message);
    if (err.claim === 'iss') return fail(FailureReason.WrongIssuer, message);
    return fail(FailureReason.Malformed, message);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return fail(FailureReason.BadSignature, 'signature verification failed');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return fail(FailureReason.UnknownKey, 'no published key matches the token kid/alg');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return fail(FailureReason.AlgNotAllowed, message);
  // The issuer published something unusable; not the client's doing.
  if (err instanceof joseErrors.JWKSInvalid || err instanceof joseErrors.JWKInvalid) return fail(FailureReason.JwksUnavailable, message);
  // JOSENotSupported here means an unrecognised "crit" extension (RFC 7515
  // §4.1.11: must be refused) since algorithms were screened earlier.
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JOSENotSupported) {
    return fail(FailureReason.Malformed, message);
  }
  // Anything unexpected refuses the token.
  return fail(FailureReason.BadSignature, `verification error: ${message}`);
}
