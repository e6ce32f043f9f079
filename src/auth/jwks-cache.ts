import {
  createLocalJWKSet,
  errors as joseErrors,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type LocalJWKSet,
} from 'jose';
import { endpointUrlProblem } from './oidc-config.js';

/** Structured log sink; the auth stage never logs token text. */
export type AuthLog = (
  level: 'debug' | 'info' | 'warn' | 'error',
  event: string,
  fields?: Readonly<Record<string, unknown>>,
) => void;

/** The issuer's keys could not be obtained; never the client's fault. */
export class JwksUnavailableError extends Error {
  override readonly name = 'JwksUnavailableError';
}

export interface JwksCacheOptions {
  issuer: string;
  /** Skip discovery and fetch keys from here. */
  jwksUri?: string | undefined;
  allowInsecureHttp: boolean;
  fetch: typeof fetch;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** After a successful fetch, an unknown `kid` may not trigger another one for this long. */
  cooldownMs: number;
  /** Keys older than this are refetched before use. */
  maxAgeMs: number;
  timeoutMs: number;
  /** Cap on a discovery or JWKS response body. */
  maxResponseBytes?: number;
  log?: AuthLog | undefined;
}

export interface JwksCacheStats {
  discoveryFetches: number;
  jwksFetches: number;
  failures: number;
  /** Epoch ms of the last successful JWKS fetch. */
  fetchedAt?: number;
}

interface Snapshot {
  readonly resolve: LocalJWKSet;
  readonly fetchedAt: number;
  readonly kids: readonly string[];
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
// A failed fetch is not retried sooner than this, so an issuer outage does
// not turn every login attempt into an outbound request.
const MAX_FAILURE_BACKOFF_MS = 5_000;

/**
 * Public keys of one issuer. Keys are fetched lazily, refreshed when older
 * than maxAge, and refetched on an unknown `kid` at most once per cooldown (counted between
 * unknown-kid refetches, so a rotation just after a routine fetch is seen);
 * concurrent callers share a single in-flight fetch.
 *
 * Only the configured (or discovered) jwks_uri is ever contacted: `jku`,
 * `x5u` and `jwk` token headers are attacker-chosen and are never read here
 * (RFC 8725 §3.10, RFC 7515 §4.1.2/§4.1.5).
 */
export class JwksCache {
  readonly issuer: string;
  private readonly opts: JwksCacheOptions;
  private snapshot: Snapshot | undefined;
  private inflight: Promise<Snapshot> | undefined;
  private resolvedJwksUri: string | undefined;
  private lastFailureAt: number | undefined;
  /** When an unknown kid last caused a refetch: the cooldown runs from here, not from routine fetches. */
  private lastUnknownKidRefreshAt: number | undefined;
  private readonly counters = { discoveryFetches: 0, jwksFetches: 0, failures: 0 };

  constructor(opts: JwksCacheOptions) {
    this.opts = opts;
    this.issuer = opts.issuer;
    this.resolvedJwksUri = opts.jwksUri;
  }

  stats(): JwksCacheStats {
    const s: JwksCacheStats = { ...this.counters };
    if (this.snapshot) s.fetchedAt = this.snapshot.fetchedAt;
    return s;
  }

  /** Key ids currently known (for diagnostics). */
  knownKids(): readonly string[] {
    return this.snapshot?.kids ?? [];
  }

  /**
   * jose key resolver. Throws jose's JWKSNoMatchingKey for an unknown kid
   * (after the one permitted refresh), JwksUnavailableError when keys cannot
   * be fetched.
   */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    let snap = await this.current();
    try {
      return await snap.resolve(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      // Someone refreshed while we looked: try their keys before fetching.
      if (this.snapshot && this.snapshot !== snap) {
        snap = this.snapshot;
        return await snap.resolve(header, token);
      }
      if (this.inflight) {
        snap = await this.inflight;
        return await snap.resolve(header, token);
      }
      // A key rotation right after a routine fetch still gets its one refetch; a
      // flood of made-up kids gets one per cooldown, never one per token.
      const now = this.opts.now();
      if (this.lastUnknownKidRefreshAt !== undefined && now - this.lastUnknownKidRefreshAt < this.opts.cooldownMs) throw err;
      this.lastUnknownKidRefreshAt = now;
      this.opts.log?.('info', 'jwks_refresh_unknown_kid', { issuer: this.issuer, kid: header.kid });
      snap = await this.refresh();
      return await snap.resolve(header, token);
    }
  };

  /** Fetch now (sharing any fetch already under way). */
  refresh(): Promise<Snapshot> {
    if (this.inflight) return this.inflight;
    const now = this.opts.now();
    const backoff = Math.min(this.opts.cooldownMs, MAX_FAILURE_BACKOFF_MS);
    if (this.lastFailureAt !== undefined && now - this.lastFailureAt < backoff) {
      return Promise.reject(new JwksUnavailableError(`keys for ${this.issuer} unavailable; last fetch failed ${now - this.lastFailureAt} ms ago`));
    }
    const p = this.load().then(
      (snap) => {
        this.snapshot = snap;
        this.lastFailureAt = undefined;
        return snap;
      },
      (err: unknown) => {
        this.counters.failures += 1;
        this.lastFailureAt = this.opts.now();
        const message = err instanceof Error ? err.message : String(err);
        this.opts.log?.('warn', 'jwks_fetch_failed', { issuer: this.issuer, error: message });
        throw err instanceof JwksUnavailableError ? err : new JwksUnavailableError(`keys for ${this.issuer} unavailable: ${message}`);
      },
    );
    this.inflight = p;
    // Clear on settle without creating an unhandled rejection of our own.
    p.then(
      () => { if (this.inflight === p) this.inflight = undefined; },
      () => { if (this.inflight === p) this.inflight = undefined; },
    );
    return p;
  }

  private async current(): Promise<Snapshot> {
    const snap = this.snapshot;
    if (snap && this.opts.now() - snap.fetchedAt < this.opts.maxAgeMs) return snap;
    try {
      return await this.refresh();
    } catch (err) {
      // Within one extra maxAge, stale keys beat refusing everybody during an
      // issuer outage; past that we fail closed so a withdrawn key dies.
      if (snap && this.opts.now() - snap.fetchedAt < 2 * this.opts.maxAgeMs) {
        this.opts.log?.('warn', 'jwks_serving_stale', { issuer: this.issuer, ageMs: this.opts.now() - snap.fetchedAt });
        return snap;
      }
      throw err;
    }
  }

  private async load(): Promise<Snapshot> {
    const jwksUri = this.resolvedJwksUri ?? (await this.discover());
    this.counters.jwksFetches += 1;
    let body: unknown;
    try {
      body = await this.getJson(jwksUri, 'JWKS');
    } catch (err) {
      // The issuer may have moved its keys; look them up again next time.
      if (this.opts.jwksUri === undefined) this.resolvedJwksUri = undefined;
      throw err;
    }
    let resolve: LocalJWKSet;
    try {
      resolve = createLocalJWKSet(body as JSONWebKeySet);
    } catch (err) {
      throw new JwksUnavailableError(`JWKS from ${jwksUri} is malformed: ${(err as Error).message}`);
    }
    const keys = (body as { keys: { kid?: unknown }[] }).keys;
    const kids = keys.flatMap((k) => (typeof k.kid === 'string' ? [k.kid] : []));
    this.opts.log?.('debug', 'jwks_loaded', { issuer: this.issuer, jwksUri, kids });
    return { resolve, fetchedAt: this.opts.now(), kids };
  }

  /** OpenID Connect Discovery 1.0 §4. */
  private async discover(): Promise<string> {
    // §4: a trailing "/" on the issuer is removed before appending the path.
    const url = `${this.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    this.counters.discoveryFetches += 1;
    const doc = await this.getJson(url, 'discovery document');
    if (typeof doc !== 'object' || doc === null) throw new JwksUnavailableError(`discovery document at ${url} is not an object`);
    const { issuer, jwks_uri: jwksUri } = doc as { issuer?: unknown; jwks_uri?: unknown };
    // §4.3: the document must name exactly the issuer we asked about, or a
    // compromised/misrouted host could vouch for keys of another issuer.
    if (issuer !== this.issuer) {
      throw new JwksUnavailableError(`discovery document issuer ${JSON.stringify(issuer)} does not match ${this.issuer}`);
    }
    if (typeof jwksUri !== 'string') throw new JwksUnavailableError(`discovery document at ${url} has no jwks_uri`);
    const problem = endpointUrlProblem(jwksUri, this.opts.allowInsecureHttp, 'jwks_uri', false);
    if (problem) throw new JwksUnavailableError(`discovery document at ${url}: ${problem}`);
    this.resolvedJwksUri = jwksUri;
    return jwksUri;
  }

  private async getJson(url: string, what: string): Promise<unknown> {
    const limit = this.opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    let res: Response;
    try {
      res = await this.opts.fetch(url, {
        method: 'GET',
        headers: { accept: 'application/json, application/jwk-set+json' },
        // A redirect could lead off the configured origin; treat it as failure.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      throw new JwksUnavailableError(`fetching ${what} ${url} failed: ${(err as Error).message}`);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new JwksUnavailableError(`fetching ${what} ${url}: HTTP ${res.status}`);
    }
    const text = await readCapped(res, limit).catch((err: unknown) => {
      throw new JwksUnavailableError(`reading ${what} ${url} failed: ${(err as Error).message}`);
    });
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new JwksUnavailableError(`${what} at ${url} is not JSON`);
    }
  }
}

async function readCapped(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`response of ${declared} bytes exceeds ${limit}`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`response exceeds ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
