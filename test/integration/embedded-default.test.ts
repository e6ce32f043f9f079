import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../dist/cli.js');

/** What `npm start` runs, started the same way, with its own state folder and free ports. */
describe('npm start: the embedded default', () => {
  let child: ChildProcess;
  let stateDir: string;
  /** The token and psql lines printed for each persona, exactly as a person would paste them. */
  let logins: { admin: string; analyst: string } = { admin: '', analyst: '' };
  let stderr = '';

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'pgward-start-'));
    // The unprivileged PostgreSQL user must be able to enter the folder when tests run as root.
    chmodSync(stateDir, 0o711);
    child = spawn(process.execPath, [CLI, 'start'], {
      env: { ...process.env, PGWARD_STATE_DIR: stateDir, PGWARD_LISTEN_PORT: '0', PGWARD_ADMIN_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    logins = await new Promise((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`no psql commands printed within 90 s:\n${stderr}`)), 90_000);
      child.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString();
        const lines = stdout.split('\n');
        const psqlAt = lines.flatMap((l, i) => (l.includes('psql "') ? [i] : []));
        if (psqlAt.length === 2) {
          clearTimeout(timer);
          const login = (at: number) => `${lines[at - 1]!.trim()}; ${lines[at]!.trim()}`;
          resolve({ admin: login(psqlAt[0]!), analyst: login(psqlAt[1]!) });
        }
      });
      child.once('exit', (code) => reject(new Error(`pgward exited with ${code}:\n${stderr}`)));
    });
  });

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  });

  const shell = (sql: string, login = logins.admin) =>
    run('bash', ['-c', `${login} -X -A -t -c "${sql}"`], { timeout: 30_000, cwd: join(import.meta.dirname, '../..') }).then((r) =>
      r.stdout.trim(),
    );

  it('prints a psql command that connects with sslmode=require and reads the demo data', async () => {
    expect(logins.admin).toMatch(/export PGPASSWORD="\$\(npx pgward token --sub alice --groups dba/);
    expect(logins.admin).toMatch(/sslmode=require/);
    expect(await shell('select current_user')).toBe('pgward_admin');
    const count = await shell('select count(*) from customers');
    expect(Number(count)).toBeGreaterThan(0);
    const ssl = await shell('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    // The client link is TLS to pgward; pgward reaches its embedded server over a Unix socket.
    expect(ssl).toBe('f');
    const joined = await shell('select count(*) from orders o join customers c on c.id = o.customer_id');
    expect(Number(joined)).toBeGreaterThan(0);
  });

  it('shows the analyst persona masked values of eu customers only', async () => {
    const rows = (await shell('select ssn, email, region, salary from customers', logins.analyst)).split('\n');
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      const [ssn, email, region, salary] = row.split('|');
      expect(ssn).toMatch(/^XXX-XX-\d{4}$/);
      expect(email).toMatch(/^xxxxx@/);
      expect(region).toBe('eu');
      expect(salary).toBe('');
    }
    const refused = await shell('select card_number from customers', logins.analyst).catch((e: { stderr: string }) => e.stderr);
    expect(refused).toMatch(/card numbers are not readable through pgward/);
  });

  it('gives two psql sessions at once each its own backend', async () => {
    const sleepAndPid = 'select pg_backend_pid() from pg_sleep(0.5)';
    const [a, b] = await Promise.all([shell(sleepAndPid), shell(sleepAndPid)]);
    expect(a).toMatch(/^\d+$/);
    expect(b).toMatch(/^\d+$/);
    expect(a).not.toBe(b);
  });

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/"message":"stopped"/);
  });
});
