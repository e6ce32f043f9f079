import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { seedDemoData } from '../../src/upstream/demo-database.js';
import { freshDatabase, type TestServerInfo } from '../helpers/test-servers.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const DATABASE = 'policy_cli';

async function pgward(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'policy', ...args], { cwd: ROOT, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.each(inject('servers'))('pgward policy lint and explain (PostgreSQL $major)', (server: TestServerInfo) => {
  const url = `postgres://${server.superuser}:${server.superuserPassword}@127.0.0.1:${server.port}/${DATABASE}`;

  beforeAll(async () => {
    const client = await freshDatabase(server, DATABASE);
    await seedDemoData(client);
    await client.end();
  });

  it('accepts the shipped demo policies against the demo schema', async () => {
    const result = await pgward(['lint', '--dir', 'policies', '--url', url]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok: 1 file\(s\), version [0-9a-f]{12}, against database policy_cli/);
  });

  it('reports tables that match nothing and masks that do not fit the column type', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgward-lint-'));
    copyFileSync(join(ROOT, 'policies/demo.yaml'), join(dir, 'demo.yaml'));
    writeFileSync(
      join(dir, 'extra.yaml'),
      [
        'apiVersion: pgward.dev/v1',
        'kind: PolicySet',
        'metadata: { name: extra }',
        'spec:',
        '  defaultAction: deny',
        '  subjects: { everyone: { anyOf: [ { group: staff } ] } }',
        '  rules:',
        '    - { name: read-invoices, effect: allow, subjects: [everyone], actions: [select], resources: { tables: [public.invoices] } }',
        '  masks:',
        '    - { name: dob-partial, subjects: [everyone], resources: { columns: [public.customers.date_of_birth] }, mask: { type: partial, showLast: 2 } }',
      ].join('\n'),
    );
    const result = await pgward(['lint', '--dir', dir, '--url', url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/extra\.yaml:\d+: rule read-invoices: no table in policy_cli matches public\.invoices/);
    expect(result.stderr).toMatch(/mask dob-partial on public\.customers\.date_of_birth \(date\): /);
  });

  it('reports invalid policy files with file, line and column', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgward-lint-'));
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: pgward.dev/v1\nkind: PolicySet\nmetadata: { name: bad }\nspec:\n  defaultAction: perhaps\n');
    const result = await pgward(['lint', '--dir', dir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/bad\.yaml:5:\d+: /);
  });

  it('explains the rewrite for an analyst and says an admin is unrestricted', async () => {
    const sql = 'select full_name, ssn, email from customers where salary > 1000';
    const analyst = await pgward(['explain', '--dir', 'policies', '--url', url, '--as', 'bob', '--groups', 'analyst', '--claim', 'region=eu', '--sql', sql]);
    expect(analyst.code).toBe(0);
    expect(analyst.stdout).toMatch(/policy set demo: matches analysts/);
    expect(analyst.stdout).toMatch(/^rewrite$/m);
    expect(analyst.stdout).toMatch(/OFFSET 0/);
    expect(analyst.stdout).toMatch(/ssn ← public\.customers\.ssn \(masked by analysts-ssn-last4\)/);
    expect(analyst.stdout).toContain("'eu'");

    const denied = await pgward(['explain', '--dir', 'policies', '--url', url, '--as', 'bob', '--groups', 'analyst', '--sql', 'select card_number from customers']);
    expect(denied.stdout).toMatch(/deny \(SQLSTATE 42501\).*card numbers are not readable through pgward/);

    const admin = await pgward(['explain', '--dir', 'policies', '--url', url, '--as', 'alice', '--groups', 'dba', '--sql', sql]);
    expect(admin.stdout).toMatch(/unrestricted: statements are forwarded untouched/);
  });
});
