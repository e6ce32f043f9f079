import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/**
 * A real OpenID provider (the `oidc-provider` package) on loopback, issuing
 * client-credentials JWT access tokens with discovery and JWKS over HTTP. Its
 * keys can be rotated in place: the issuer URL stays, the key set changes.
 */

// oidc-provider ships no type declarations; the surface used here is typed locally.
const PROVIDER_MODULE: string = 'oidc-provider';
type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type ProviderCtor = new (issuer: string, config: Record<string, unknown>) => { callback(): Handler };

export interface ProviderClient {
  secret: string;
  username: string;
  groups: readonly string[];
  claims?: Record<string, unknown>;
}

export const PROVIDER_CLIENTS: Readonly<Record<string, ProviderClient>> = {
  reporting: { secret: 'reporting-secret-0123456789abcdef', username: 'svc-reporting', groups: ['analysts', 'ops'], claims: { region: 'eu' } },
  etl: { secret: 'etl-secret-0123456789abcdef0123', username: 'svc-etl', groups: ['loaders'] },
};

/** Resource indicator → audience and signing algorithm of its JWT access tokens. */
export const PROVIDER_RESOURCES: Readonly<Record<string, { audience: string; alg: 'RS256' | 'ES256' }>> = {
  'urn:pgward': { audience: 'pgward', alg: 'RS256' },
  'urn:pgward-ec': { audience: 'pgward', alg: 'ES256' },
  'urn:other': { audience: 'other-service', alg: 'RS256' },
};

export interface RunningProvider {
  issuer: string;
  /** Every request path the provider served, in order. */
  requests: string[];
  token(client?: string, resource?: string): Promise<string>;
  /** Replace the signing keys (first RS256/ES256 key of each kind signs). */
  useKeys(keys: JWK[]): void;
  close(): Promise<void>;
}

export async function privateJwk(kid: string, alg: 'RS256' | 'ES256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

export async function startOidcProvider(keys?: JWK[]): Promise<RunningProvider> {
  const { default: Provider } = (await import(PROVIDER_MODULE)) as { default: ProviderCtor };
  let current: Handler = (_req, res) => res.end();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    current(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const useKeys = (signing: JWK[]): void => {
    const provider = new Provider(issuer, {
      clients: Object.entries(PROVIDER_CLIENTS).map(([id, c]) => ({
        client_id: id,
        client_secret: c.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      })),
      jwks: { keys: signing },
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
            const rs = PROVIDER_RESOURCES[resource];
            if (!rs) throw new Error(`unknown resource ${resource}`);
            return { scope: 'db', audience: rs.audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: rs.alg } } };
          },
        },
      },
      extraTokenClaims: async (ctx: { oidc: { client?: { clientId: string } } }) => {
        const client = PROVIDER_CLIENTS[ctx.oidc.client?.clientId ?? ''];
        return client ? { preferred_username: client.username, groups: [...client.groups], ...client.claims } : undefined;
      },
    });
    current = provider.callback();
  };
  useKeys(keys ?? (await Promise.all([privateJwk('rsa-1', 'RS256'), privateJwk('ec-1', 'ES256')])));

  return {
    issuer,
    requests,
    useKeys,
    async token(client = 'reporting', resource = 'urn:pgward') {
      const entry = PROVIDER_CLIENTS[client];
      if (!entry) throw new Error(`unknown client ${client}`);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client}:${entry.secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'db', resource }),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!res.ok || !body.access_token) throw new Error(`token endpoint: ${res.status} ${body.error} ${body.error_description}`);
      return body.access_token;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
