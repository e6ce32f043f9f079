import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CLI = join(import.meta.dirname, '../../dist/cli.js');
const run = promisify(execFile);

async function pgward(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('pgward command line', () => {
  it('is executable, so npx pgward runs it after npm ci', async () => {
    const { statSync } = await import('node:fs');
    expect(statSync(CLI).mode & 0o111).not.toBe(0);
    const { stdout } = await run('npx', ['--no-install', 'pgward', '--help'], { cwd: join(import.meta.dirname, '../..'), timeout: 20_000 });
    expect(stdout).toMatch(/pgward start/);
  });

  it('prints help', async () => {
    const result = await pgward(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/pgward start/);
  });

  it('exits 2 naming the field for an invalid config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgward-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'upstream: { url: "postgres://db", tls: { mode: maybe } }\n');
    const result = await pgward(['start', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/upstream\.tls\.mode/);
  });

  it('exits 2 for an unknown command and for bad flags', async () => {
    expect((await pgward(['launch'])).code).toBe(2);
    expect((await pgward(['start', '--listen', 'nonsense'])).code).toBe(2);
  });

  it('exits 2 when TLS is required but no certificate is configured', async () => {
    const result = await pgward(['start', '--upstream', 'postgres://127.0.0.1:1'], { PGWARD_ADMIN_ENABLED: 'false' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/tls\.cert/);
  });
});
