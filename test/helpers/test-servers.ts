/**
 * Real PostgreSQL servers for integration tests: one fresh cluster per server,
 * TLS on, and one login role per password method so auth paths can be tested
 * against the real thing. Started once by test/integration/global-setup.ts and
 * handed to test files with `inject('servers')`.
 */
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ensureDevCertificates } from '../../src/client/dev-certificates.js';
import { debianPostgresBinDir, embeddedPostgresBinDir, startPostgres } from '../../src/upstream/postgres-server.js';

export type TestServerName = 'pg18' | 'pg15';

export interface TestServerInfo {
  name: TestServerName;
  major: number;
  host: string;
  port: number;
  socketDir: string;
  superuser: string;
  superuserPassword: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    servers: TestServerInfo[];
  }
}

/** Passwords of the test roles; trust_user has none. */
export const TEST_PASSWORDS = {
  md5_user: 'md5pass',
  password_user: 'plainpass',
  scram_user: 'scrampass',
} as const;

export const TEST_ROLES = ['trust_user', 'md5_user', 'password_user', 'scram_user'] as const;
export type TestRole = (typeof TEST_ROLES)[number];

/** The application database every test role may connect to. */
export const TEST_DATABASE = 'app';

export const DEBIAN_PG15_MISSING =
  'Debian PostgreSQL 15 not found at /usr/lib/postgresql/15/bin: install it with ' +
  '`apt-get install -y postgresql-15 postgresql-client-15` ' +
  '(or set PGWARD_TEST_MAJORS=18 to test only the embedded PostgreSQL 18)';

const SUPERUSER = 'pgward_test';
const SUPERUSER_PASSWORD = 'superpass';

// Specific roles first: pg_hba.conf is matched top to bottom. `host` (not
// `hostssl`) so every method is reachable with and without TLS.
const HBA = [
  'local all all scram-sha-256',
  ...['127.0.0.1/32', '::1/128'].flatMap((net) => [
    `host all trust_user ${net} trust`,
    `host all md5_user ${net} md5`,
    `host all password_user ${net} password`,
    `host all all ${net} scram-sha-256`,
  ]),
];

function binDirFor(name: TestServerName): string {
  if (name === 'pg18') return embeddedPostgresBinDir();
  const binDir = debianPostgresBinDir(15);
  if (!binDir) throw new Error(DEBIAN_PG15_MISSING);
  return binDir;
}

export async function startTestServer(
  name: TestServerName,
): Promise<{ info: TestServerInfo; stop(): Promise<void> }> {
  const binDir = binDirFor(name);
  const root = await mkdtemp(join(tmpdir(), `pgward-${name}-`));
  try {
    // mkdtemp makes 0700; under root, PostgreSQL runs as another user that must traverse it.
    await chmod(root, 0o711);
    const certs = await ensureDevCertificates(join(root, 'certs'));
    const logLines: string[] = [];
    const server = await startPostgres({
      binDir,
      dataDir: join(root, 'data'),
      superuser: SUPERUSER,
      superuserPassword: SUPERUSER_PASSWORD,
      tls: { certFile: certs.certFile, keyFile: certs.keyFile },
      hba: HBA,
      // Throwaway clusters: durability buys nothing and costs test time.
      settings: { max_connections: '200', fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
      log: (line) => {
        logLines.push(line);
        if (logLines.length > 500) logLines.shift();
      },
    });
    const info: TestServerInfo = {
      name,
      major: server.major,
      host: server.host,
      port: server.port,
      socketDir: server.socketDir,
      superuser: server.superuser,
      superuserPassword: server.superuserPassword,
      caFile: certs.caFile,
      certFile: certs.certFile,
      keyFile: certs.keyFile,
    };
    try {
      await createRoles(info);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return {
      info,
      stop: async () => {
        await server.stop();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

async function createRoles(info: TestServerInfo): Promise<void> {
  const client = new pg.Client({
    host: info.host,
    port: info.port,
    user: info.superuser,
    password: info.superuserPassword,
    database: 'postgres',
    ssl: { ca: await readFile(info.caFile) },
  });
  await client.connect();
  try {
    await client.query('CREATE ROLE trust_user LOGIN');
    // The md5 method needs an md5 hash stored; PostgreSQL 18 warns that md5 is deprecated, and still does it.
    await client.query(`SET password_encryption = 'md5'`);
    await client.query(`CREATE ROLE md5_user LOGIN PASSWORD '${TEST_PASSWORDS.md5_user}'`);
    await client.query('RESET password_encryption');
    await client.query(`CREATE ROLE password_user LOGIN PASSWORD '${TEST_PASSWORDS.password_user}'`);
    await client.query(`CREATE ROLE scram_user LOGIN PASSWORD '${TEST_PASSWORDS.scram_user}'`);
    await client.query(`CREATE DATABASE ${TEST_DATABASE} OWNER ${info.superuser}`);
    await client.query(`GRANT CONNECT ON DATABASE ${TEST_DATABASE} TO PUBLIC`);
  } finally {
    await client.end();
  }
}

/**
 * A fresh database on a test server (dropped first if a previous run left it),
 * and a superuser client connected to it, for a test file's own schema.
 */
export async function freshDatabase(server: TestServerInfo, name: string): Promise<pg.Client> {
  const superuser = { host: '127.0.0.1', port: server.port, user: server.superuser, password: server.superuserPassword };
  const admin = new pg.Client({ ...superuser, database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const client = new pg.Client({ ...superuser, database: name });
  await client.connect();
  return client;
}
