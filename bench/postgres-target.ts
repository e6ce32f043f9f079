/**
 * The one PostgreSQL 18 server every target leads to, with TLS on for direct
 * clients and pgbench's tables loaded.
 */
import { join } from 'node:path';
import pg from 'pg';
import type { CertificateFiles } from '../src/client/dev-certificates.js';
import { embeddedPostgresBinDir, startPostgres, type RunningPostgres } from '../src/upstream/postgres-server.js';
import { runChecked } from './processes.js';
import { libpqEnv, type Credentials, type Target } from './target.js';

/**
 * Durability is off (fsync, synchronous_commit): the cluster is thrown away,
 * and a disk flush per commit would hide the proxies' cost behind I/O waits.
 * Room for 500 memory-probe sessions through each proxy plus pooled ones.
 */
const SETTINGS: Record<string, string> = {
  max_connections: '700',
  shared_buffers: '256MB',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_wal_size: '4GB',
  checkpoint_timeout: '30min',
};

export async function startBenchPostgres(
  root: string,
  certificates: CertificateFiles,
  credentials: Credentials,
  log: (line: string) => void,
): Promise<RunningPostgres> {
  const server = await startPostgres({
    binDir: embeddedPostgresBinDir(),
    dataDir: join(root, 'data'),
    superuser: credentials.user,
    superuserPassword: credentials.password,
    tls: { certFile: certificates.certFile, keyFile: certificates.keyFile },
    settings: SETTINGS,
    log,
  });
  try {
    const admin = new pg.Client({
      host: server.host,
      port: server.port,
      user: credentials.user,
      password: credentials.password,
      database: 'postgres',
      ssl: { ca: credentials.ca },
    });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${credentials.database}`);
    } finally {
      await admin.end();
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** pgbench -i: about 16 MB of data per scale unit. */
export async function loadPgbenchTables(direct: Target, credentials: Credentials, scale: number): Promise<void> {
  await runChecked('pgbench', ['-i', '-q', '-s', String(scale)], {
    env: libpqEnv(direct, credentials),
    timeoutMs: 600_000,
  });
}
