import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, exportSPKI, importJWK, SignJWT, type CryptoKey } from 'jose';
import { AuthThrottle } from '../../../src/auth/auth-throttle.js';
import type { OidcConfig, OidcConfigInput } from '../../../src/auth/oidc-config.js';
import { OidcVerifier, type VerifierOptions, type VerifyResult } from '../../../src/auth/oidc-verifier.js';
import {
  b64,
  countingFetch,
  listen,
  makeKey,
  manualClock,
  oidcConfig,
  sendJson,
  sign,
  signRaw,
  startLocalIssuer,
  type LocalIssuer,
  type LocalServer,
  type TestKey,
} from './fixtures.js';

let rsa: TestKey;
let ec: TestKey;
let attackerKey: TestKey;
let idp: LocalIssuer;
let otherIdp: LocalIssuer;
let otherKey: TestKey;
let attacker: LocalServer;

beforeAll(async () => {
  [rsa, ec, attackerKey, otherKey] = await Promise.all([
    makeKey('rsa-1', 'RS256'),
    makeKey('ec-1', 'ES256'),
    makeKey('attacker', 'RS256'),
    makeKey('other-1', 'RS256'),
  ]);
  idp = await startLocalIssuer([rsa, ec]);
  otherIdp = await startLocalIssuer([otherKey], '/tenant-b');
  attacker = await listen((_req, res) => sendJson(res, 200, { keys: [attackerKey.publicJwk] }));
});

afterAll(async () => {
  await Promise.all([idp.close(), otherIdp.close(), attacker.close()]);
});

function setup(overrides: Partial<OidcConfigInput> = {}, options: VerifierOptions = {}) {
  const counter = countingFetch();
  const config = oidcConfig({ issuers: [{ issuer: idp.issuer, audience: 'pgward' }], ...overrides });
  const verifier = new OidcVerifier(config, { fetch: counter.fetch, ...options });
  return {
    verifier,
    config,
    urls: counter.urls,
    jwksFetches: () => counter.urls.filter((u) => u.endsWith('/jwks')).length,
  };
}

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: idp.issuer, aud: 'pgward', sub: 'u-1', preferred_username: 'alice', groups: ['analysts', 'ops'], ...extra };
}

function expectFailure(result: VerifyResult, reason: string): void {
  expect(result.ok ? 'ok' : result.reason, result.ok ? 'unexpectedly accepted' : result.detail).toBe(reason);
}

describe('OidcVerifier: accepted tokens', () => {
  it('verifies an RS256 token via discovery and builds the identity', async () => {
    const { verifier, urls } = setup();
    const token = await sign(rsa, claims());
    const result = await verifier.verify(token, 'alice');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.cached).toBe(false);
    expect(result.identity).toMatchObject({
      user: 'alice',
      groups: ['analysts', 'ops'],
      source: 'oidc',
      issuer: idp.issuer,
      subject: 'u-1',
      expiresAt: decodeJwt(token).exp,
    });
    expect(result.identity.claims['preferred_username']).toBe('alice');
    expect(urls).toEqual([`${idp.issuer}/.well-known/openid-configuration`, `${idp.issuer}/jwks`]);
  });

  it('verifies ES256 tokens from the same key set', async () => {
    const { verifier } = setup();
    expect((await verifier.verify(await sign(ec, claims()), 'alice')).ok).toBe(true);
  });

  it('freezes the identity and its claims (they are shared with the cache)', async () => {
    const { verifier } = setup();
    const result = await verifier.verify(await sign(rsa, claims({ nested: { a: [1] } })), 'alice');
    if (!result.ok) throw new Error(result.detail);
    expect(Object.isFrozen(result.identity)).toBe(true);
    expect(Object.isFrozen(result.identity.claims)).toBe(true);
    expect(Object.isFrozen((result.identity.claims['nested'] as { a: number[] }).a)).toBe(true);
    expect(Object.isFrozen(result.identity.groups)).toBe(true);
  });

  it('accepts any of several configured audiences, and aud arrays', async () => {
    const { verifier } = setup({ issuers: [{ issuer: idp.issuer, audience: ['pgward', 'pgward-staging'] }] });
    expect((await verifier.verify(await sign(rsa, claims({ aud: 'pgward-staging' })), 'alice')).ok).toBe(true);
    expect((await verifier.verify(await sign(rsa, claims({ aud: ['x', 'pgward'] })), 'alice')).ok).toBe(true);
  });

  it('honours the clock tolerance on exp and nbf', async () => {
    const clock = manualClock();
    const { verifier } = setup({ clockToleranceSeconds: 30 }, { now: clock.now });
    const now = clock.seconds();
    expect((await verifier.verify(await sign(rsa, claims({ exp: now - 10 }), { now }), 'alice')).ok).toBe(true);
    expect((await verifier.verify(await sign(rsa, claims({ nbf: now + 10 }), { now }), 'alice')).ok).toBe(true);
  });

  it('accepts a token of more than 16 KiB', async () => {
    const { verifier } = setup();
    const groups = Array.from({ length: 600 }, (_, i) => `group-with-a-long-name-${i}`);
    const token = await sign(rsa, claims({ groups }));
    expect(token.length).toBeGreaterThan(16 * 1024);
    const result = await verifier.verify(token, 'alice');
    expect(result.ok && result.identity.groups.length).toBe(600);
  });

  it('reads groups from a dotted path, a single string, and ignores non-strings', async () => {
    const { verifier } = setup({
      issuers: [{ issuer: idp.issuer, audience: 'pgward', groupsClaim: ['realm_access.roles', 'team', 'groups'] }],
    });
    const token = await sign(rsa, claims({ realm_access: { roles: ['admin', 7, 'admin'] }, team: 'blue', groups: 'solo' }));
    const result = await verifier.verify(token, 'alice');
    expect(result.ok && result.identity.groups).toEqual(['admin', 'blue', 'solo']);
  });

  it('falls back through usernameClaim candidates', async () => {
    const { verifier } = setup({ issuers: [{ issuer: idp.issuer, audience: 'pgward', usernameClaim: ['email', 'preferred_username'] }] });
    const result = await verifier.verify(await sign(rsa, claims()), 'alice');
    expect(result.ok && result.identity.user).toBe('alice');
  });
});

describe('OidcVerifier: attacks and invalid tokens', () => {
  it('alg "none" is refused before any key is fetched', async () => {
    const { verifier, urls } = setup({}, { throttle: false });
    const payload = { ...claims(), exp: Math.floor(Date.now() / 1000) + 600 };
    for (const alg of ['none', 'None', 'NONE']) {
      expectFailure(await verifier.verify(`${b64({ alg, typ: 'JWT' })}.${b64(payload)}.`, 'alice'), 'alg_not_allowed');
      expectFailure(await verifier.verify(`${b64({ alg, typ: 'JWT' })}.${b64(payload)}.c2ln`, 'alice'), 'alg_not_allowed');
    }
    expect(urls).toEqual([]);
  });

  it('HS256 signed with the issuer public key as the secret is refused', async () => {
    const { verifier, urls } = setup({}, { throttle: false });
    const publicKey = (await importJWK(rsa.publicJwk, 'RS256', { extractable: true })) as CryptoKey;
    const secrets = [
      await exportSPKI(publicKey),
      JSON.stringify(rsa.publicJwk),
      Buffer.from(rsa.publicJwk.n!, 'base64url'),
    ];
    for (const secret of secrets) {
      const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : new Uint8Array(secret);
      for (const alg of ['HS256', 'HS512']) {
        const token = await new SignJWT({ ...claims(), exp: Math.floor(Date.now() / 1000) + 600 })
          .setProtectedHeader({ alg, kid: rsa.kid })
          .sign(key);
        expectFailure(await verifier.verify(token, 'alice'), 'alg_not_allowed');
      }
    }
    expect(urls).toEqual([]);
  });

  it('HS256 stays refused even if a hand-built config lists it', async () => {
    const counter = countingFetch();
    const good = oidcConfig({ issuers: [{ issuer: idp.issuer, audience: 'pgward' }] });
    const bad = { ...good, algorithms: ['HS256', 'RS256'] } as unknown as OidcConfig;
    const verifier = new OidcVerifier(bad, { fetch: counter.fetch });
    const token = await new SignJWT({ ...claims(), exp: Math.floor(Date.now() / 1000) + 600 })
      .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
      .sign(new TextEncoder().encode(JSON.stringify(rsa.publicJwk)));
    expectFailure(await verifier.verify(token, 'alice'), 'alg_not_allowed');
    expect(() => new OidcVerifier({ ...good, algorithms: ['HS256'] } as unknown as OidcConfig)).toThrow(/asymmetric/);
  });

  it('an algorithm outside a narrowed allow-list is refused', async () => {
    const { verifier, urls } = setup({ algorithms: ['ES256'] });
    expectFailure(await verifier.verify(await sign(rsa, claims()), 'alice'), 'alg_not_allowed');
    expect(urls).toEqual([]);
    expect((await verifier.verify(await sign(ec, claims()), 'alice')).ok).toBe(true);
  });

  it('an expired token is refused', async () => {
    const { verifier } = setup();
    const now = Math.floor(Date.now() / 1000);
    expectFailure(await verifier.verify(await sign(rsa, claims({ iat: now - 7200, exp: now - 3600 })), 'alice'), 'expired');
  });

  it('a token that is not yet valid (nbf in the future) is refused', async () => {
    const { verifier } = setup();
    const now = Math.floor(Date.now() / 1000);
    expectFailure(await verifier.verify(await sign(rsa, claims({ nbf: now + 3600, exp: now + 7200 })), 'alice'), 'not_yet_valid');
  });

  it('a token without exp is refused', async () => {
    const { verifier } = setup();
    expectFailure(await verifier.verify(await sign(rsa, claims({ exp: undefined })), 'alice'), 'malformed');
  });

  it('an unconfigured issuer is refused without fetching anything', async () => {
    const { verifier, urls } = setup();
    expectFailure(await verifier.verify(await sign(rsa, claims({ iss: 'https://evil.example.com' })), 'alice'), 'unknown_issuer');
    expectFailure(await verifier.verify(await sign(rsa, claims({ iss: undefined })), 'alice'), 'malformed');
    expectFailure(await verifier.verify(await sign(rsa, claims({ iss: 42 })), 'alice'), 'malformed');
    expect(urls).toEqual([]);
  });

  it('an iss that only loosely matches a configured issuer is wrong_issuer', async () => {
    const { verifier } = setup();
    expectFailure(await verifier.verify(await sign(rsa, claims({ iss: `${idp.issuer}/` })), 'alice'), 'wrong_issuer');
    expectFailure(await verifier.verify(await sign(rsa, claims({ iss: idp.issuer.toUpperCase() })), 'alice'), 'wrong_issuer');
  });

  it('a token of issuer A signed with a key of issuer B is refused', async () => {
    const { verifier } = setup({
      issuers: [{ issuer: idp.issuer, audience: 'pgward' }, { issuer: otherIdp.issuer, audience: 'pgward' }],
    });
    expect((await verifier.verify(await sign(otherKey, claims({ iss: otherIdp.issuer })), 'alice')).ok).toBe(true);
    expectFailure(await verifier.verify(await sign(otherKey, claims({ iss: idp.issuer })), 'alice'), 'unknown_key');
  });

  it('a wrong audience is refused', async () => {
    const { verifier } = setup();
    expectFailure(await verifier.verify(await sign(rsa, claims({ aud: 'other-service' })), 'alice'), 'wrong_audience');
    expectFailure(await verifier.verify(await sign(rsa, claims({ aud: undefined })), 'alice'), 'wrong_audience');
  });

  it('a tampered payload fails the signature check', async () => {
    const { verifier } = setup({}, { throttle: false });
    const token = await sign(rsa, claims());
    const [h, , s] = token.split('.');
    const forged = `${h}.${b64({ ...decodeJwt(token), preferred_username: 'postgres' })}.${s}`;
    expectFailure(await verifier.verify(forged, 'postgres'), 'bad_signature');
    // Flipping one signature character breaks it too.
    const flipped = `${token.slice(0, -2)}${token.at(-2) === 'A' ? 'B' : 'A'}${token.at(-1)}`;
    expectFailure(await verifier.verify(flipped, 'alice'), 'bad_signature');
  });

  it('a token signed by an attacker key under a real kid fails the signature check', async () => {
    const { verifier } = setup();
    const forged = await sign({ ...attackerKey, kid: rsa.kid }, claims());
    expectFailure(await verifier.verify(forged, 'alice'), 'bad_signature');
  });

  it('jku, x5u and embedded jwk headers are never followed or trusted', async () => {
    const { verifier, urls } = setup({}, { throttle: false });
    const header = {
      jku: `${attacker.url}/jwks`,
      x5u: `${attacker.url}/cert.pem`,
      jwk: attackerKey.publicJwk,
    };
    expectFailure(await verifier.verify(await sign(attackerKey, claims(), { header }), 'alice'), 'unknown_key');
    expectFailure(await verifier.verify(await sign({ ...attackerKey, kid: rsa.kid }, claims(), { header }), 'alice'), 'bad_signature');
    expectFailure(await verifier.verify(await sign({ ...attackerKey, kid: undefined as unknown as string }, claims(), { header }), 'alice'), 'bad_signature');
    expect(attacker.requests).toEqual([]);
    expect(urls.some((u) => u.startsWith(attacker.url))).toBe(false);
  });

  it('an unknown critical header is refused', async () => {
    const { verifier } = setup();
    const payload = { ...claims(), exp: Math.floor(Date.now() / 1000) + 600 };
    const token = await signRaw(rsa, { alg: 'RS256', kid: rsa.kid, crit: ['exp-policy'], 'exp-policy': 1 }, payload);
    expectFailure(await verifier.verify(token, 'alice'), 'malformed');
    // The same construction without crit verifies, so the refusal is about crit.
    expect((await verifier.verify(await signRaw(rsa, { alg: 'RS256', kid: rsa.kid }, payload), 'alice')).ok).toBe(true);
  });

  it('an oversized token is refused before decoding or fetching', async () => {
    const { verifier, urls } = setup({}, { throttle: false });
    // Not even a JWT: only the size check can produce too_large.
    expectFailure(await verifier.verify('x'.repeat(1024 * 1024), 'alice'), 'too_large');
    expectFailure(await verifier.verify(await sign(rsa, claims({ pad: 'p'.repeat(70_000) })), 'alice'), 'too_large');
    // Length within the limit, bytes beyond it.
    expectFailure(await verifier.verify('\u20ac'.repeat(30_000), 'alice'), 'too_large');
    expect(urls).toEqual([]);
  });

  it('garbage, JWE and undecodable tokens are malformed', async () => {
    const { verifier, urls } = setup({}, { throttle: false });
    for (const token of ['', 'not-a-jwt', 'a.b', 'a.b.c.d.e', 'a b.c.d', `${b64('nope')}.${b64({})}.sig`, `${b64({ alg: 'RS256' })}.${b64('[1')}.sig`]) {
      expectFailure(await verifier.verify(token, 'alice'), 'malformed');
    }
    expect(urls).toEqual([]);
  });

  it('a token without a usable username is refused', async () => {
    const { verifier } = setup({}, { throttle: false });
    expectFailure(await verifier.verify(await sign(rsa, claims({ preferred_username: undefined })), 'alice'), 'missing_username');
    expectFailure(await verifier.verify(await sign(rsa, claims({ preferred_username: '' })), 'alice'), 'missing_username');
    expectFailure(await verifier.verify(await sign(rsa, claims({ preferred_username: ['alice'] })), 'alice'), 'missing_username');
    expectFailure(await verifier.verify(await sign(rsa, claims({ preferred_username: 'ali\0ce' })), 'ali'), 'missing_username');
  });
});

describe('OidcVerifier: JWKS refresh', () => {
  it('an unknown kid refetches at most once per cooldown, even under concurrency', async () => {
    const clock = manualClock();
    const { verifier, jwksFetches } = setup({ jwksCooldownSeconds: 30 }, { now: clock.now, throttle: false });
    const ghost = await makeKey('ghost');
    const mint = (key: TestKey) => sign(key, claims(), { now: clock.seconds() });

    expect((await verifier.verify(await mint(rsa), 'alice')).ok).toBe(true);
    expect(jwksFetches()).toBe(1);

    // Twenty concurrent tokens with an unknown kid share one refetch.
    const tokens = await Promise.all(Array.from({ length: 20 }, () => mint(ghost)));
    const results = await Promise.all(tokens.map((t) => verifier.verify(t, 'alice')));
    for (const r of results) expectFailure(r, 'unknown_key');
    expect(jwksFetches()).toBe(2);

    // Inside the cooldown of that refetch: none more.
    for (let i = 0; i < 5; i += 1) expectFailure(await verifier.verify(await mint(ghost), 'alice'), 'unknown_key');
    expect(jwksFetches()).toBe(2);

    clock.advance(31);
    expectFailure(await verifier.verify(await mint(ghost), 'alice'), 'unknown_key');
    expect(jwksFetches()).toBe(3);
  });

  it('a new key published by the issuer is accepted after one refresh; old keys keep working', async () => {
    const clock = manualClock();
    const rotated = await makeKey('rsa-2');
    const issuer = await startLocalIssuer([rsa]);
    try {
      const counter = countingFetch();
      const verifier = new OidcVerifier(oidcConfig({ issuers: [{ issuer: issuer.issuer, audience: 'pgward' }] }), {
        fetch: counter.fetch,
        now: clock.now,
      });
      const mint = (key: TestKey) => sign(key, claims({ iss: issuer.issuer }), { now: clock.seconds() });
      expect((await verifier.verify(await mint(rsa), 'alice')).ok).toBe(true);
      expect(issuer.jwksFetches()).toBe(1);

      issuer.published = [rotated.publicJwk, rsa.publicJwk];
      clock.advance(31);
      const newToken = await verifier.verify(await mint(rotated), 'alice');
      expect(newToken.ok).toBe(true);
      expect(issuer.jwksFetches()).toBe(2);
      expect((await verifier.verify(await mint(rsa), 'alice')).ok).toBe(true);
      expect((await verifier.verify(await mint(rotated), 'alice')).ok).toBe(true);
      expect(issuer.jwksFetches()).toBe(2);
      expect(issuer.discoveryFetches()).toBe(1);
    } finally {
      await issuer.close();
    }
  });

  it('keys are refetched once older than jwksCacheMaxAgeSeconds', async () => {
    const clock = manualClock();
    const { verifier, jwksFetches } = setup({ jwksCacheMaxAgeSeconds: 600 }, { now: clock.now });
    const mint = () => sign(rsa, claims({ jti: String(Math.random()) }), { now: clock.seconds(), ttl: 3600 });
    expect((await verifier.verify(await mint(), 'alice')).ok).toBe(true);
    clock.advance(599);
    expect((await verifier.verify(await mint(), 'alice')).ok).toBe(true);
    expect(jwksFetches()).toBe(1);
    clock.advance(2);
    expect((await verifier.verify(await mint(), 'alice')).ok).toBe(true);
    expect(jwksFetches()).toBe(2);
  });

  it('an unreachable key set is jwks_unavailable and does not count against the client', async () => {
    const issuer = await startLocalIssuer([rsa]);
    issuer.jwksStatus = 503;
    try {
      const verifier = new OidcVerifier(
        oidcConfig({ issuers: [{ issuer: issuer.issuer, audience: 'pgward' }], throttle: { maxFailures: 2 } }),
      );
      const token = await sign(rsa, claims({ iss: issuer.issuer }));
      for (let i = 0; i < 5; i += 1) {
        expectFailure(await verifier.verify(token, 'alice', { remoteAddress: '10.0.0.1' }), 'jwks_unavailable');
      }
    } finally {
      await issuer.close();
    }
  });

  it('a discovery document naming another issuer is refused', async () => {
    const issuer = await startLocalIssuer([rsa]);
    issuer.discoveryOverride = { issuer: 'https://someone-else.example.com' };
    try {
      const verifier = new OidcVerifier(oidcConfig({ issuers: [{ issuer: issuer.issuer, audience: 'pgward' }] }));
      const result = await verifier.verify(await sign(rsa, claims({ iss: issuer.issuer })), 'alice');
      expectFailure(result, 'jwks_unavailable');
      expect(issuer.jwksFetches()).toBe(0);
    } finally {
      await issuer.close();
    }
  });
});

describe('OidcVerifier: token cache', () => {
  it('a second verify is served from the cache without any fetch', async () => {
    const { verifier, urls } = setup();
    const token = await sign(rsa, claims());
    const first = await verifier.verify(token, 'alice');
    expect(first.ok && first.cached).toBe(false);
    const fetched = urls.length;
    const second = await verifier.verify(token, 'alice');
    expect(second.ok && second.cached).toBe(true);
    expect(urls.length).toBe(fetched);
    if (first.ok && second.ok) expect(second.identity).toEqual(first.identity);
  });

  it('a cache hit needs no keys at all', async () => {
    const issuer = await startLocalIssuer([rsa]);
    const verifier = new OidcVerifier(oidcConfig({ issuers: [{ issuer: issuer.issuer, audience: 'pgward' }] }));
    const token = await sign(rsa, claims({ iss: issuer.issuer }));
    expect((await verifier.verify(token, 'alice')).ok).toBe(true);
    await issuer.close();
    const again = await verifier.verify(token, 'alice');
    expect(again.ok && again.cached).toBe(true);
  });

  it('is keyed by a SHA-256 digest, never the token text', async () => {
    const { verifier } = setup();
    const token = await sign(rsa, claims());
    await verifier.verify(token, 'alice');
    const cache = (verifier as unknown as { tokenCache: { keys(): IterableIterator<string> } }).tokenCache;
    const keys = [...cache.keys()];
    expect(keys).toHaveLength(1);
    expect(keys[0]).not.toContain(token.split('.')[2]);
    expect(keys[0]).toHaveLength(43);
  });

  it('never serves a cached token past exp', async () => {
    const clock = manualClock();
    const { verifier } = setup({ clockToleranceSeconds: 30 }, { now: clock.now });
    const token = await sign(rsa, claims(), { now: clock.seconds(), ttl: 60 });
    expect((await verifier.verify(token, 'alice')).ok).toBe(true);
    clock.advance(59);
    const hit = await verifier.verify(token, 'alice');
    expect(hit.ok && hit.cached).toBe(true);
    // Past exp but inside the tolerance: full verification decides, not the cache.
    clock.advance(2);
    const inTolerance = await verifier.verify(token, 'alice');
    expect(inTolerance.ok && inTolerance.cached).toBe(false);
    clock.advance(60);
    expectFailure(await verifier.verify(token, 'alice'), 'expired');
  });

  it('entries live at most tokenCacheTtlSeconds', async () => {
    const clock = manualClock();
    const { verifier } = setup({ tokenCacheTtlSeconds: 60 }, { now: clock.now });
    const token = await sign(rsa, claims(), { now: clock.seconds(), ttl: 3600 });
    await verifier.verify(token, 'alice');
    clock.advance(59);
    expect(await verifier.verify(token, 'alice')).toMatchObject({ ok: true, cached: true });
    clock.advance(2);
    expect(await verifier.verify(token, 'alice')).toMatchObject({ ok: true, cached: false });
  });

  it('still applies user binding on a cache hit', async () => {
    const { verifier } = setup();
    const token = await sign(rsa, claims());
    expect((await verifier.verify(token, 'alice')).ok).toBe(true);
    expectFailure(await verifier.verify(token, 'postgres'), 'user_mismatch');
  });

  it('tokenCacheSize 0 disables caching', async () => {
    const { verifier } = setup({ tokenCacheSize: 0 });
    const token = await sign(rsa, claims());
    await verifier.verify(token, 'alice');
    expect(await verifier.verify(token, 'alice')).toMatchObject({ ok: true, cached: false });
  });
});

describe('OidcVerifier: user binding', () => {
  it('match: the startup user must equal the token user', async () => {
    const { verifier } = setup();
    const token = await sign(rsa, claims());
    expect((await verifier.verify(token, 'alice')).ok).toBe(true);
    expectFailure(await verifier.verify(token, 'Alice'), 'user_mismatch');
    expectFailure(await verifier.verify(token, 'postgres'), 'user_mismatch');
  });

  it('any: the startup user is ignored and the token user is used', async () => {
    const { verifier } = setup({ userBinding: { mode: 'any' } });
    const result = await verifier.verify(await sign(rsa, claims()), 'whatever');
    expect(result.ok && result.identity.user).toBe('alice');
  });

  it('map: pg_ident-style patterns with back-references', async () => {
    const { verifier } = setup(
      {
        userBinding: {
          mode: 'map',
          map: [
            { token: '([a-z]+)@example\\.com', user: '\\1' },
            { token: '([a-z]+)@example\\.com', user: 'readonly' },
            { token: 'ops-(.+)', user: 'ops_\\1' },
          ],
        },
      },
      { throttle: false },
    );
    const corp = await sign(rsa, claims({ preferred_username: 'alice@example.com' }));
    expect(await verifier.verify(corp, 'alice')).toMatchObject({ ok: true, identity: { user: 'alice' } });
    expect(await verifier.verify(corp, 'readonly')).toMatchObject({ ok: true, identity: { user: 'readonly' } });
    expectFailure(await verifier.verify(corp, 'bob'), 'user_mismatch');
    expectFailure(await verifier.verify(corp, 'alice@example.com'), 'user_mismatch');

    const ops = await sign(rsa, claims({ preferred_username: 'ops-backup' }));
    expect(await verifier.verify(ops, 'ops_backup')).toMatchObject({ ok: true });

    // Anchored: a suffix after the domain does not match.
    const evil = await sign(rsa, claims({ preferred_username: 'alice@example.com.evil.net' }));
    expectFailure(await verifier.verify(evil, 'alice'), 'user_mismatch');
    expectFailure(await verifier.verify(evil, 'readonly'), 'user_mismatch');
  });
});

describe('OidcVerifier: presets', () => {
  it('kubernetes service-account tokens: user = sub, claims exposed as-is', async () => {
    const { verifier } = setup({ issuers: [{ issuer: idp.issuer, audience: 'pgward', preset: 'kubernetes' }] });
    const sub = 'system:serviceaccount:analytics:reporter';
    const token = await sign(rsa, {
      iss: idp.issuer,
      aud: ['pgward'],
      sub,
      'kubernetes.io': { namespace: 'analytics', serviceaccount: { name: 'reporter', uid: 'abc' }, pod: { name: 'p-1', uid: 'def' } },
    });
    const result = await verifier.verify(token, sub);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.identity.user).toBe(sub);
    expect(result.identity.groups).toEqual([]);
    expect((result.identity.claims['kubernetes.io'] as { namespace: string }).namespace).toBe('analytics');
  });

  it('dotted paths reach into claims whose names contain dots', async () => {
    const { verifier } = setup({
      issuers: [{ issuer: idp.issuer, audience: 'pgward', preset: 'kubernetes', groupsClaim: 'kubernetes.io.namespace' }],
    });
    const sub = 'system:serviceaccount:analytics:reporter';
    const token = await sign(rsa, { iss: idp.issuer, aud: 'pgward', sub, 'kubernetes.io': { namespace: 'analytics' } });
    const result = await verifier.verify(token, sub);
    expect(result.ok && result.identity.groups).toEqual(['analytics']);
  });

  it('azure: upn first, then preferred_username; groups and roles merged', async () => {
    const { verifier } = setup({ issuers: [{ issuer: idp.issuer, audience: 'pgward', preset: 'azure' }] });
    const withUpn = await sign(rsa, claims({ upn: 'carol@contoso.com', preferred_username: 'c@contoso.com', groups: ['g1'], roles: ['Reader'] }));
    expect(await verifier.verify(withUpn, 'carol@contoso.com')).toMatchObject({
      ok: true,
      identity: { user: 'carol@contoso.com', groups: ['g1', 'Reader'] },
    });
    const appOnly = await sign(rsa, claims({ preferred_username: 'svc@contoso.com', groups: undefined, roles: ['Writer'] }));
    expect(await verifier.verify(appOnly, 'svc@contoso.com')).toMatchObject({
      ok: true,
      identity: { user: 'svc@contoso.com', groups: ['Writer'] },
    });
  });
});

describe('OidcVerifier: throttling', () => {
  it('locks out an address after maxFailures and skips verification while locked', async () => {
    const clock = manualClock();
    const { verifier, urls } = setup({ throttle: { maxFailures: 3, windowSeconds: 60, lockoutSeconds: 120 } }, { now: clock.now });
    const good = await sign(rsa, claims(), { now: clock.seconds(), ttl: 3600 });
    for (let i = 0; i < 3; i += 1) {
      expectFailure(await verifier.verify('garbage', `user${i}`, { remoteAddress: '10.0.0.9' }), 'malformed');
    }
    const fetchedBefore = urls.length;
    expectFailure(await verifier.verify(good, 'alice', { remoteAddress: '10.0.0.9' }), 'throttled');
    expect(urls.length).toBe(fetchedBefore);
    // IPv4-mapped IPv6 is the same client.
    expectFailure(await verifier.verify(good, 'alice', { remoteAddress: '::ffff:10.0.0.9' }), 'throttled');
    // Another address is unaffected.
    expect((await verifier.verify(good, 'alice', { remoteAddress: '10.0.0.10' })).ok).toBe(true);
    clock.advance(121);
    expect((await verifier.verify(good, 'alice', { remoteAddress: '10.0.0.9' })).ok).toBe(true);
  });

  it('locks out a user name targeted from many addresses', async () => {
    const { verifier } = setup({ throttle: { maxFailures: 3 } });
    for (let i = 0; i < 3; i += 1) {
      expectFailure(await verifier.verify('garbage', 'alice', { remoteAddress: `10.1.0.${i}` }), 'malformed');
    }
    expectFailure(await verifier.verify(await sign(rsa, claims()), 'alice', { remoteAddress: '10.1.0.99' }), 'throttled');
    expect((await verifier.verify(await sign(rsa, claims({ preferred_username: 'bob' })), 'bob', { remoteAddress: '10.1.0.99' })).ok).toBe(true);
  });

  it('can share one AuthThrottle across verifiers, or be disabled', async () => {
    const throttle = new AuthThrottle({ maxFailures: 1, windowSeconds: 60, lockoutSeconds: 60 });
    const a = setup({}, { throttle }).verifier;
    const b = setup({}, { throttle }).verifier;
    expectFailure(await a.verify('garbage', 'alice', { remoteAddress: '10.2.0.1' }), 'malformed');
    expectFailure(await b.verify('garbage', 'bob', { remoteAddress: '10.2.0.1' }), 'throttled');

    const off = setup({ throttle: { maxFailures: 1 } }, { throttle: false }).verifier;
    for (let i = 0; i < 3; i += 1) expectFailure(await off.verify('garbage', 'alice', { remoteAddress: '10.2.0.2' }), 'malformed');
  });
});
