import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { createLogger, silentLogger, type Logger } from '../../src/log.js';
import { ProxyServer } from '../../src/proxy-server.js';
import { parseOidcConfig, type OidcConfigInput } from '../../src/auth/oidc-config.js';
import { OidcVerifier } from '../../src/auth/oidc-verifier.js';
import type { PolicyRuntime, SessionAuth } from '../../src/session/session.js';
import type { UpstreamTarget } from '../../src/upstream/connect.js';
import type { TestServerInfo } from './test-servers.js';

export interface PgwardUnderTest {
  host: string;
  port: number;
  proxy: ProxyServer;
  server: TestServerInfo;
  /** TLS options for clients: trust the dev CA that signed pgward's certificate. */
  ssl: { ca: string; servername: string };
  stop(graceMs?: number): Promise<void>;
}

export interface PgwardTestOptions {
  auth?: SessionAuth;
  policies?: PolicyRuntime;
  tlsRequired?: boolean;
  upstreamTls?: UpstreamTarget['tlsMode'];
  maxMessageSize?: number;
  startupTimeoutMs?: number;
  log?: Logger;
}

/** Runs a pgward proxy in this process in front of one of the test servers. */
export async function startPgward(server: TestServerInfo, options: PgwardTestOptions = {}): Promise<PgwardUnderTest> {
  const upstreamTls = options.upstreamTls ?? 'verify-full';
  const proxy = new ProxyServer({
    auth: options.auth ?? { mode: 'passthrough' },
    policies: options.policies,
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: server.certFile, key: server.keyFile, required: options.tlsRequired ?? true, minVersion: 'TLSv1.2' },
    upstream: {
      address: { host: 'localhost', port: server.port },
      tlsMode: upstreamTls,
      ca: readFileSync(server.caFile),
      connectTimeoutMs: 5_000,
    },
    maxMessageSize: options.maxMessageSize ?? 2 ** 30,
    startupTimeoutMs: options.startupTimeoutMs ?? 30_000,
    log: options.log ?? (process.env.PGWARD_TEST_LOG ? createLogger('debug') : silentLogger),
  });
  const address: AddressInfo = await proxy.listen();
  return {
    host: '127.0.0.1',
    port: address.port,
    proxy,
    server,
    ssl: { ca: readFileSync(server.caFile, 'utf8'), servername: 'localhost' },
    stop: (graceMs = 0) => proxy.stop(graceMs),
  };
}

export type ClientConfig = pg.ClientConfig;

/** A connected node-postgres client through pgward (or straight to the server with `direct`). */
export async function connectPg(
  target: PgwardUnderTest,
  user: string,
  password: string | undefined,
  extra: Partial<pg.ClientConfig> & { direct?: boolean } = {},
): Promise<pg.Client> {
  const { direct, ...rest } = extra;
  const client = new pg.Client({
    host: target.host,
    port: direct ? target.server.port : target.port,
    user,
    password,
    database: 'app',
    ssl: target.ssl,
    ...rest,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Runs a callback and returns the error it threw, failing if it did not throw. */
export async function errorOf(action: () => Promise<unknown>): Promise<Error & { code?: string; severity?: string }> {
  try {
    await action();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected an error, but the action succeeded');
}

type OidcAuth = Extract<SessionAuth, { mode: 'oidc' }>;

/**
 * OIDC authentication against one issuer, logging in upstream as `service`.
 * All test clients share 127.0.0.1, so the failure throttle is effectively off
 * unless a test sets one.
 */
export function oidcSessionAuth(
  issuer: string,
  service: OidcAuth['service'],
  overrides: Partial<OidcConfigInput> = {},
  extra: Partial<OidcAuth> = {},
): SessionAuth {
  const config = parseOidcConfig({ issuers: [{ issuer, audience: 'pgward' }], throttle: { maxFailures: 10_000 }, ...overrides });
  return {
    mode: 'oidc',
    verifier: new OidcVerifier(config),
    maxTokenBytes: config.maxTokenBytes,
    oauthBearer: undefined,
    plaintextAllowed: false,
    service,
    terminateAtExpiry: config.terminateAtExpiry,
    maxSessionLifetimeSeconds: config.maxSessionLifetimeSeconds,
    ...extra,
  };
}
