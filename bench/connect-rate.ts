/**
 * Connections per second through one target: each connection is a TLS
 * handshake, a login, `select 1` and a clean close (node-postgres, from this
 * process), with a few workers in parallel so the proxy never waits on one client.
 */
import pg from 'pg';
import { clientConfig, type Credentials, type Target } from './target.js';

export interface ConnectRate {
  connections: number;
  elapsedMs: number;
  perSecond: number;
}

/** Two cores: enough parallel logins to keep pgward and PostgreSQL busy, not so many that they queue. */
export const CONNECT_WORKERS = 4;

/**
 * Opens `count` connections, the i-th with password `password(i)`, and times the lot.
 * The first failure stops the run and is thrown with the server's message.
 */
export async function measureConnectRate(
  target: Target,
  login: Credentials,
  password: (index: number) => string,
  count: number,
  workers = CONNECT_WORKERS,
): Promise<ConnectRate> {
  let next = 0;
  let done = 0;
  let failure: Error | undefined;
  const worker = async () => {
    while (failure === undefined && next < count) {
      const index = next++;
      const client = new pg.Client({ ...clientConfig(target, login), password: password(index) });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('select 1');
        await client.end();
        done++;
      } catch (error) {
        await client.end().catch(() => {});
        const code = (error as { code?: string }).code;
        failure ??= new Error(
          `connection ${index + 1} of ${count} through ${target.name} failed after ${done} succeeded: ` +
            `${(error as Error).message}${code ? ` (SQLSTATE ${code})` : ''}`,
        );
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(workers, count) }, worker));
  const elapsedMs = performance.now() - started;
  if (failure) throw failure;
  return { connections: count, elapsedMs, perSecond: count / (elapsedMs / 1000) };
}
