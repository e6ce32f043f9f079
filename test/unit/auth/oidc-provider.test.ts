import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { OidcConfigInput } from '../../../src/auth/oidc-config.js';
import { OidcVerifier, type VerifierOptions } from '../../../src/auth/oidc-verifier.js';
import { b64, countingFetch, listen, manualClock, oidcConfig, type LocalServer } from './fixtures.js';

// oidc-provider ships no type declarations; keep the surface we use typed here
// instead of declaring the module globally for the whole project.
const PROVIDER_MODULE: string = 'oidc-provider';
type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type ProviderCtor = new (issuer: string, config: Record<string, unknown>) => { callback(): Handler };

const CLIENTS = {
  reporting: { secret: 'reporting-secret-0123456789abcdef', username: 'svc-reporting', groups: ['analysts', 'ops'] },
  etl: { secret: 'etl-secret-0123456789abcdef0123', username: 'svc-etl', groups: ['loaders'] },
} as const;
type ClientId = keyof typeof CLIENTS;

/** Resource indicator → audience and signing algorithm of its JWT access tokens. */
const RESOURCES: Record<string, { audience: string; alg: 'RS256' | 'ES256' }> = {
  'urn:pgward': { audience: 'pgward', alg: 'RS256' },
  'urn:pgward-ec': { audience: 'pgward', alg: 'ES256' },
  'urn:other': { audience: 'other-service', alg: 'RS256' },
};

async function privateJwk(kid: string, alg: 'RS256' | 'ES256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

let Provider: ProviderCtor;
let server: LocalServer;
let issuer: string;
let current: Handler;
let oldRsa: JWK;
let ecKey: JWK;

/** Replace the running provider (same issuer URL) with one using `keys`. */
function startProvider(keys: JWK[]): void {
  const provider = new Provider(issuer, {
    clients: Object.entries(CLIENTS).map(([id, c]) => ({
      client_id: id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    jwks: { keys },
    cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => 'urn:pgward',
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          const rs = RESOURCES[resource];
          if (!rs) throw new Error(`unknown resource ${resource}`);
          return { scope: 'db', audience: rs.audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: rs.alg } } };
        },
      },
    },
    extraTokenClaims: async (ctx: { oidc: { client?: { clientId: string } } }) => {
      const client = CLIENTS[ctx.oidc.client?.clientId as ClientId];
      return client ? { preferred_username: client.username, groups: [...client.groups] } : undefined;
    },
  });
  current = provider.callback();
}

/** client_credentials grant over HTTP against the token endpoint. */
async function fetchToken(client: ClientId = 'reporting', resource = 'urn:pgward'): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client}:${CLIENTS[client].secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'db', resource }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
  if (!res.ok || !body.access_token) throw new Error(`token endpoint: ${res.status} ${body.error} ${body.error_description}`);
  return body.access_token;
}

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
  ({ default: Provider } = (await import(PROVIDER_MODULE)) as { default: ProviderCtor });
  server = await listen((req, res) => current(req, res));
  issuer = server.url;
  [oldRsa, ecKey] = await Promise.all([privateJwk('rsa-old', 'RS256'), privateJwk('ec-1', 'ES256')]);
  startProvider([oldRsa, ecKey]);
});

afterAll(async () => {
  await server?.close();
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

      // Inside the cooldown after the last fetch the new kid is not looked up.
      expect(await verifier.verify(rotated, 'svc-reporting')).toMatchObject({ ok: false, reason: 'unknown_key' });
      expect(jwksFetches()).toBe(1);

      clock.advance(31);
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
      expect(await verifier.verify(oldC, 'svc-reporting')).toMatchObject({ ok: false, reason: 'unknown_key' });
      expect(await verifier.verify(await fetchToken(), 'svc-reporting')).toMatchObject({ ok: true });
      expect(jwksFetches()).toBe(3);
    } finally {
      startProvider([oldRsa, ecKey]);
    }
  });
});
