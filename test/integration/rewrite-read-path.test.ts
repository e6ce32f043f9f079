/**
 * The rewriter against real PostgreSQL: the catalog snapshot is read with
 * CATALOG_SQL, statements of an analyst (claims region=eu) are planned with
 * planRewrite and the rewritten SQL runs directly on the server. Whatever an
 * adversarial statement tries, no raw SSN, email, salary, card number or
 * birth date, and no row of another region, may appear in its results or
 * errors. Each leak-oriented statement is also run unrewritten, as a control
 * that it would have leaked.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Identity } from '../../src/auth/identity.js';
import { createPolicyContext, isUnrestricted, type PolicyContext } from '../../src/policy/decide.js';
import { parsePolicyText, type PolicyBundle } from '../../src/policy/load.js';
import { ancestors, buildCatalog, CATALOG_SQL, resolveFunction, resolveRelation, type Catalog } from '../../src/rewrite/catalog.js';
import { loadSqlParser } from '../../src/rewrite/placeholders.js';
import { planRewrite, type RewriteDecision } from '../../src/rewrite/plan.js';
import { psql } from '../helpers/psql.js';
import type { TestServerInfo } from '../helpers/test-servers.js';
import { DEMO_POLICIES } from '../unit/rewrite/fixtures.js';

const servers = inject('servers');
const DATABASE = 'pgward_rewrite';

const SCHEMA = [
  `CREATE TABLE customers (id int4 PRIMARY KEY, full_name text, email text, ssn text, region text, salary numeric(10,2),
     card_number text, date_of_birth date, created_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z')`,
  `CREATE TABLE orders (id int4 PRIMARY KEY, customer_id int4, amount numeric, status text, ordered_at timestamptz DEFAULT '2024-02-01T00:00:00Z')`,
  `CREATE TABLE payments (id int8, customer_id int4, region text, amount numeric, card_number text) PARTITION BY LIST (region)`,
  `CREATE TABLE payments_eu PARTITION OF payments FOR VALUES IN ('eu')`,
  `CREATE TABLE payments_us PARTITION OF payments FOR VALUES IN ('us')`,
  `CREATE TABLE payments_other PARTITION OF payments DEFAULT`,
  `CREATE VIEW customer_summary AS SELECT region, count(*) AS customers FROM customers GROUP BY region`,
  `CREATE VIEW secret_view AS SELECT ssn FROM customers`,
  `CREATE TABLE legacy (id int4, ssn text)`,
  `CREATE TABLE legacy_child (note text) INHERITS (legacy)`,
  `CREATE TABLE audit_log (id int4, entry text)`,
  `CREATE SCHEMA other`,
  `CREATE TABLE other.customers (LIKE customers)`,
  `CREATE FUNCTION my_func(int) RETURNS int LANGUAGE sql AS 'SELECT $1'`,
  `CREATE DOMAIN us_postal_code AS text CHECK (VALUE ~ '^[0-9]{5}$')`,
  `CREATE DOMAIN free_text AS text`,
  `CREATE TYPE order_status AS ENUM ('open', 'paid', 'void')`,
  `CREATE TABLE region_grants (user_name text, region text)`,
  `INSERT INTO region_grants VALUES ('ann', 'eu'), ('bob', 'us')`,
  `INSERT INTO customers (id, full_name, email, ssn, region, salary, card_number, date_of_birth) VALUES
     (1, 'Eva Euro', 'eva@example.eu', '912-34-5678', 'eu', 150000.11, '4111111111111111', '1980-05-17'),
     (2, 'Emil Nord', 'emil@nord.example', '923-45-6789', 'eu', 54321.99, '5500000000000004', '1975-12-01'),
     (3, 'Elena Sud', 'elena@sud.example', '134-56-7890', 'eu', 120500.55, '340000000000009', '1990-02-28'),
     (4, 'Nil Person', NULL, NULL, 'eu', NULL, NULL, NULL),
     (10, 'Uma States', 'uma@states.example', '987-65-4321', 'us', 250000.77, '6011000000000004', '1970-01-01'),
     (11, 'Ulf West', 'ulf@west.example', '999-99-9999', 'us', 99999.99, '3530111333300000', '1985-07-04'),
     (20, 'Aiko Pacific', 'aiko@pacific.example', '900-00-0001', 'apac', 310000.31, '6304000000000000', '1999-09-09')`,
  `INSERT INTO orders VALUES (100, 1, 10.50, 'paid'), (101, 2, 20.25, 'open'), (102, 10, 30.75, 'paid'), (103, 20, 40.00, 'open'), (104, 11, 50.50, 'void')`,
  `INSERT INTO payments VALUES (1, 1, 'eu', 11.11, '4111111111111111'), (2, 10, 'us', 777.77, '6011000000000004'), (3, 20, 'apac', 888.88, '6304000000000000')`,
  `INSERT INTO legacy VALUES (1, '912-34-5678')`,
  `INSERT INTO legacy_child VALUES (2, '923-45-6789', 'child row')`,
  `INSERT INTO other.customers SELECT * FROM customers`,
];

/** Strings that must never reach an analyst: raw secrets of every row, and anything of non-eu rows. */
const FORBIDDEN = [
  '912-34-5678', '923-45-6789', '134-56-7890', '987-65-4321', '999-99-9999', '900-00-0001',
  'eva@', 'emil@', 'elena@', 'uma@', 'ulf@', 'aiko@',
  '150000.11', '54321.99', '120500.55', '250000.77', '99999.99', '310000.31',
  '4111111111111111', '5500000000000004', '340000000000009', '6011000000000004', '3530111333300000', '6304000000000000',
  '1980-05-17', '1975-12-01', '1990-02-28', '1985-07-04', '1999-09-09',
  'Uma States', 'Ulf West', 'Aiko Pacific', 'states.example', 'west.example', 'pacific.example',
  'XX-4321', 'XX-9999', 'XX-0001', '777.77', '888.88',
];

function leaks(text: string): string[] {
  return FORBIDDEN.filter((f) => text.includes(f));
}

const analyst: Identity = { user: 'ann', groups: ['analyst'], claims: { region: 'eu' }, source: 'oidc' };
const loader: Identity = { user: 'lou', groups: ['loader'], claims: {}, source: 'oidc' };
const admin: Identity = { user: 'ada', groups: ['dba'], claims: {}, source: 'oidc' };

/** Raw text of every value: no type parsing, so dates and numerics appear as the server wrote them. */
const RAW_TYPES = { getTypeParser: () => (value: string) => value };

interface Adversarial {
  readonly sql: string;
  /** The unrewritten statement reveals a forbidden value (control). */
  readonly control?: boolean;
  /** Rows the rewritten statement must return (raw text), when the exact answer matters. */
  readonly rows?: readonly (readonly (string | null)[])[];
  readonly rowCount?: number;
}

const ADVERSARIAL: readonly Adversarial[] = [
  { sql: `SELECT id, full_name, email, ssn, region, salary, date_of_birth, created_at FROM customers ORDER BY id`, control: true, rowCount: 4 },
  { sql: `SELECT id FROM customers WHERE ssn LIKE '9%'`, rows: [] },
  { sql: `SELECT id FROM customers WHERE ssn = '912-34-5678' OR email = 'eva@example.eu' OR salary = 150000.11`, rows: [] },
  { sql: `SELECT count(*) FILTER (WHERE ssn LIKE '9%'), count(*) FILTER (WHERE salary > 100000), count(*) FROM customers`, rows: [['0', '0', '4']] },
  { sql: `SELECT 1 FROM customers WHERE 1 / (CASE WHEN salary > 100000 THEN 0 ELSE 1 END) = 1`, rowCount: 4 },
  { sql: `SELECT 1 FROM customers WHERE 1 / (CASE WHEN region <> 'eu' THEN 0 ELSE 1 END) = 1`, rowCount: 4 },
  { sql: `SELECT 1 FROM customers WHERE 1 / (CASE WHEN ssn = '987-65-4321' THEN 0 ELSE 1 END) = 1`, rowCount: 4 },
  { sql: `SELECT 1 FROM customers WHERE 1 / (CASE WHEN full_name = 'Uma States' THEN 0 ELSE 1 END) = 1`, rowCount: 4 },
  { sql: `SELECT ssn, email FROM customers ORDER BY ssn, salary DESC`, control: true },
  { sql: `SELECT email, count(*) FROM customers GROUP BY email HAVING count(*) > 0 ORDER BY 1`, control: true },
  { sql: `SELECT region, avg(salary), max(ssn), min(email), max(date_of_birth) FROM customers GROUP BY region`, control: true, rowCount: 1 },
  { sql: `SELECT ssn, rank() OVER (ORDER BY salary DESC), lag(email) OVER (ORDER BY id) FROM customers`, control: true },
  { sql: `SELECT DISTINCT ON (region) region, ssn, email FROM customers ORDER BY region, salary DESC`, control: true },
  { sql: `SELECT region, ssn, count(*) OVER (PARTITION BY region), max(salary) OVER () FROM customers`, control: true },
  { sql: `SELECT json_agg(json_build_object('s', ssn, 'e', email, 'sal', salary, 'd', date_of_birth)) FROM customers`, control: true },
  { sql: `SELECT to_json(array_agg(email)), jsonb_agg(ssn), string_agg(full_name, ',') FROM customers`, control: true },
  { sql: `SELECT row_to_json(l), to_jsonb(l), l::text, l FROM legacy l`, control: true },
  { sql: `SELECT (l).ssn, row_to_json(l.*) FROM legacy_child l`, control: true },
  { sql: `WITH x AS (SELECT id, ssn, email, salary FROM customers) SELECT * FROM x`, control: true },
  { sql: `WITH orders AS (SELECT id, ssn AS status FROM customers) SELECT * FROM orders`, control: true },
  { sql: `WITH RECURSIVE r(n, s) AS (SELECT 1, (SELECT max(ssn) FROM customers) UNION ALL SELECT n + 1, s FROM r WHERE n < 3) SELECT * FROM r`, control: true },
  { sql: `WITH a AS (WITH b AS (SELECT email FROM customers) SELECT * FROM b) SELECT * FROM a, LATERAL (SELECT a.email || '!') z`, control: true },
  { sql: `SELECT c.id, x.* FROM customers c, LATERAL (SELECT c.ssn, c.email, c.salary) x`, control: true },
  { sql: `SELECT o.id, x.ssn FROM orders o LEFT JOIN LATERAL (SELECT ssn FROM customers c WHERE c.id = o.customer_id) x ON true ORDER BY o.id`, control: true },
  { sql: `SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id AND c.ssn LIKE '98%')`, rows: [] },
  { sql: `SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers) ORDER BY id`, rows: [['100'], ['101']] },
  { sql: `SELECT id FROM orders WHERE customer_id NOT IN (SELECT id FROM customers) ORDER BY id`, rows: [['102'], ['103'], ['104']] },
  { sql: `SELECT (SELECT max(salary) FROM customers), (SELECT string_agg(ssn, ',' ORDER BY ssn) FROM customers)`, control: true },
  { sql: `SELECT id FROM orders WHERE amount < (SELECT count(*) FROM customers WHERE region <> 'eu')`, rows: [] },
  { sql: `SELECT ssn FROM customers UNION SELECT status FROM orders`, control: true },
  { sql: `SELECT email FROM customers INTERSECT SELECT 'eva@example.eu'`, rows: [] },
  { sql: `SELECT full_name FROM customers EXCEPT SELECT status FROM orders`, control: true, rowCount: 4 },
  { sql: `SELECT status FROM orders WHERE false UNION ALL SELECT full_name FROM customers`, rowCount: 4 },
  { sql: `SELECT id, amount, region FROM payments_us`, control: true, rows: [] },
  { sql: `SELECT id, amount, region FROM payments ORDER BY id`, control: true, rows: [['1', '11.11', 'eu']] },
  { sql: `SELECT id, amount FROM ONLY payments`, rows: [] },
  { sql: `SELECT id, ssn FROM legacy ORDER BY id`, control: true, rows: [['1', 'XXX-XX-5678'], ['2', 'XXX-XX-6789']] },
  { sql: `SELECT id, ssn FROM ONLY legacy`, control: true, rows: [['1', 'XXX-XX-5678']] },
  { sql: `SELECT * FROM legacy_child`, control: true, rows: [['2', 'XXX-XX-6789', 'child row']] },
  { sql: `SELECT "ssn", U&"\\0065mail" FROM U&"\\0063ustomers" WHERE "region" = 'eu'`, control: true },
  { sql: `SELECT public.customers.ssn, public.customers.email FROM public.customers`, control: true },
  { sql: `SELECT c.salary, c.date_of_birth FROM public.customers AS c`, control: true },
  { sql: `SELECT ssn || '', upper(email), substring(ssn from 1 for 3), replace(ssn, 'X', '') FROM customers`, control: true },
  { sql: `SELECT md5(ssn) = md5('912-34-5678') AS hit FROM customers WHERE md5(ssn) = md5('912-34-5678')`, rows: [] },
  { sql: `SELECT a.id, b.id FROM customers a JOIN customers b ON a.ssn = b.ssn AND a.id <> b.id`, rows: [] },
  { sql: `SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id`, rows: [['2']] },
  { sql: `SELECT DISTINCT email FROM customers`, control: true },
  { sql: `SELECT ssn FROM customers ORDER BY salary DESC NULLS LAST LIMIT 1 OFFSET 0`, control: true },
  { sql: `SELECT * FROM (SELECT id, ssn, email FROM customers) s WHERE s.ssn LIKE '%5678'`, rows: [['1', 'XXX-XX-5678', 'xxxxx@example.eu']] },
  { sql: `SELECT date_of_birth, extract(month from date_of_birth) FROM customers WHERE id = 1`, rows: [['1980-01-01', '1']] },
  { sql: `SELECT a, d FROM customers AS c(a, b, cc, d) ORDER BY a`, control: true, rowCount: 4 },
  { sql: `SELECT c.* FROM orders o JOIN LATERAL (SELECT id, ssn FROM customers WHERE id = o.customer_id) c ON true`, control: true, rowCount: 2 },
  { sql: `SELECT (SELECT ssn FROM customers c2 WHERE c2.id = o.customer_id) FROM orders o`, control: true },
  { sql: `SELECT region, email, count(*) FROM customers GROUP BY GROUPING SETS ((region), (email))`, control: true },
  { sql: `SELECT array_agg(salary ORDER BY salary), array_agg(date_of_birth) FROM customers`, control: true },
  { sql: `SELECT id FROM customers WHERE region = 'us' OR id IN (10, 11, 20)`, rows: [] },
  { sql: `SELECT id FROM customers WHERE (ssn, email) = ('912-34-5678', 'eva@example.eu')`, rows: [] },
  { sql: `SELECT 1 / (salary - 150000.11) FROM customers`, rowCount: 4 },
  { sql: `SELECT id FROM customers WHERE date_of_birth = '1980-05-17' OR date_of_birth BETWEEN '1980-02-01' AND '1980-12-31'`, rows: [] },
  { sql: `SELECT ROW(c.id, c.ssn)::text FROM customers c`, control: true },
  { sql: `SELECT x.ssn FROM (SELECT * FROM legacy) x, (SELECT 1) y`, control: true },
  { sql: `SELECT count(*) FROM customers WHERE salary IS NOT NULL OR email LIKE '%@example.eu'`, rows: [['1']] },
  { sql: `SELECT id FROM customers WHERE $1::text IS NOT NULL ORDER BY id`, rowCount: 4 },
];

/** Statements an analyst must be refused, and with which SQLSTATE. */
const REFUSED: readonly [sql: string, sqlstate: string][] = [
  [`SELECT card_number FROM customers`, '42501'],
  [`SELECT * FROM customers`, '42501'],
  [`SELECT c FROM customers c`, '42501'],
  [`SELECT row_to_json(c) FROM customers c`, '42501'],
  [`SELECT c::text FROM customers c`, '42501'],
  [`SELECT to_jsonb(c.*) FROM customers c`, '42501'],
  [`SELECT count(card_number) FROM customers`, '42501'],
  [`SELECT 1 FROM customers WHERE card_number LIKE '4%'`, '42501'],
  [`SELECT x FROM (SELECT card_number AS x FROM customers) s`, '42501'],
  [`WITH t AS (SELECT card_number FROM customers) SELECT 1`, '42501'],
  [`SELECT * FROM customers JOIN orders USING (id)`, '42501'],
  [`SELECT id FROM customers NATURAL JOIN payments`, '42501'],
  [`SELECT g FROM customers AS c(a, b, cc, d, e, f, g)`, '42501'],
  [`SELECT ctid FROM customers`, '42501'],
  [`SELECT tableoid, id FROM payments`, '42501'],
  [`COPY customers TO STDOUT`, '42501'],
  [`COPY orders TO STDOUT`, '42501'],
  [`COPY (SELECT id FROM customers) TO '/tmp/pgward-leak'`, '42501'],
  [`COPY customers FROM STDIN`, '42501'],
  [`SELECT card_number FROM payments_us`, '42501'],
  [`SELECT * FROM pg_stats`, '42501'],
  [`SELECT query FROM pg_stat_activity`, '42501'],
  [`SELECT * FROM pg_catalog.pg_statistic`, '42501'],
  [`SELECT * FROM secret_view`, '42501'],
  [`SELECT * FROM audit_log`, '42501'],
  [`SELECT * FROM other.customers`, '42501'],
  [`SELECT query_to_xml('select * from customers', true, true, '')`, '42501'],
  [`SELECT table_to_xml('customers', true, true, '')`, '42501'],
  [`SELECT set_config('search_path', 'other', false)`, '42501'],
  [`SELECT pg_read_file('/etc/passwd')`, '42501'],
  [`SELECT my_func(1)`, '42501'],
  [`SET search_path = other, public`, '42501'],
  [`RESET search_path`, '42501'],
  [`SET ROLE NONE`, '42501'],
  [`EXPLAIN ANALYZE SELECT id FROM customers`, '42501'],
  [`EXPLAIN (ANALYZE, COSTS OFF) SELECT id FROM customers`, '42501'],
  [`DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers LIMIT 1); END $$`, '42501'],
  [`CREATE TABLE stolen AS SELECT ssn FROM customers`, '42501'],
  [`SELECT ssn INTO stolen FROM customers`, '42501'],
  [`SELECT 1; SELECT card_number FROM customers`, '42501'],
  [`UPDATE customers SET full_name = full_name WHERE ssn LIKE '9%'`, '42501'],
  [`DELETE FROM orders WHERE customer_id = 10`, '42501'],
  [`SELECT * FROM nope`, '42P01'],
  [`SELEC 1`, '42601'],
];

function mustPlan(d: RewriteDecision, sql: string): string {
  if (d.kind === 'deny') throw new Error(`unexpected deny for ${sql}: ${d.sqlstate} ${d.message}${d.detail ? ` (${d.detail})` : ''}`);
  return d.kind === 'rewrite' ? d.sql : sql;
}

describe.each(servers.map((s) => [s.name, s] as const))('%s', (_name, server: TestServerInfo) => {
  let admin_: pg.Client;
  let client: pg.Client;
  let catalog: Catalog;
  let bundle: PolicyBundle;
  let version: string;
  let analystCtx: PolicyContext;
  const connect = async (database: string): Promise<pg.Client> => {
    const c = new pg.Client({ host: server.host, port: server.port, database, user: server.superuser, password: server.superuserPassword, ssl: { ca: readFileSync(server.caFile) } });
    await c.connect();
    return c;
  };
  const plan = (sql: string, protocol: 'simple' | 'extended' = 'simple'): RewriteDecision =>
    planRewrite({ sql, protocol, policy: analystCtx, bundle, identity: analyst, catalog, searchPath: ['public'] });
  /** Plans under other policies (same catalog), for policy variants. */
  const planWith = async (policies: string, identity: Identity, sql: string): Promise<RewriteDecision> => {
    const loaded = await parsePolicyText(policies, 'variant.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const policy = createPolicyContext(loaded.policies, identity, loaded.version);
    return planRewrite({ sql, protocol: 'simple', policy, bundle: loaded.policies, identity, catalog, searchPath: ['public'] });
  };
  const run = async (sql: string, values?: unknown[]): Promise<(string | null)[][]> => {
    const result = await client.query({ text: sql, values, rowMode: 'array', types: RAW_TYPES });
    const results = Array.isArray(result) ? (result as pg.QueryResult[]) : [result];
    return results.flatMap((r) => (r.rows ?? []) as (string | null)[][]);
  };

  beforeAll(async () => {
    await loadSqlParser();
    admin_ = await connect('postgres');
    await admin_.query(`DROP DATABASE IF EXISTS ${DATABASE}`);
    await admin_.query(`CREATE DATABASE ${DATABASE}`);
    client = await connect(DATABASE);
    for (const sql of SCHEMA) await client.query(sql);
    await client.query('SET search_path = public');
    const rows = (await client.query(CATALOG_SQL)).rows as Record<string, unknown>[];
    catalog = buildCatalog(rows);
    const loaded = await parsePolicyText(DEMO_POLICIES, 'demo.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    bundle = loaded.policies;
    version = loaded.version;
    analystCtx = createPolicyContext(bundle, analyst, version);
  });

  afterAll(async () => {
    await client?.end();
    await admin_?.query(`DROP DATABASE IF EXISTS ${DATABASE}`);
    await admin_?.end();
  });

  it('reads the catalog with CATALOG_SQL', () => {
    expect(catalog.database).toBe(DATABASE);
    const customers = resolveRelation(catalog, ['customers'], ['public']);
    expect(customers).toMatchObject({ schema: 'public', name: 'customers', kind: 'table' });
    expect(customers?.columns.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['full_name', 'text'],
      ['email', 'text'],
      ['ssn', 'text'],
      ['region', 'text'],
      ['salary', 'numeric(10,2)'],
      ['card_number', 'text'],
      ['date_of_birth', 'date'],
      ['created_at', 'timestamp with time zone'],
    ]);
    expect(customers?.columns[0]).toMatchObject({ attnum: 1, typeOid: 23, notNull: true, typeName: 'int4', typeSchema: 'pg_catalog', typeIsArray: false });
    expect(customers?.columns[5]).toMatchObject({ typeName: 'numeric', typmod: 655366 });
    expect(resolveRelation(catalog, ['payments'], ['public'])?.kind).toBe('partitioned');
    const eu = resolveRelation(catalog, ['payments_eu'], ['public']);
    expect(eu && ancestors(catalog, eu).map((r) => r.name)).toEqual(['payments']);
    const child = resolveRelation(catalog, ['legacy_child'], ['public']);
    expect(child && ancestors(catalog, child).map((r) => r.name)).toEqual(['legacy']);
    expect(resolveRelation(catalog, ['customer_summary'], ['public'])?.kind).toBe('view');
    expect(resolveRelation(catalog, ['pg_class'], ['public'])?.schema).toBe('pg_catalog');
    expect(resolveRelation(catalog, ['columns'], ['information_schema'])?.kind).toBe('view');
    expect(resolveRelation(catalog, ['customers'], ['other', 'public'])?.schema).toBe('other');
    expect([...catalog.bySchema.keys()]).not.toContain('pg_toast');
    expect(resolveFunction(catalog, ['my_func'], ['public'])).toMatchObject({ kind: 'user', schema: 'public' });
    expect(resolveFunction(catalog, ['count'], ['public'])).toMatchObject({ kind: 'builtin', kinds: ['aggregate'] });
    expect(resolveFunction(catalog, ['row_number'], ['public'])).toMatchObject({ kind: 'builtin', kinds: ['window'] });
    expect(catalog.operators.get('=')?.has('pg_catalog')).toBe(true);
    expect([...catalog.checkedDomains]).toEqual(['public\0us_postal_code']);
    expect(plan(`SELECT 'paid'::order_status, 'x'::free_text`).kind).toBe('forward');
    expect(plan(`SELECT '12345'::us_postal_code`)).toMatchObject({ kind: 'deny', sqlstate: '42501' });
    // Same contents, same version.
    expect(catalog.version).toMatch(/^[0-9a-f]{64}$/);
  });

  it('an analyst is restricted, an admin is not (the session forwards admins untouched)', async () => {
    expect(isUnrestricted(analystCtx)).toBe(false);
    expect(isUnrestricted(createPolicyContext(bundle, admin, version))).toBe(true);
    // What an admin's forwarded statement returns: the raw values.
    const raw = await run(`SELECT ssn, email, salary, card_number FROM customers WHERE id = 1`);
    expect(raw).toEqual([['912-34-5678', 'eva@example.eu', '150000.11', '4111111111111111']]);
  });

  it.each(ADVERSARIAL.map((c) => [c.sql, c] as const))('leaks nothing: %s', async (sql, c) => {
    const decision = plan(sql);
    const rewritten = mustPlan(decision, sql);
    const values = sql.includes('$1') ? ['x'] : undefined;
    let text: string;
    let rows: (string | null)[][] = [];
    try {
      rows = await run(rewritten, values);
      text = JSON.stringify(rows);
    } catch (err) {
      // Errors are answers too: they must not carry hidden values either.
      text = `error: ${err instanceof Error ? err.message : String(err)}`;
      throw new Error(`rewritten statement failed: ${text}\n${rewritten}`);
    }
    expect(leaks(text), rewritten).toEqual([]);
    if (c.rows) expect(rows).toEqual(c.rows);
    if (c.rowCount !== undefined) expect(rows).toHaveLength(c.rowCount);
    if (c.control) {
      const original = JSON.stringify(await run(sql, values));
      expect(leaks(original).length, `control: ${sql} should leak unrewritten`).toBeGreaterThan(0);
    }
  });

  it.each(REFUSED.map(([sql, state]) => [sql, state] as const))('refuses: %s', (sql, sqlstate) => {
    const d = plan(sql);
    expect(d.kind, JSON.stringify(d)).toBe('deny');
    if (d.kind === 'deny') expect(d.sqlstate).toBe(sqlstate);
  });

  it('errors raised on masked values show masked values only', async () => {
    const sql = `SELECT CAST(ssn AS int) FROM customers WHERE id = 1`;
    const rewritten = mustPlan(plan(sql), sql);
    await expect(run(rewritten)).rejects.toThrow(/XXX-XX-5678/);
    await expect(run(sql)).rejects.toThrow(/912-34-5678/);
  });

  it('cursors: DECLARE is rewritten, FETCH forwarded, inside a transaction', async () => {
    const declare = `DECLARE leak CURSOR FOR SELECT id, ssn, email, salary FROM customers ORDER BY id`;
    const d = plan(declare);
    expect(d.kind).toBe('rewrite');
    const fetch = `FETCH ALL FROM leak`;
    expect(plan(fetch).kind).toBe('forward');
    await client.query('BEGIN');
    try {
      await run(mustPlan(d, declare));
      const rows = await run(fetch);
      expect(rows).toHaveLength(4);
      expect(leaks(JSON.stringify(rows))).toEqual([]);
      expect(rows[0]).toEqual(['1', 'XXX-XX-5678', 'xxxxx@example.eu', null]);
    } finally {
      await client.query('ROLLBACK');
    }
  });

  it('prepared statements: PREPARE is rewritten, EXECUTE forwarded with parameters', async () => {
    const prepare = `PREPARE probe(text) AS SELECT id, ssn FROM customers WHERE ssn LIKE $1 OR email LIKE $1`;
    const d = plan(prepare);
    await run(mustPlan(d, prepare));
    try {
      for (const pattern of ['9%', 'eva%', '%']) {
        const execute = `EXECUTE probe('${pattern}')`;
        expect(plan(execute).kind).toBe('forward');
        const rows = await run(execute);
        expect(leaks(JSON.stringify(rows))).toEqual([]);
        if (pattern !== '%') expect(rows).toEqual([]);
      }
      // EXECUTE parameters are expressions: a subquery in them is protected too (and PostgreSQL refuses it anyway).
      const sneaky = `EXECUTE probe((SELECT max(ssn) FROM customers))`;
      const rewritten = mustPlan(plan(sneaky), sneaky);
      expect(rewritten).toContain('OFFSET 0');
      await expect(run(rewritten)).rejects.toThrow(/cannot use subquery in EXECUTE parameter/);
    } finally {
      await client.query('DEALLOCATE probe');
    }
  });

  it('extended protocol: parameters survive the rewrite', async () => {
    const sql = `SELECT id, ssn FROM customers WHERE ssn LIKE $1 OR region = $2 ORDER BY id`;
    const d = plan(sql, 'extended');
    const rewritten = mustPlan(d, sql);
    expect(rewritten).toContain('$1');
    expect(rewritten).toContain('$2');
    expect(await run(rewritten, ['9%', 'us'])).toEqual([]);
    const all = await run(rewritten, ['%', 'eu']);
    expect(all).toHaveLength(4);
    expect(leaks(JSON.stringify(all))).toEqual([]);
    expect(plan('SELECT 1; SELECT 2', 'extended')).toMatchObject({ kind: 'deny', sqlstate: '42601' });
  });

  it('COPY (query) TO STDOUT and COPY table (cols) TO STDOUT stream masked, filtered rows', async () => {
    const env = { PGPASSWORD: server.superuserPassword, PGSSLMODE: 'require', PGOPTIONS: '-c search_path=public' };
    for (const sql of [
      `COPY (SELECT id, ssn, email, salary, date_of_birth FROM customers ORDER BY id) TO STDOUT WITH (FORMAT csv)`,
      `COPY customers (id, full_name, ssn, email, salary) TO STDOUT`,
      `COPY (SELECT * FROM legacy) TO STDOUT csv header`,
    ]) {
      const rewritten = mustPlan(plan(sql), sql);
      const out = await psql({ host: server.host, port: server.port }, `user=${server.superuser}`, ['-c', rewritten], { env, dbname: DATABASE });
      expect(out.stderr).toBe('');
      expect(out.stdout.trim().length).toBeGreaterThan(0);
      expect(leaks(out.stdout), rewritten).toEqual([]);
      const control = await psql({ host: server.host, port: server.port }, `user=${server.superuser}`, ['-c', sql], { env, dbname: DATABASE });
      expect(leaks(control.stdout).length).toBeGreaterThan(0);
    }
  });

  it('EXPLAIN shows the plan of the rewritten statement, and is refused over row-filtered tables', async () => {
    const sql = `EXPLAIN (COSTS OFF) SELECT ssn FROM legacy WHERE ssn LIKE '%5678'`;
    const rows = await run(mustPlan(plan(sql), sql));
    const text = rows.map((r) => r[0]).join('\n');
    // The predicate on the masked column runs above the protected subquery, on masked values.
    expect(text).toMatch(/^Subquery Scan on legacy\n\s+Filter: \(legacy\.ssn ~~ '%5678'::text\)/);
    expect(leaks(text)).toEqual([]);
    expect(plan(`EXPLAIN (COSTS OFF) SELECT ssn FROM customers WHERE salary > 100000`)).toMatchObject({ kind: 'deny', sqlstate: '42501' });
  });

  it('a multi-statement query with no protected reference is forwarded; one with a denied statement is refused whole', () => {
    expect(plan(`BEGIN; SELECT 1; COMMIT`)).toMatchObject({ kind: 'forward' });
    expect(plan(`SELECT id FROM customers; SELECT card_number FROM customers`)).toMatchObject({ kind: 'deny', statementIndex: 1 });
  });

  it('row locks on a protected table lock through the subquery', async () => {
    await client.query('BEGIN');
    try {
      for (const sql of [`SELECT id, ssn FROM customers FOR UPDATE`, `SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id FOR SHARE OF c`]) {
        const rows = await run(mustPlan(plan(sql), sql));
        expect(rows.length).toBeGreaterThan(0);
        expect(leaks(JSON.stringify(rows))).toEqual([]);
      }
    } finally {
      await client.query('ROLLBACK');
    }
  });

  it('writes with nothing to enforce on the target run, and what they read is protected', async () => {
    const loaderPlan = async (sql: string) => mustPlan(await planWith(DEMO_POLICIES, loader, sql), sql);
    await client.query('BEGIN');
    try {
      await run(await loaderPlan(`INSERT INTO orders (id, customer_id, amount, status) SELECT 1000 + id, id, 1, ssn FROM customers`));
      // The loader sees every region (no row filter for loaders) and raw SSNs (no mask): only card numbers are denied.
      expect((await run(`SELECT count(*) FROM orders WHERE id >= 1000`))[0]).toEqual(['7']);
      await run(await loaderPlan(`DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND o.id >= 1000 AND c.region = 'us'`));
      expect((await run(`SELECT count(*) FROM orders WHERE id >= 1000`))[0]).toEqual(['5']);
      await run(
        await loaderPlan(
          `MERGE INTO orders o USING (SELECT id, full_name FROM customers) c ON o.id = 1000 + c.id WHEN MATCHED THEN UPDATE SET status = c.full_name WHEN NOT MATCHED THEN DO NOTHING`,
        ),
      );
      expect(await run(`SELECT status FROM orders WHERE id = 1001`)).toEqual([['Eva Euro']]);
      expect((await planWith(DEMO_POLICIES, loader, `INSERT INTO customers (id) VALUES (99)`)).kind).toBe('deny');
    } finally {
      await client.query('ROLLBACK');
    }
  });

  it('row filters that read other tables run in the policy own scope, whatever CTE the client defines', async () => {
    const policies = DEMO_POLICIES.replace(
      'rowFilter: "region = ${claims.region}"',
      'rowFilter: "region IN (SELECT g.region FROM region_grants g WHERE g.user_name = ${user.name})"',
    );
    const sql = `WITH region_grants AS (SELECT 'ann' AS user_name, r AS region FROM (VALUES ('us'), ('apac')) v(r)) SELECT id, full_name FROM customers ORDER BY id`;
    const rows = await run(mustPlan(await planWith(policies, analyst, sql), sql));
    expect(rows.map((r) => r[0])).toEqual(['1', '2', '3', '4']);
    expect(leaks(JSON.stringify(rows))).toEqual([]);
  });

  it('hash masks: values are salted hashes, and EXPLAIN, which would print the salt, is refused', async () => {
    const policies = DEMO_POLICIES.replace('mask: { type: partial, showLast: 4 }', 'mask: { type: hash, salt: pepper-7731 }');
    const sql = `SELECT ssn FROM customers WHERE id = 1 ORDER BY ssn`;
    const rewrittenSql = mustPlan(await planWith(policies, analyst, sql), sql);
    const expected = (await run(`SELECT encode(sha256(convert_to('pepper-7731' || '912-34-5678', 'UTF8')), 'hex')`))[0];
    expect(await run(rewrittenSql)).toEqual([expected]);
    expect(await planWith(policies, analyst, `EXPLAIN ${sql}`)).toMatchObject({ kind: 'deny', sqlstate: '42501' });
    // Why: the plan of the rewritten statement prints the mask expression with its salt.
    const plan = (await run(`EXPLAIN VERBOSE ${rewrittenSql}`)).map((r) => r[0]).join('\n');
    expect(plan).toContain('pepper-7731');
    expect(await planWith(policies, analyst, `SELECT current_query()`)).toMatchObject({ kind: 'deny', sqlstate: '42501' });
  });

  it('metadata queries of psql and drivers keep working', async () => {
    for (const sql of [
      `SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relname OPERATOR(pg_catalog.~) '^(customers)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3`,
      `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
         (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
         a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'customers'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'customers' ORDER BY ordinal_position`,
      `SELECT n.nspname, c.relname, a.attname, a.atttypid, row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum
       FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid) JOIN pg_catalog.pg_attribute a ON (a.attrelid = c.oid)
       WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname LIKE 'public' AND c.relname LIKE 'customers'`,
    ]) {
      const rows = await run(mustPlan(plan(sql), sql));
      expect(rows.length).toBeGreaterThan(0);
    }
  });
});
