import { randomBytes, randomUUID } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { IssuerConfig } from './oidc-config.js';

export const DevIssuerAlg = { ES256: 'ES256', RS256: 'RS256' } as const;
export type DevIssuerAlg = (typeof DevIssuerAlg)[keyof typeof DevIssuerAlg];

export const DEV_ISSUER_KEY_FILE = 'dev-issuer-key.json';
/** Path of the dev issuer below the admin server's base URL. */
export const DEV_ISSUER_PATH = '/dev-issuer';
export const DEV_ISSUER_DEFAULT_AUDIENCE = 'pgward';

export interface DevIssuerOptions {
  /** Algorithm for a newly generated key; an existing key keeps its own. */
  alg?: DevIssuerAlg;
  /** Admin base URL (`http://127.0.0.1:<port>`), so mint() needs no baseUrl. */
  baseUrl?: string;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

export interface MintOptions {
  sub: string;
  groups?: readonly string[];
  /** Extra claims; registered claims (iss, sub, aud, exp, nbf, iat, jti) are always set by mint. */
  claims?: Readonly<Record<string, unknown>>;
  ttlSeconds?: number;
  audience?: string | readonly string[];
  /** Overrides the baseUrl given to loadOrCreate. */
  baseUrl?: string;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const MAX_TTL_SECONDS = 7 * 24 * 3600;

/**
 * A local token issuer for development: one signing key kept on disk, its
 * public JWKS and discovery document for the admin server to serve, and a
 * mint() for `pgward token`. The config schema refuses it alongside real
 * issuers, because whoever reads the key file can mint any identity.
 */
export class DevIssuer {
  readonly kid: string;
  readonly alg: DevIssuerAlg;
  private readonly privateKey: CryptoKey;
  private readonly publicJwk: Readonly<JWK>;
  private readonly baseUrl: string | undefined;
  private readonly now: () => number;

  private constructor(args: { kid: string; alg: DevIssuerAlg; privateKey: CryptoKey; publicJwk: JWK; options: DevIssuerOptions }) {
    this.kid = args.kid;
    this.alg = args.alg;
    this.privateKey = args.privateKey;
    this.publicJwk = Object.freeze(args.publicJwk);
    this.baseUrl = args.options.baseUrl;
    this.now = args.options.now ?? Date.now;
  }

  /**
   * Load `dir/dev-issuer-key.json`, creating it (mode 0600) on first use.
   * Refuses a key file readable by group or others, as ssh does.
   */
  static async loadOrCreate(dir: string, options: DevIssuerOptions = {}): Promise<DevIssuer> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, DEV_ISSUER_KEY_FILE);
    let jwk = await readKeyFile(path);
    if (!jwk) {
      const created = await generateJwk(options.alg ?? DevIssuerAlg.ES256);
      jwk = (await publishKeyFile(path, created)) ? created : await readKeyFile(path);
      if (!jwk) throw new Error(`${path} vanished while loading`);
    }
    const alg = jwk.alg as DevIssuerAlg;
    const privateKey = (await importJWK(jwk, alg)) as CryptoKey;
    const publicJwk: JWK = { ...jwk };
    for (const m of PRIVATE_MEMBERS) delete publicJwk[m];
    return new DevIssuer({ kid: jwk.kid!, alg, privateKey, publicJwk, options });
  }

  issuerUrl(adminBaseUrl: string): string {
    return `${trimBase(adminBaseUrl)}${DEV_ISSUER_PATH}`;
  }

  jwksUri(adminBaseUrl: string): string {
    return `${this.issuerUrl(adminBaseUrl)}/jwks`;
  }

  /** Public key set, to be served at jwksUri(). */
  jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.publicJwk }] };
  }

  /** Served at `<issuerUrl>/.well-known/openid-configuration`. */
  openidConfiguration(adminBaseUrl: string): Record<string, unknown> {
    return {
      issuer: this.issuerUrl(adminBaseUrl),
      jwks_uri: this.jwksUri(adminBaseUrl),
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [this.alg],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'preferred_username', 'groups'],
    };
  }

  /** Issuer entry for the verifier (config validation forbids mixing it with real issuers). */
  issuerConfig(adminBaseUrl: string, audience: string = DEV_ISSUER_DEFAULT_AUDIENCE): IssuerConfig {
    return {
      issuer: this.issuerUrl(adminBaseUrl),
      audience: [audience],
      usernameClaims: ['preferred_username'],
      groupsClaims: ['groups'],
      allowInsecureHttp: false,
    };
  }

  async mint(options: MintOptions): Promise<string> {
    const base = options.baseUrl ?? this.baseUrl;
    if (base === undefined) throw new Error('DevIssuer.mint needs a baseUrl (pass it here or to loadOrCreate)');
    if (!options.sub) throw new Error('DevIssuer.mint needs a non-empty sub');
    const ttl = options.ttlSeconds ?? 3600;
    if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TTL_SECONDS) {
      throw new Error(`ttlSeconds must be an integer in 1..${MAX_TTL_SECONDS}`);
    }
    const nowSeconds = Math.floor(this.now() / 1000);
    const payload: Record<string, unknown> = { ...options.claims, preferred_username: options.sub };
    if (options.groups !== undefined) payload['groups'] = [...options.groups];
    const audience = options.audience ?? DEV_ISSUER_DEFAULT_AUDIENCE;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: this.alg, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuerUrl(base))
      .setSubject(options.sub)
      .setAudience(typeof audience === 'string' ? audience : [...audience])
      .setIssuedAt(nowSeconds)
      .setNotBefore(nowSeconds)
      .setExpirationTime(nowSeconds + ttl)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }
}

function trimBase(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`admin base URL must be http(s): ${url}`);
  return url.replace(/\/+$/, '');
}

async function generateJwk(alg: DevIssuerAlg): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  // RFC 7638 thumbprint: a stable kid derived from the key itself.
  const kid = await calculateJwkThumbprint(jwk);
  return { ...jwk, kid, alg, use: 'sig' };
}

/**
 * Write the key completely under a private temporary name, then link it into
 * place: link() fails if the name exists, so of two racing first runs exactly
 * one wins and the loser never reads a half-written file. False = lost.
 */
async function publishKeyFile(path: string, jwk: JWK): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function readKeyFile(path: string): Promise<JWK | undefined> {
  let text: string;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new Error(`${path} is accessible by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch (err) {
    throw new Error(`${path} is not valid JSON`, { cause: err });
  }
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string' || typeof jwk.kid !== 'string') {
    throw new Error(`${path} does not hold a private JWK with a kid`);
  }
  if (jwk.alg !== DevIssuerAlg.ES256 && jwk.alg !== DevIssuerAlg.RS256) {
    throw new Error(`${path} has unsupported alg ${String(jwk.alg)}`);
  }
  return jwk;
}
