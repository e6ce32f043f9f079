/**
 * The embedded default database behind `npm start`: first start initialises
 * and seeds it, a restart on the same state directory reuses everything.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoRows, startEmbeddedDefault, type EmbeddedDefault } from '../../src/upstream/demo-database.js';
import { embeddedPostgresBinDir, startPostgres } from '../../src/upstream/postgres-server.js';

async function query<T extends pg.QueryResultRow>(db: EmbeddedDefault, sql: string): Promise<T[]> {
  const client = new pg.Client({
    connectionString: db.url,
    ssl: { ca: await readFile(db.certificates.caFile) },
  });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

describe('embedded default database', () => {
  let root: string;
  let stateDir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgward-demo-'));
    await chmod(root, 0o711); // PostgreSQL may run as another user (see postgres-server.ts)
    stateDir = join(root, 'state');
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('starts, seeds over TLS, and reuses password and data on restart', async () => {
    const first = await startEmbeddedDefault(stateDir, (m) => logs.push(m));
    let firstCount: number;
    try {
      expect(first.server.major).toBe(18);
      expect(first.url).toBe(`postgres://pgward_admin:${first.password}@127.0.0.1:${first.port}/demo`);
      const [row] = await query<{ n: number; ssl: boolean }>(
        first,
        'SELECT (SELECT count(*)::int FROM customers) AS n, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      expect(row?.ssl).toBe(true);
      firstCount = row!.n;
      expect(firstCount).toBe(demoRows().customers.length);
      expect(logs.some((l) => l.startsWith('seeded demo'))).toBe(true);
    } finally {
      await first.server.stop();
    }

    const credentials = JSON.parse(await readFile(join(stateDir, 'credentials.json'), 'utf8')) as { password: string };
    expect(credentials.password).toBe(first.password);
    expect((await stat(join(stateDir, 'credentials.json'))).mode & 0o777).toBe(0o600);

    logs.length = 0;
    const second = await startEmbeddedDefault(stateDir, (m) => logs.push(m));
    try {
      expect(second.password).toBe(first.password);
      expect(second.user).toBe('pgward_admin');
      expect(logs.some((l) => l.includes('initialising'))).toBe(false);
      expect(logs.some((l) => l.startsWith('seeded demo'))).toBe(false);
      const [counts] = await query<{ customers: number; orders: number }>(
        second,
        'SELECT (SELECT count(*)::int FROM customers) AS customers, (SELECT count(*)::int FROM orders) AS orders',
      );
      expect(counts).toEqual({ customers: firstCount, orders: demoRows().orders.length });
    } finally {
      await second.server.stop();
    }
  });

  it('seeds plausible PII across all regions', async () => {
    const db = await startEmbeddedDefault(stateDir, () => {});
    try {
      const customers = await query<{ region: string; ssn: string; card_number: string; email: string }>(
        db,
        'SELECT region, ssn, card_number, email FROM customers ORDER BY id',
      );
      expect(new Set(customers.map((c) => c.region))).toEqual(new Set(['eu', 'us', 'apac']));
      for (const c of customers) {
        expect(c.ssn).toMatch(/^\d{3}-\d{2}-\d{4}$/);
        expect(c.card_number).toMatch(/^\d{4}([ -])\d{4}\1\d{4}\1\d{4}$/);
        expect(luhnValid(c.card_number.replace(/\D/g, ''))).toBe(true);
        expect(c.email).toMatch(/^[a-z]+\.[a-z]+@(example\.(com|org|net)|mail\.example)$/);
      }
      const [orphans] = await query<{ n: number }>(
        db,
        'SELECT count(*)::int AS n FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL',
      );
      expect(orphans?.n).toBe(0);
    } finally {
      await db.server.stop();
    }
  });

  it('explains a data directory the server user cannot reach (root), or starts in it (not root)', async () => {
    const closed = join(root, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    const start = () =>
      startPostgres({
        binDir: embeddedPostgresBinDir(),
        dataDir: join(closed, 'data'),
        superuser: 'x',
        superuserPassword: 'x',
      });
    if (process.getuid?.() === 0) {
      // As root, PostgreSQL runs as the unprivileged user pgward, which cannot enter a 0700 folder of root's.
      await expect(start()).rejects.toThrow(/not traversable by pgward/);
    } else {
      // Otherwise the server runs as this very user, which owns the folder.
      const server = await start();
      await server.stop();
    }
  });
});
