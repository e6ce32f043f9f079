import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { parseOidcConfig, type OidcConfig, type OidcConfigInput } from '../../../src/auth/oidc-config.js';

export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function makeKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export interface SignOptions {
  header?: Record<string, unknown>;
  /** Epoch seconds used for iat/exp defaults. */
  now?: number;
  ttl?: number;
}

/** Sign `claims` (iat/exp filled relative to `now` unless given). */
export async function sign(key: TestKey, claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { iat: now, exp: now + (options.ttl ?? 600), ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...options.header })
    .sign(key.privateKey);
}

/** RS256 over arbitrary header/payload, bypassing jose's own header checks. */
export async function signRaw(key: TestKey, header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key.privateKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}

export function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface LocalServer {
  url: string;
  /** Every request path seen, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function listen(handler: Handler): Promise<LocalServer & { server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export interface LocalIssuer extends LocalServer {
  issuer: string;
  /** Keys currently published at /jwks (mutable). */
  published: JWK[];
  /** Overrides the discovery document (merged over the default). */
  discoveryOverride: Record<string, unknown>;
  /** Status to answer /jwks with (200 = publish keys). */
  jwksStatus: number;
  jwksFetches(): number;
  discoveryFetches(): number;
}

/** A minimal issuer: discovery document and JWKS, counting requests. */
export async function startLocalIssuer(keys: readonly TestKey[], path = ''): Promise<LocalIssuer> {
  // The handler reads the live object so tests can change what is served.
  let self: LocalIssuer | undefined;
  const srv = await listen((req, res) => {
    const s = self!;
    if (req.url === `${path}/.well-known/openid-configuration`) {
      sendJson(res, 200, { issuer: s.issuer, jwks_uri: `${s.issuer}/jwks`, ...s.discoveryOverride });
    } else if (req.url === `${path}/jwks`) {
      if (s.jwksStatus !== 200) sendJson(res, s.jwksStatus, { error: 'nope' });
      else sendJson(res, 200, { keys: s.published });
    } else {
      sendJson(res, 404, { error: 'not found' });
    }
  });
  self = {
    url: srv.url,
    requests: srv.requests,
    close: srv.close,
    issuer: `${srv.url}${path}`,
    published: keys.map((k) => k.publicJwk),
    discoveryOverride: {},
    jwksStatus: 200,
    jwksFetches: () => srv.requests.filter((r) => r === `${path}/jwks`).length,
    discoveryFetches: () => srv.requests.filter((r) => r.endsWith('/.well-known/openid-configuration')).length,
  };
  return self;
}

/** fetch that records every URL it is asked for. */
export function countingFetch(inner: typeof fetch = fetch): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = [];
  const wrapped: typeof fetch = (input, init) => {
    urls.push(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    return inner(input, init);
  };
  return { fetch: wrapped, urls };
}

/** A settable clock in epoch milliseconds. */
export function manualClock(start = Date.now()): { now: () => number; advance(seconds: number): void; seconds(): number } {
  let t = start;
  return {
    now: () => t,
    advance: (seconds: number) => { t += seconds * 1000; },
    seconds: () => Math.floor(t / 1000),
  };
}

export function oidcConfig(input: OidcConfigInput): OidcConfig {
  return parseOidcConfig(input);
}
