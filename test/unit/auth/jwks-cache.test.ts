import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors as joseErrors } from 'jose';
import { JwksCache, JwksUnavailableError, type JwksCacheOptions } from '../../../src/auth/jwks-cache.js';
import { OidcVerifier } from '../../../src/auth/oidc-verifier.js';
import {
  countingFetch,
  listen,
  makeKey,
  manualClock,
  oidcConfig,
  sendJson,
  sign,
  startLocalIssuer,
  type LocalIssuer,
  type TestKey,
} from './fixtures.js';

let key: TestKey;
let idp: LocalIssuer;

beforeAll(async () => {
  key = await makeKey('k1');
  idp = await startLocalIssuer([key]);
});

afterAll(async () => {
  await idp.close();
});

function cache(overrides: Partial<JwksCacheOptions> = {}): JwksCache {
  return new JwksCache({
    issuer: idp.issuer,
    allowInsecureHttp: false,
    fetch,
    now: Date.now,
    cooldownMs: 30_000,
    maxAgeMs: 600_000,
    timeoutMs: 2_000,
    ...overrides,
  });
}

const header = (kid: string) => ({ alg: 'RS256', kid });
const flat = { payload: '', signature: '' };

describe('JwksCache', () => {
  it('discovers jwks_uri once and resolves keys by kid', async () => {
    const c = cache();
    await expect(c.getKey(header('k1'), flat)).resolves.toBeDefined();
    await expect(c.getKey(header('k1'), flat)).resolves.toBeDefined();
    expect(c.stats()).toMatchObject({ discoveryFetches: 1, jwksFetches: 1, failures: 0 });
    expect(c.knownKids()).toEqual(['k1']);
  });

  it('uses a configured jwksUri without discovery', async () => {
    const counter = countingFetch();
    const c = cache({ jwksUri: `${idp.issuer}/jwks`, fetch: counter.fetch });
    await c.getKey(header('k1'), flat);
    expect(counter.urls).toEqual([`${idp.issuer}/jwks`]);
  });

  it('strips a trailing slash from the issuer before appending the discovery path', async () => {
    const slashed = await startLocalIssuer([key], '/realms/x');
    try {
      const counter = countingFetch();
      // The discovery document must echo the issuer exactly, slash included.
      slashed.discoveryOverride = { issuer: `${slashed.issuer}/` };
      const c = cache({ issuer: `${slashed.issuer}/`, fetch: counter.fetch });
      await c.getKey(header('k1'), flat);
      expect(counter.urls[0]).toBe(`${slashed.issuer}/.well-known/openid-configuration`);
    } finally {
      await slashed.close();
    }
  });

  it('shares one in-flight fetch between concurrent first callers', async () => {
    const counter = countingFetch();
    const c = cache({ fetch: counter.fetch });
    await Promise.all(Array.from({ length: 25 }, () => c.getKey(header('k1'), flat)));
    expect(counter.urls.filter((u) => u.endsWith('/jwks'))).toHaveLength(1);
  });

  it('refetches once for an unknown kid, then throws JWKSNoMatchingKey inside the cooldown', async () => {
    const c = cache();
    await c.getKey(header('k1'), flat);
    // A kid unknown right after a routine fetch may be a rotation: one refetch.
    await expect(c.getKey(header('nope'), flat)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
    expect(c.stats().jwksFetches).toBe(2);
    await expect(c.getKey(header('other'), flat)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
    expect(c.stats().jwksFetches).toBe(2);
  });

  it('does not follow redirects', async () => {
    const target = await listen((_req, res) => sendJson(res, 200, { keys: [key.publicJwk] }));
    const redirecting = await listen((req, res) => {
      res.writeHead(302, { location: `${target.url}${req.url}` });
      res.end();
    });
    try {
      const c = cache({ issuer: redirecting.url, jwksUri: `${redirecting.url}/jwks` });
      await expect(c.getKey(header('k1'), flat)).rejects.toBeInstanceOf(JwksUnavailableError);
      expect(target.requests).toEqual([]);
    } finally {
      await Promise.all([target.close(), redirecting.close()]);
    }
  });

  it('gives up on a hanging issuer after the timeout', async () => {
    const hanging = await listen(() => undefined);
    try {
      const c = cache({ issuer: hanging.url, timeoutMs: 200 });
      const started = Date.now();
      await expect(c.getKey(header('k1'), flat)).rejects.toBeInstanceOf(JwksUnavailableError);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await hanging.close();
    }
  });

  it('refuses an oversized key set', async () => {
    const huge = await listen((_req, res) => sendJson(res, 200, { keys: [key.publicJwk], pad: 'x'.repeat(2 * 1024 * 1024) }));
    try {
      const c = cache({ issuer: huge.url, jwksUri: `${huge.url}/jwks`, maxResponseBytes: 64 * 1024 });
      await expect(c.getKey(header('k1'), flat)).rejects.toThrow(/exceeds/);
    } finally {
      await huge.close();
    }
  });

  it('refuses malformed or private key sets', async () => {
    const bodies: unknown[] = [
      { keys: 'nope' },
      'not json at all',
      { keys: [{ ...key.publicJwk, kty: 'oct', k: 'c2VjcmV0', alg: 'HS256' }] },
    ];
    for (const body of bodies) {
      const srv = await listen((_req, res) => {
        if (typeof body === 'string') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(body);
        } else sendJson(res, 200, body);
      });
      try {
        const c = cache({ issuer: srv.url, jwksUri: `${srv.url}/jwks` });
        await expect(c.getKey(header('k1'), flat)).rejects.toThrow();
      } finally {
        await srv.close();
      }
    }
  });

  it('refuses a discovered jwks_uri over plain http off loopback', async () => {
    const issuer = await startLocalIssuer([key]);
    issuer.discoveryOverride = { jwks_uri: 'http://keys.example.com/jwks' };
    try {
      const counter = countingFetch();
      const c = cache({ issuer: issuer.issuer, fetch: counter.fetch });
      await expect(c.getKey(header('k1'), flat)).rejects.toThrow(/https/);
      expect(counter.urls.some((u) => u.includes('keys.example.com'))).toBe(false);
    } finally {
      await issuer.close();
    }
  });

  it('repeats discovery after a failed key fetch', async () => {
    const issuer = await startLocalIssuer([key]);
    issuer.jwksStatus = 404;
    try {
      const c = cache({ issuer: issuer.issuer, cooldownMs: 0 });
      await expect(c.getKey(header('k1'), flat)).rejects.toBeInstanceOf(JwksUnavailableError);
      issuer.jwksStatus = 200;
      await expect(c.getKey(header('k1'), flat)).resolves.toBeDefined();
      expect(c.stats()).toMatchObject({ discoveryFetches: 2, jwksFetches: 2, failures: 1 });
    } finally {
      await issuer.close();
    }
  });

  it('backs off after a failure instead of hammering the issuer', async () => {
    const issuer = await startLocalIssuer([key]);
    issuer.jwksStatus = 500;
    try {
      const clock = manualClock();
      const c = cache({ issuer: issuer.issuer, now: clock.now, cooldownMs: 30_000 });
      for (let i = 0; i < 5; i += 1) await expect(c.getKey(header('k1'), flat)).rejects.toBeInstanceOf(JwksUnavailableError);
      expect(issuer.jwksFetches()).toBe(1);
      clock.advance(6);
      issuer.jwksStatus = 200;
      await expect(c.getKey(header('k1'), flat)).resolves.toBeDefined();
      expect(issuer.jwksFetches()).toBe(2);
    } finally {
      await issuer.close();
    }
  });

  it('serves stale keys during an outage for at most one extra maxAge', async () => {
    const issuer = await startLocalIssuer([key]);
    try {
      const clock = manualClock();
      const c = cache({ issuer: issuer.issuer, now: clock.now, maxAgeMs: 600_000, cooldownMs: 30_000 });
      await c.getKey(header('k1'), flat);
      issuer.jwksStatus = 503;
      clock.advance(601);
      await expect(c.getKey(header('k1'), flat)).resolves.toBeDefined();
      clock.advance(600);
      await expect(c.getKey(header('k1'), flat)).rejects.toBeInstanceOf(JwksUnavailableError);
    } finally {
      await issuer.close();
    }
  });

  it('a withdrawn key stops verifying once the key set is refreshed', async () => {
    const issuer = await startLocalIssuer([key]);
    try {
      const clock = manualClock();
      const verifier = new OidcVerifier(
        oidcConfig({ issuers: [{ issuer: issuer.issuer, audience: 'pgward' }], tokenCacheSize: 0 }),
        { now: clock.now, throttle: false },
      );
      const mint = () => sign(key, { iss: issuer.issuer, aud: 'pgward', preferred_username: 'a' }, { now: clock.seconds(), ttl: 7200 });
      expect((await verifier.verify(await mint(), 'a')).ok).toBe(true);
      issuer.published = [];
      clock.advance(601);
      expect(await verifier.verify(await mint(), 'a')).toMatchObject({ ok: false, reason: 'unknown_key' });
    } finally {
      await issuer.close();
    }
  });
});

describe('OidcVerifier with several key candidates', () => {
  it('tries each same-type key when the token has no kid', async () => {
    const second = await makeKey('k2');
    const attacker = await makeKey('evil');
    const issuer = await startLocalIssuer([key, second]);
    try {
      const verifier = new OidcVerifier(oidcConfig({ issuers: [{ issuer: issuer.issuer, audience: 'pgward' }] }), { throttle: false });
      const claims = { iss: issuer.issuer, aud: 'pgward', preferred_username: 'a' };
      const noKid = (k: TestKey) => sign({ ...k, kid: undefined as unknown as string }, claims);
      expect((await verifier.verify(await noKid(second), 'a')).ok).toBe(true);
      expect((await verifier.verify(await noKid(key), 'a')).ok).toBe(true);
      expect(await verifier.verify(await noKid(attacker), 'a')).toMatchObject({ ok: false, reason: 'bad_signature' });
    } finally {
      await issuer.close();
    }
  });
});
