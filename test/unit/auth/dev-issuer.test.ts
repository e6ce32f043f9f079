import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { DEV_ISSUER_KEY_FILE, DevIssuer } from '../../../src/auth/dev-issuer.js';
import type { OidcConfig } from '../../../src/auth/oidc-config.js';
import { OidcVerifier } from '../../../src/auth/oidc-verifier.js';
import { countingFetch, manualClock, oidcConfig } from './fixtures.js';

const BASE = 'http://127.0.0.1:9187';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgward-dev-issuer-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Stands in for the admin server that will serve the dev issuer. */
function adminFetch(dev: DevIssuer, base = BASE): typeof fetch {
  return async (input) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url === `${dev.issuerUrl(base)}/.well-known/openid-configuration`) return Response.json(dev.openidConfiguration(base));
    if (url === dev.jwksUri(base)) return Response.json(dev.jwks());
    return new Response('not found', { status: 404 });
  };
}

function devConfig(dev: DevIssuer, base = BASE): OidcConfig {
  return { ...oidcConfig({ devIssuer: { enabled: true } }), issuers: [dev.issuerConfig(base)] };
}

describe('DevIssuer key file', () => {
  it('creates an ES256 key once, mode 0600, and reloads it', async () => {
    const first = await DevIssuer.loadOrCreate(dir);
    const path = join(dir, DEV_ISSUER_KEY_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const jwk = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: first.kid });
    expect(typeof jwk['d']).toBe('string');
    const second = await DevIssuer.loadOrCreate(dir);
    expect(second.kid).toBe(first.kid);
    expect(second.alg).toBe('ES256');
  });

  it('creates the directory if needed', async () => {
    const nested = join(dir, 'a', 'b');
    await DevIssuer.loadOrCreate(nested);
    expect((await stat(join(nested, DEV_ISSUER_KEY_FILE))).isFile()).toBe(true);
  });

  it('can use RS256; an existing key keeps its algorithm', async () => {
    const rs = await DevIssuer.loadOrCreate(dir, { alg: 'RS256' });
    expect(rs.alg).toBe('RS256');
    expect(rs.jwks().keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' });
    expect((await DevIssuer.loadOrCreate(dir, { alg: 'ES256' })).alg).toBe('RS256');
  });

  it('concurrent first runs agree on one key', async () => {
    const issuers = await Promise.all(Array.from({ length: 8 }, () => DevIssuer.loadOrCreate(dir)));
    expect(new Set(issuers.map((i) => i.kid)).size).toBe(1);
  });

  it('refuses a key file readable by others', async () => {
    await DevIssuer.loadOrCreate(dir);
    await chmod(join(dir, DEV_ISSUER_KEY_FILE), 0o644);
    await expect(DevIssuer.loadOrCreate(dir)).rejects.toThrow(/chmod 600/);
  });

  it('refuses a key file without a private key', async () => {
    const path = join(dir, DEV_ISSUER_KEY_FILE);
    await writeFile(path, JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', kid: 'k', alg: 'ES256' }), { mode: 0o600 });
    await expect(DevIssuer.loadOrCreate(dir)).rejects.toThrow(/private JWK/);
    await writeFile(path, 'nope', { mode: 0o600 });
    await expect(DevIssuer.loadOrCreate(dir)).rejects.toThrow(/JSON/);
  });
});

describe('DevIssuer documents', () => {
  it('publishes only public key material', async () => {
    const dev = await DevIssuer.loadOrCreate(dir, { alg: 'RS256' });
    const [jwk] = dev.jwks().keys;
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(jwk).not.toHaveProperty(member);
    expect(jwk).toMatchObject({ kid: dev.kid, use: 'sig' });
  });

  it('lives at /dev-issuer below the admin base URL', async () => {
    const dev = await DevIssuer.loadOrCreate(dir);
    expect(dev.issuerUrl(BASE)).toBe('http://127.0.0.1:9187/dev-issuer');
    expect(dev.issuerUrl(`${BASE}/`)).toBe('http://127.0.0.1:9187/dev-issuer');
    expect(dev.openidConfiguration(BASE)).toMatchObject({
      issuer: 'http://127.0.0.1:9187/dev-issuer',
      jwks_uri: 'http://127.0.0.1:9187/dev-issuer/jwks',
      id_token_signing_alg_values_supported: ['ES256'],
    });
    expect(dev.issuerConfig(BASE)).toMatchObject({ issuer: 'http://127.0.0.1:9187/dev-issuer', audience: ['pgward'] });
  });
});

describe('DevIssuer mint', () => {
  it('mints a token the verifier accepts via discovery', async () => {
    const dev = await DevIssuer.loadOrCreate(dir, { baseUrl: BASE });
    const counter = countingFetch(adminFetch(dev));
    const verifier = new OidcVerifier(devConfig(dev), { fetch: counter.fetch });
    const token = await dev.mint({ sub: 'alice', groups: ['analysts'], claims: { tenant: 'acme' } });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: dev.kid, typ: 'JWT' });
    const result = await verifier.verify(token, 'alice');
    expect(result).toMatchObject({
      ok: true,
      identity: { user: 'alice', groups: ['analysts'], source: 'oidc', subject: 'alice', issuer: `${BASE}/dev-issuer` },
    });
    if (result.ok) expect(result.identity.claims).toMatchObject({ tenant: 'acme', preferred_username: 'alice', aud: 'pgward' });
    expect(counter.urls).toEqual([`${BASE}/dev-issuer/.well-known/openid-configuration`, `${BASE}/dev-issuer/jwks`]);
  });

  it('RS256 dev tokens verify too', async () => {
    const dev = await DevIssuer.loadOrCreate(dir, { alg: 'RS256' });
    const verifier = new OidcVerifier(devConfig(dev), { fetch: adminFetch(dev) });
    expect((await verifier.verify(await dev.mint({ sub: 'bob', baseUrl: BASE }), 'bob')).ok).toBe(true);
  });

  it('sets registered claims itself; extra claims cannot override them', async () => {
    const clock = manualClock();
    const dev = await DevIssuer.loadOrCreate(dir, { baseUrl: BASE, now: clock.now });
    const token = await dev.mint({
      sub: 'alice',
      ttlSeconds: 60,
      audience: ['pgward', 'other'],
      claims: { iss: 'https://evil.example.com', exp: 9_999_999_999, sub: 'root', preferred_username: 'root' },
    });
    expect(decodeJwt(token)).toMatchObject({
      iss: `${BASE}/dev-issuer`,
      sub: 'alice',
      preferred_username: 'alice',
      aud: ['pgward', 'other'],
      iat: clock.seconds(),
      nbf: clock.seconds(),
      exp: clock.seconds() + 60,
    });
  });

  it('defaults to a one-hour lifetime and expires', async () => {
    const clock = manualClock();
    const dev = await DevIssuer.loadOrCreate(dir, { baseUrl: BASE, now: clock.now });
    const token = await dev.mint({ sub: 'alice' });
    const { iat, exp } = decodeJwt(token);
    expect(exp! - iat!).toBe(3600);
    const verifier = new OidcVerifier(devConfig(dev), { fetch: adminFetch(dev), now: clock.now });
    expect((await verifier.verify(token, 'alice')).ok).toBe(true);
    clock.advance(3600 + 31);
    expect(await verifier.verify(token, 'alice')).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('a token from another dev key is refused', async () => {
    const dev = await DevIssuer.loadOrCreate(dir, { baseUrl: BASE });
    const otherDir = await mkdtemp(join(tmpdir(), 'pgward-dev-issuer-other-'));
    try {
      const other = await DevIssuer.loadOrCreate(otherDir, { baseUrl: BASE });
      const verifier = new OidcVerifier(devConfig(dev), { fetch: adminFetch(dev) });
      expect(await verifier.verify(await other.mint({ sub: 'alice' }), 'alice')).toMatchObject({ ok: false, reason: 'unknown_key' });
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
  });

  it('validates its inputs', async () => {
    const dev = await DevIssuer.loadOrCreate(dir);
    await expect(dev.mint({ sub: 'alice' })).rejects.toThrow(/baseUrl/);
    await expect(dev.mint({ sub: '', baseUrl: BASE })).rejects.toThrow(/sub/);
    await expect(dev.mint({ sub: 'a', baseUrl: BASE, ttlSeconds: 0 })).rejects.toThrow(/ttlSeconds/);
    await expect(dev.mint({ sub: 'a', baseUrl: BASE, ttlSeconds: 1.5 })).rejects.toThrow(/ttlSeconds/);
    expect(() => dev.issuerUrl('file:///etc')).toThrow(/http/);
  });
});
