import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import type { OidcConfigInput } from '../../../src/auth/oidc-config.js';
import { OidcVerifier, type VerifierOptions } from '../../../src/auth/oidc-verifier.js';
import { privateJwk, startOidcProvider, type RunningProvider } from '../../helpers/oidc-provider.js';
import { b64, countingFetch, manualClock, oidcConfig } from './fixtures.js';

let provider: RunningProvider;
let issuer: string;
let oldRsa: JWK;
let ecKey: JWK;

const startProvider = (keys: JWK[]): void => provider.useKeys(keys);
const fetchToken = (client = 'reporting', resource = 'urn:pgward'): Promise<string> => provider.token(client, resource);

function verifierWithCounter(options: VerifierOptions = {}, overrides: Partial<OidcConfigInput> = {}) {
  const counter = countingFetch();
  const config = oidcConfig({ issuers: [{ issuer, audience: 'pgward' }], ...overrides });
  const verifier = new OidcVerifier(config, { fetch: counter.fetch, ...options });
  return {
    verifier,
    urls: counter.urls,
    jwksFetches: () => counter.urls.filter((u) => u === `${issuer}/jwks`).length,
  };
}

beforeAll(async () => {
  [oldRsa, ecKey] = await Promise.all([privateJwk('rsa-old', 'RS256'), privateJwk('ec-1', 'ES256')]);
  provider = await startOidcProvider([oldRsa, ecKey]);
  issuer = provider.issuer;
});

afterAll(async () => {
  await provider?.close();
});

describe('OidcVerifier against a real oidc-provider', () => {
  it('issues JWT access tokens that verify through discovery', async () => {
    const token = await fetchToken();
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa-old' });
    const { verifier, urls } = verifierWithCounter();
    const result = await verifier.verify(token, 'svc-reporting');
    expect(result).toMatchObject({
      ok: true,
      cached: false,
      identity: { user: 'svc-reporting', groups: ['analysts', 'ops'], source: 'oidc', issuer, subject: 'reporting' },
    });
    if (result.ok) expect(result.identity.claims).toMatchObject({ client_id: 'reporting', aud: 'pgward', scope: 'db' });
    expect(urls).toEqual([`${issuer}/.well-known/openid-configuration`, `${issuer}/jwks`]);
  });

  it('verifies ES256 tokens signed with the provider EC key', async () => {
    const token = await fetchToken('reporting', 'urn:pgward-ec');
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: 'ec-1' });
    const { verifier } = verifierWithCounter();
    expect((await verifier.verify(token, 'svc-reporting')).ok).toBe(true);
  });

  it('serves a repeated token from the cache with no fetch', async () => {
    const token = await fetchToken();
    const { verifier, urls } = verifierWithCounter();
    expect(await verifier.verify(token, 'svc-reporting')).toMatchObject({ ok: true, cached: false });
    const before = urls.length;
    expect(await verifier.verify(token, 'svc-reporting')).toMatchObject({ ok: true, cached: true });
    expect(urls.length).toBe(before);
  });

  it('refuses a token minted for another audience', async () => {
    const token = await fetchToken('reporting', 'urn:other');
    expect(decodeJwt(token).aud).toBe('other-service');
    const { verifier } = verifierWithCounter();
    expect(await verifier.verify(token, 'svc-reporting')).toMatchObject({ ok: false, reason: 'wrong_audience' });
  });

  it('binds the token user to the startup user', async () => {
    const { verifier } = verifierWithCounter();
    const etl = await fetchToken('etl');
    expect(await verifier.verify(etl, 'svc-reporting')).toMatchObject({ ok: false, reason: 'user_mismatch' });
    expect(await verifier.verify(etl, 'svc-etl')).toMatchObject({ ok: true, identity: { user: 'svc-etl', groups: ['loaders'] } });
  });

  it('refuses a provider token whose payload was altered', async () => {
    const token = await fetchToken();
    const [h, , s] = token.split('.');
    const forged = `${h}.${b64({ ...decodeJwt(token), preferred_username: 'postgres', groups: ['admins'] })}.${s}`;
    const { verifier } = verifierWithCounter();
    expect(await verifier.verify(forged, 'postgres')).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('follows a key rotation with exactly one extra JWKS fetch and keeps old keys working', async () => {
    const clock = manualClock();
    // Provider tokens live 600 s of real time; keep the simulated clock inside that.
    const { verifier, jwksFetches } = verifierWithCounter({ now: clock.now, throttle: false }, { jwksCacheMaxAgeSeconds: 120 });
    const oldA = await fetchToken();
    const oldB = await fetchToken();
    expect((await verifier.verify(oldA, 'svc-reporting')).ok).toBe(true);
    expect(jwksFetches()).toBe(1);

    // Restart the provider with a new key first (it signs with the first
    // matching key) and the old one still published.
    const newRsa = await privateJwk('rsa-new', 'RS256');
    startProvider([newRsa, oldRsa, ecKey]);
    try {
      const rotated = await fetchToken();
      expect(decodeProtectedHeader(rotated).kid).toBe('rsa-new');

      // The new kid is looked up at once, even just after the routine fetch.
      expect(await verifier.verify(rotated, 'svc-reporting')).toMatchObject({ ok: true, cached: false });
      expect(jwksFetches()).toBe(2);

      // An old-kid token never seen before still verifies against the refreshed set.
      expect(await verifier.verify(oldB, 'svc-reporting')).toMatchObject({ ok: true, cached: false });
      expect(await verifier.verify(await fetchToken(), 'svc-reporting')).toMatchObject({ ok: true, cached: false });
      expect(jwksFetches()).toBe(2);

      // Once the old key is withdrawn and the cached set ages out, old-kid tokens die.
      const oldC = await (async () => {
        startProvider([oldRsa, ecKey]);
        return fetchToken();
      })();
      startProvider([newRsa, ecKey]);
      clock.advance(121);
      // The aged-out set is refetched (3), and the unknown old kid gets its one refetch (4).
      expect(await verifier.verify(oldC, 'svc-reporting')).toMatchObject({ ok: false, reason: 'unknown_key' });
      expect(await verifier.verify(await fetchToken(), 'svc-reporting')).toMatchObject({ ok: true });
      expect(jwksFetches()).toBe(4);
    } finally {
      startProvider([oldRsa, ecKey]);
    }
  });
});
