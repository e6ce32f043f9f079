/**
 * pgbouncer as the reference proxy: session pooling, TLS from clients with the
 * same certificate pgward presents, SCRAM for clients, plaintext loopback to
 * PostgreSQL — the same work pgward does in passthrough mode.
 */
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import type { CertificateFiles } from '../src/client/dev-certificates.js';
import { describeFailure, runCommand, Service } from './processes.js';
import { clientConfig, type Credentials, type Target } from './target.js';

/** Who runs pgbouncer: it refuses root, so as root it runs as the user PostgreSQL runs as. */
export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

const RUN_AS_USER = 'pgward';
const PACKAGE = 'pgbouncer';

/** Finds pgbouncer; as root, installs the Debian package when it is missing. */
export async function pgbouncerBinary(log: (line: string) => void): Promise<string> {
  const found = findOnPath('pgbouncer');
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error(`pgbouncer is not installed; install the Debian package ${PACKAGE} (apt-get install -y ${PACKAGE})`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`pgbouncer not found: apt-get install -y ${PACKAGE}`);
  let install = await runCommand('apt-get', ['install', '-y', PACKAGE], { env, timeoutMs: 600_000 });
  if (install.code !== 0) {
    log('install failed; apt-get update, then trying again');
    await runCommand('apt-get', ['update'], { env, timeoutMs: 600_000 });
    install = await runCommand('apt-get', ['install', '-y', PACKAGE], { env, timeoutMs: 600_000 });
  }
  const installed = findOnPath('pgbouncer');
  if (install.code !== 0 || !installed) {
    throw new Error(`could not install the Debian package ${PACKAGE}:\n${describeFailure(install)}`);
  }
  return installed;
}

/** PATH, plus the sbin folders a non-login root shell often leaves out (Debian puts pgbouncer in /usr/sbin). */
function findOnPath(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export async function serviceUser(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string) => {
    const result = await runCommand('id', [flag, RUN_AS_USER]);
    if (result.code !== 0) throw new Error(`pgbouncer refuses to run as root and there is no user ${RUN_AS_USER} to run it as`);
    return Number(result.stdout.trim());
  };
  return { name: RUN_AS_USER, uid: await id('-u'), gid: await id('-g') };
}

export async function pgbouncerVersion(binary: string): Promise<string> {
  const result = await runCommand(binary, ['--version']);
  return result.stdout.split('\n')[0]?.trim() || 'unknown';
}

export interface RunningPgbouncer {
  service: Service;
  target: Target;
  stop(): Promise<void>;
}

export interface PgbouncerOptions {
  binary: string;
  /** Created if missing; holds the config, auth_file and a copy of the certificate and key. */
  dir: string;
  upstream: { host: string; port: number };
  certificates: CertificateFiles;
  credentials: Credentials;
  runAs: RunAs | undefined;
}

export async function startPgbouncer(options: PgbouncerOptions): Promise<RunningPgbouncer> {
  const { dir, runAs, credentials } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await own(dir, 0o700, runAs);
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  await copyFile(options.certificates.certFile, certFile);
  await own(certFile, 0o600, runAs);
  await copyFile(options.certificates.keyFile, keyFile);
  await own(keyFile, 0o600, runAs);
  const authFile = join(dir, 'userlist.txt');
  // A plaintext password lets pgbouncer run SCRAM on both sides.
  await writeFile(authFile, `${quote(credentials.user)} ${quote(credentials.password)}\n`);
  await own(authFile, 0o600, runAs);

  const port = await freePort();
  const ini = [
    '[databases]',
    `${credentials.database} = host=${options.upstream.host} port=${options.upstream.port} dbname=${credentials.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'pidfile =',
    'logfile =',
    'pool_mode = session',
    // Session pooling holds one server connection per client: room for the 500-session probe.
    'max_client_conn = 2000',
    'default_pool_size = 600',
    'auth_type = scram-sha-256',
    `auth_file = ${authFile}`,
    'ignore_startup_parameters = extra_float_digits,options',
    'client_tls_sslmode = require',
    `client_tls_cert_file = ${certFile}`,
    `client_tls_key_file = ${keyFile}`,
    'server_tls_sslmode = disable',
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n');
  const iniFile = join(dir, 'pgbouncer.ini');
  await writeFile(iniFile, ini);
  await own(iniFile, 0o600, runAs);

  const service = new Service('pgbouncer', options.binary, [iniFile], {
    env: { ...process.env, LC_ALL: 'C' },
    uid: runAs?.uid,
    gid: runAs?.gid,
  });
  const target: Target = { name: 'pgbouncer', host: '127.0.0.1', port };
  const stop = () => service.stop('SIGTERM');
  try {
    await service.waitFor((line) => (line.includes('listening on') ? true : undefined), 15_000);
    await probe(target, credentials);
  } catch (error) {
    await stop();
    throw error;
  }
  return { service, target, stop };
}

/** One real login and query proves the TLS, auth_file and upstream settings together. */
async function probe(target: Target, credentials: Credentials): Promise<void> {
  const client = new pg.Client(clientConfig(target, credentials));
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new Error(`pgbouncer started but a TLS + SCRAM login through it failed: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

async function own(path: string, mode: number, runAs: RunAs | undefined): Promise<void> {
  await chmod(path, mode);
  if (runAs) await chown(path, runAs.uid, runAs.gid);
}

/** auth_file syntax: double-quoted, a double quote doubled. */
function quote(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
