/**
 * Issue #11: a token pgward has already verified costs no JWKS fetch and no
 * verification on the next login. Connections per second through a pgward in
 * `auth.mode: oidc`, with a new token per connection (cold: every login
 * verifies a signature) and with one token reused (warm: token cache hits),
 * beside the same pgward build in passthrough with a SCRAM password.
 */
import { OidcVerifier } from '../src/auth/oidc-verifier.js';
import { parseOidcConfig } from '../src/auth/oidc-config.js';
import { measureConnectRate, type ConnectRate } from './connect-rate.js';
import { fixed, median, table } from './report.js';
import type { Credentials, Target } from './target.js';
import { BENCH_AUDIENCE, type CountingIssuer, type IssuerCounts } from './token-issuer.js';

/** The token's user name and the startup user; pgward logs in upstream as its service role instead. */
export const TOKEN_USER = 'bench_app';

export const LOGIN_KINDS = ['cold', 'warm', 'scram'] as const;
export type LoginKind = (typeof LOGIN_KINDS)[number];

export const LOGIN_LABELS: Record<LoginKind, string> = {
  cold: 'oidc, new token each time (cold)',
  warm: 'oidc, one cached token (warm)',
  scram: 'passthrough, SCRAM password',
};

/** Tokens outlive the phase, so none expires between minting and use. */
const TOKEN_LIFETIME_SECONDS = 3600;
/** Connections timed to size the batches. */
const CALIBRATION_CONNECTIONS = 60;
/** Connections per kind before anything is timed: lazily loaded code, TLS session setup. */
const WARM_UP_CONNECTIONS = 20;
const MIN_BATCH = 50;
const MAX_BATCH = 4000;

export interface LoginBatch {
  rate: ConnectRate;
  /** Requests the issuer served during the batch (discovery + JWKS). */
  fetches: number;
}

export interface TokenLoginResults {
  batches: Map<LoginKind, LoginBatch[]>;
  /** Connections in each batch. */
  perBatch: number;
  /** What the very first token login on a fresh pgward fetched. */
  firstLogin: IssuerCounts;
  /** Signing the cold tokens, before any batch: not part of what is timed. */
  minted: number;
}

export interface TokenLoginOptions {
  oidc: Target;
  passthrough: Target;
  issuer: CountingIssuer;
  /** User TOKEN_USER and the database; the password is the token. */
  tokenLogin: Credentials;
  /** A SCRAM login through the passthrough pgward. */
  scramLogin: Credentials;
  rounds: number;
  /** Each batch is sized to last about this long. */
  seconds: number;
  progress: (line: string) => void;
  /** Called after every batch; throws to stop (a proxy died). */
  check: () => void;
}

export async function runTokenLogins(options: TokenLoginOptions): Promise<TokenLoginResults> {
  const { issuer, oidc, passthrough, tokenLogin, scramLogin, progress } = options;
  const mint = () => issuer.mint(TOKEN_USER, TOKEN_LIFETIME_SECONDS);

  // A fresh pgward has no keys yet: its first token login discovers the issuer and fetches the JWKS.
  const before = { ...issuer.counts };
  const first = await mint();
  await measureConnectRate(oidc, tokenLogin, () => first, 1, 1);
  const firstLogin: IssuerCounts = {
    discovery: issuer.counts.discovery - before.discovery,
    jwks: issuer.counts.jwks - before.jwks,
    other: issuer.counts.other - before.other,
  };

  // The warm token is verified once here; every later login with it is a cache hit.
  const warmToken = await mint();
  const warmUp = await Promise.all(Array.from({ length: WARM_UP_CONNECTIONS }, mint));
  await measureConnectRate(oidc, tokenLogin, (i) => warmUp[i]!, WARM_UP_CONNECTIONS);
  await measureConnectRate(oidc, tokenLogin, () => warmToken, WARM_UP_CONNECTIONS);
  await measureConnectRate(passthrough, scramLogin, () => scramLogin.password, WARM_UP_CONNECTIONS);
  options.check();

  const calibration = await measureConnectRate(oidc, tokenLogin, () => warmToken, CALIBRATION_CONNECTIONS);
  const perBatch = Math.min(MAX_BATCH, Math.max(MIN_BATCH, Math.round(calibration.perSecond * options.seconds)));
  const coldCount = perBatch * options.rounds;
  progress(`token logins: ${fixed(calibration.perSecond, 0)} conn/s while calibrating; ${perBatch} connections per batch; signing ${coldCount} cold tokens`);
  const coldTokens: string[] = [];
  for (let i = 0; i < coldCount; i++) coldTokens.push(await mint());

  const batches = new Map<LoginKind, LoginBatch[]>(LOGIN_KINDS.map((kind) => [kind, []]));
  const total = options.rounds * LOGIN_KINDS.length;
  let done = 0;
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < LOGIN_KINDS.length; i++) {
      const kind = LOGIN_KINDS[(round + i) % LOGIN_KINDS.length]!;
      const fetchesBefore = issuer.fetches;
      let rate: ConnectRate;
      if (kind === 'cold') {
        const offset = round * perBatch;
        rate = await measureConnectRate(oidc, tokenLogin, (index) => coldTokens[offset + index]!, perBatch);
      } else if (kind === 'warm') {
        rate = await measureConnectRate(oidc, tokenLogin, () => warmToken, perBatch);
      } else {
        rate = await measureConnectRate(passthrough, scramLogin, () => scramLogin.password, perBatch);
      }
      batches.get(kind)!.push({ rate, fetches: issuer.fetches - fetchesBefore });
      progress(`[${++done}/${total}] token logins round ${round + 1} ${kind}: ${fixed(rate.perSecond, 0)} conn/s`);
      options.check();
    }
  }
  return { batches, perBatch, firstLogin, minted: coldCount };
}

export interface VerifyCost {
  /** Milliseconds per verification of a token the verifier has not seen. */
  coldMs: number;
  /** Milliseconds per verification of a cached token. */
  warmMs: number;
}

const VERIFY_SAMPLE = 500;

/**
 * pgward's own OidcVerifier, timed in this process with the same issuer and
 * tokens: what one signature check costs next to a cache hit. Median of three passes.
 */
export async function measureVerifyCost(issuer: CountingIssuer): Promise<VerifyCost> {
  const verifier = new OidcVerifier(parseOidcConfig({ issuers: [{ issuer: issuer.url, audience: BENCH_AUDIENCE }] }), { throttle: false });
  const tokens: string[] = [];
  for (let i = 0; i <= VERIFY_SAMPLE * 3; i++) tokens.push(await issuer.mint(TOKEN_USER, TOKEN_LIFETIME_SECONDS));
  const cached = tokens.pop()!;
  const check = async (token: string, wantCached: boolean) => {
    const result = await verifier.verify(token, TOKEN_USER);
    if (!result.ok || result.cached !== wantCached) throw new Error(`verifier probe: unexpected result ${JSON.stringify(result)}`);
  };
  await check(cached, false);
  const cold: number[] = [];
  const warm: number[] = [];
  for (let pass = 0; pass < 3; pass++) {
    let started = performance.now();
    for (let i = 0; i < VERIFY_SAMPLE; i++) await check(tokens[pass * VERIFY_SAMPLE + i]!, false);
    cold.push((performance.now() - started) / VERIFY_SAMPLE);
    started = performance.now();
    for (let i = 0; i < VERIFY_SAMPLE; i++) await check(cached, true);
    warm.push((performance.now() - started) / VERIFY_SAMPLE);
  }
  return { coldMs: median(cold), warmMs: median(warm) };
}

export function medianRate(results: TokenLoginResults, kind: LoginKind): number {
  return median((results.batches.get(kind) ?? []).map((b) => b.rate.perSecond));
}

export function fetchesDuring(results: TokenLoginResults, kind: LoginKind): number {
  return (results.batches.get(kind) ?? []).reduce((sum, b) => sum + b.fetches, 0);
}

/** (max - min) / median of one kind's batches: a ratio closer to 1 than this is within noise. */
export function spread(results: TokenLoginResults, kind: LoginKind): number {
  const rates = (results.batches.get(kind) ?? []).map((b) => b.rate.perSecond);
  return rates.length < 2 ? 0 : (Math.max(...rates) - Math.min(...rates)) / median(rates);
}

export function renderTokenLogins(results: TokenLoginResults): string {
  const warm = medianRate(results, 'warm');
  const rows = LOGIN_KINDS.map((kind) => {
    const batches = results.batches.get(kind) ?? [];
    return [
      LOGIN_LABELS[kind],
      fixed(medianRate(results, kind), 0),
      batches.map((b) => fixed(b.rate.perSecond, 0)).join(' '),
      `${fixed(spread(results, kind) * 100, 1)}%`,
      kind === 'warm' ? '1.00' : fixed(warm / medianRate(results, kind), 2),
      String(fetchesDuring(results, kind)),
    ];
  });
  return table(['login', 'conn/s', 'batches', 'spread', 'warm/this', 'issuer fetches'], rows);
}
