import { spawn } from 'node:child_process';
import type { PgwardUnderTest } from './pgward.js';

export interface PsqlResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/**
 * Runs the real psql against pgward (unaligned, tuples only, no psqlrc) and
 * returns its output and exit code without throwing.
 */
export function psql(
  target: Pick<PgwardUnderTest, 'host' | 'port'>,
  conninfo: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string; dbname?: string } = {},
): Promise<PsqlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'psql',
      [`host=${target.host} port=${target.port} dbname=${options.dbname ?? 'app'} ${conninfo}`, '-X', '-A', '-t', ...args],
      { env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
    child.stdin.end(options.input ?? '');
  });
}
