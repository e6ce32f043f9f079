import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { loadSqlParser } from '../../src/policy/row-filter.js';
import { PolicyStore } from '../../src/policy/store.js';
import { CatalogCache } from '../../src/rewrite/catalog-cache.js';
import { loadCatalogAsService } from '../../src/upstream/catalog-loader.js';
import { PlanCache } from '../../src/rewrite/plan-cache.js';
import type { PolicyRuntime } from '../../src/session/session.js';
import { startOidcProvider, type RunningProvider } from '../helpers/oidc-provider.js';
import { connectPg, errorOf, oidcSessionAuth, startPgward, type PgwardUnderTest } from '../helpers/pgward.js';
import { replacePolicies } from '../helpers/policies.js';
import { psql } from '../helpers/psql.js';
import { freshDatabase, TEST_PASSWORDS, type TestServerInfo } from '../helpers/test-servers.js';

const DATABASE = 'policy_session';
// The provider's `reporting` client is an analyst in region eu; `etl` is an admin here.
const ANALYST = 'svc-reporting';
const ADMIN = 'svc-etl';

const POLICIES = `
apiVersion: pgward.dev/v1
kind: PolicySet
metadata: { name: session-test }
spec:
  defaultAction: deny
  subjects:
    analysts: { anyOf: [ { group: analysts } ] }
    admins: { anyOf: [ { group: loaders } ] }
  rules:
    - { name: admins-all, effect: allow, subjects: [admins], actions: [all], resources: { tables: ["*.*"] } }
    - { name: analysts-ddl, effect: allow, subjects: [analysts], actions: [ddl], resources: { tables: ["*.*"] } }
    - { name: analysts-scratch, effect: allow, subjects: [analysts], actions: [select], resources: { tables: [public.scratch] } }
    - name: analysts-customers
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: [public.customers] }
      rowFilter: "region = \${claims.region}"
    - name: no-cards
      effect: deny
      subjects: ["*"]
      except: [admins]
      resources: { columns: [public.customers.card_number] }
      message: card numbers are not readable through pgward
  masks:
    - { name: ssn-last4, subjects: [analysts], resources: { columns: [public.customers.ssn] }, mask: { type: partial, showLast: 4 } }
    - { name: email-domain, subjects: [analysts], resources: { columns: [public.customers.email] }, mask: { type: emailDomain } }
`;

const NAMES_HIDDEN = POLICIES.replace(
  '  masks:\n',
  '  masks:\n    - { name: names-hidden, subjects: [analysts], resources: { columns: [public.customers.full_name] }, mask: { type: full } }\n',
);

const SEED = `
create table customers (id int primary key, full_name text, email text, ssn text, region text, card_number text);
insert into customers values
  (1, 'Ada Eu', 'ada@example.eu', '111-22-3333', 'eu', '4111 1111 1111 1111'),
  (2, 'Bo Eu', 'bo@example.eu', '222-33-4444', 'eu', '4222 2222 2222 2222'),
  (3, 'Cy Us', 'cy@example.us', '999-88-7777', 'us', '4333 3333 3333 3333');
grant select on customers to scram_user;
grant create on schema public to scram_user;
`;

const SERVICE = { user: 'scram_user', password: TEST_PASSWORDS.scram_user };

const SECRETS = ['111-22-3333', '222-33-4444', '999-88-7777', 'ada@', 'bo@', 'cy@', '4111', 'Cy Us'];

function expectNoSecrets(value: unknown): void {
  const text = JSON.stringify(value);
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

async function freshlyConnected(server: TestServerInfo): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: server.superuser, password: server.superuserPassword, database: DATABASE });
  await client.connect();
  return client;
}

describe.each(inject('servers'))('policies through real clients (PostgreSQL $major)', (server: TestServerInfo) => {
  let provider: RunningProvider;
  let pgward: PgwardUnderTest;
  let policyDir: string;
  let runtime: PolicyRuntime;

  beforeAll(async () => {
    const seed = await freshDatabase(server, DATABASE);
    await seed.query(SEED);
    await seed.end();

    provider = await startOidcProvider();
    policyDir = mkdtempSync(join(tmpdir(), 'pgward-session-policies-'));
    writeFileSync(join(policyDir, 'policies.yaml'), POLICIES);
    await loadSqlParser();
    runtime = {
      store: await PolicyStore.open(policyDir, silentLogger),
      searchPath: ['"$user"', 'public'],
      planCache: new PlanCache(1000),
      // As in OIDC mode: pgward refreshes snapshots over its own service login.
      catalogs: new CatalogCache(60_000, (database) =>
        loadCatalogAsService({ address: { host: '127.0.0.1', port: server.port }, tlsMode: 'disable', connectTimeoutMs: 5_000 }, SERVICE, database),
      ),
    };
    pgward = await startPgward(server, {
      upstreamTls: 'disable',
      policies: runtime,
      auth: oidcSessionAuth(provider.issuer, SERVICE),
    });
    runtime.store.onChange(() => pgward.proxy.policiesChanged());
  });
  afterAll(async () => {
    runtime.store.close();
    await pgward.stop();
    await provider.close();
  });

  const analyst = async (): Promise<pg.Client> => connectPg(pgward, ANALYST, await provider.token('reporting'), { database: DATABASE });
  const admin = async (): Promise<pg.Client> => connectPg(pgward, ADMIN, await provider.token('etl'), { database: DATABASE });

  it('shows an analyst masked values of permitted rows, and an admin raw data', async () => {
    const a = await analyst();
    const { rows } = await a.query('select id, full_name, email, ssn, region from customers order by id');
    expect(rows).toEqual([
      { id: 1, full_name: 'Ada Eu', email: 'xxxxx@example.eu', ssn: 'XXX-XX-3333', region: 'eu' },
      { id: 2, full_name: 'Bo Eu', email: 'xxxxx@example.eu', ssn: 'XXX-XX-4444', region: 'eu' },
    ]);
    await a.end();

    const b = await admin();
    const raw = await b.query('select ssn, card_number from customers order by id');
    expect(raw.rows[2]).toEqual({ ssn: '999-88-7777', card_number: '4333 3333 3333 3333' });
    await b.end();
  });

  it('applies masks inside predicates, joins and aggregates', async () => {
    const a = await analyst();
    const probes = [
      "select count(*) from customers where ssn like '999%'",
      "select count(*) from customers where ssn = '111-22-3333'",
      'select ssn, count(*) from customers group by ssn order by ssn',
      'select c1.ssn from customers c1 join customers c2 on c1.ssn = c2.ssn',
      "select string_agg(email, ',') from customers",
      'select (select max(ssn) from customers) as m',
      "select 1/(case when region = 'us' then 0 else 1 end) from customers",
    ];
    for (const sql of probes) {
      const { rows } = await a.query(sql);
      expectNoSecrets(rows);
    }
    expect((await a.query("select count(*)::int as n from customers where ssn like '999%'")).rows[0].n).toBe(0);
    await a.end();
  });

  it('refuses denied columns with 42501 and the rule message, and keeps the session usable', async () => {
    const a = await analyst();
    for (const sql of ['select * from customers', 'select card_number from customers', 'select c from customers c']) {
      const error = await errorOf(() => a.query(sql));
      expect(error.code).toBe('42501');
      expect(error.message).toBe('card numbers are not readable through pgward');
    }
    expect((await a.query('select count(*)::int as n from customers')).rows[0].n).toBe(2);
    await a.end();
  });

  it('rewrites extended-protocol statements once and reuses them with new parameters', async () => {
    const a = await analyst();
    for (const id of [1, 2, 3]) {
      const { rows } = await a.query({ name: 'by-id', text: 'select ssn from customers where id = $1', values: [id] });
      if (id === 3) expect(rows).toEqual([]);
      else expect(rows[0].ssn).toMatch(/^XXX-XX-\d{4}$/);
    }
    const described = await a.query({ text: 'select email, id from customers where id = $1', values: [1], rowMode: 'array' });
    expect(described.fields.map((f) => f.name)).toEqual(['email', 'id']);
    expect(described.rows).toEqual([['xxxxx@example.eu', 1]]);
    await a.end();
  });

  it('answers a refusal in its place in a pipeline, with the other statements unaffected', async () => {
    const sql = postgres({
      host: pgward.host,
      port: pgward.port,
      user: ANALYST,
      password: await provider.token('reporting'),
      database: DATABASE,
      ssl: pgward.ssl,
      max: 1,
    });
    const results = await Promise.allSettled([
      sql`select ssn from customers where id = ${1}`,
      sql`select card_number from customers where id = ${1}`,
      sql`select email from customers where id = ${2}`,
    ]);
    expect(results[0]).toMatchObject({ status: 'fulfilled', value: [{ ssn: 'XXX-XX-3333' }] });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: '42501' } });
    expect(results[2]).toMatchObject({ status: 'fulfilled', value: [{ email: 'xxxxx@example.eu' }] });
    await sql.end();
  });

  it('aborts a transaction block on a refusal, as a database error would', async () => {
    const a = await analyst();
    await a.query('begin');
    await errorOf(() => a.query('select card_number from customers'));
    const aborted = await errorOf(() => a.query('select 1'));
    expect(aborted.code).toBe('25P02');
    await a.query('rollback');
    expect((await a.query('select 1 as ok')).rows[0].ok).toBe(1);
    await a.end();
  });

  it('masks cursors, COPY and EXPLAIN, and refuses EXPLAIN ANALYZE and search_path changes', async () => {
    const token = await provider.token('reporting');
    const env = { PGPASSWORD: token };
    const conninfo = `user=${ANALYST} sslmode=require`;
    const copy = await psql(pgward, conninfo, ['-c', 'copy (select ssn, email from customers order by id) to stdout'], { env, dbname: DATABASE });
    expect(copy.stderr).toBe('');
    expect(copy.stdout.trim().split('\n')).toEqual(['XXX-XX-3333\txxxxx@example.eu', 'XXX-XX-4444\txxxxx@example.eu']);

    const cursor = await psql(pgward, conninfo, ['-c', 'begin', '-c', 'declare c cursor for select ssn from customers order by id', '-c', 'fetch all from c', '-c', 'commit'], { env, dbname: DATABASE });
    expect(cursor.stdout).toContain('XXX-XX-3333');
    expectNoSecrets(cursor.stdout);

    const explain = await psql(pgward, conninfo, ['-c', 'explain analyze select ssn from customers'], { env, dbname: DATABASE });
    expect(explain.stderr).toMatch(/ERROR/);
    expect(explain.code).not.toBe(0);

    const searchPath = await psql(pgward, conninfo, ['-c', 'set search_path = evil, public'], { env, dbname: DATABASE });
    expect(searchPath.stderr).toMatch(/search_path/);

    const fastPath = await psql(pgward, conninfo, ['-c', "\\lo_import '/etc/hostname'"], { env, dbname: DATABASE });
    expect(fastPath.stderr).toMatch(/ERROR/);
  });

  it('refuses a restricted login that sets search_path in its startup options', async () => {
    const error = await errorOf(async () =>
      connectPg(pgward, ANALYST, await provider.token('reporting'), { database: DATABASE, options: '-c search_path=evil,public' } as pg.ClientConfig),
    );
    expect(error.code).toBe('42501');
  });

  it('applies reloaded policies to the next statement of an open session', async () => {
    const a = await analyst();
    expect((await a.query('select full_name from customers where id = 1')).rows[0].full_name).toBe('Ada Eu');
    await replacePolicies(runtime.store, policyDir, NAMES_HIDDEN);
    expect((await a.query('select full_name from customers where id = 1')).rows[0].full_name).toBe('Xxx Xx');
    await a.end();
    await replacePolicies(runtime.store, policyDir, POLICIES);
  });

  const usePolicies = (text: string): Promise<void> => replacePolicies(runtime.store, policyDir, text);

  it('keeps sessions with protocol-level prepared statements across a reload, preparing them again under the new policies', async () => {
    const a = await analyst();
    const sql = postgres({ host: pgward.host, port: pgward.port, user: ANALYST, password: await provider.token('reporting'), database: DATABASE, ssl: pgward.ssl, max: 1 });
    try {
      const named = { name: 'name-by-id', text: 'select full_name from customers where id = $1', values: [1] };
      expect((await a.query(named)).rows).toEqual([{ full_name: 'Ada Eu' }]);
      expect(await sql`select full_name from customers where id = ${2}`).toEqual([{ full_name: 'Bo Eu' }]);
      await usePolicies(NAMES_HIDDEN);
      // node-postgres binds its named statement again: pgward prepares it anew, then it runs.
      expect((await a.query(named)).rows).toEqual([{ full_name: 'Xxx Xx' }]);
      expect((await a.query(named)).rows).toEqual([{ full_name: 'Xxx Xx' }]);
      // SQL-level EXECUTE of a protocol-level statement is checked too.
      expect((await a.query('execute "name-by-id"(1)')).rows).toEqual([{ full_name: 'Xxx Xx' }]);
      // postgres.js pipelines: a statement used behind others is refused rather than run as planned.
      const ids = [1, 2, 1];
      const results = await Promise.allSettled(ids.map((id) => sql`select full_name from customers where id = ${id}`));
      for (const [i, r] of results.entries()) {
        if (r.status === 'fulfilled') expect(r.value.map((row) => row['full_name'])).toEqual([ids[i] === 1 ? 'Xxx Xx' : 'Xx Xx']);
        else expect(r.reason).toMatchObject({ code: '0A000', message: expect.stringMatching(/planned under policies that have since changed/) });
      }
      expect(results[0]).toMatchObject({ status: 'fulfilled' });
      expect(await sql`select full_name from customers where id = ${2}`).toEqual([{ full_name: 'Xx Xx' }]);
    } finally {
      await a.end();
      await sql.end();
      await usePolicies(POLICIES);
    }
  });

  it('refuses SQL-level EXECUTE of a protocol-level statement planned under older policies', async () => {
    const a = await analyst();
    try {
      await a.query({ name: 'sql-exec-probe', text: 'select full_name from customers where id = $1', values: [1] });
      await usePolicies(NAMES_HIDDEN);
      expect(await errorOf(() => a.query('execute "sql-exec-probe"(1)'))).toMatchObject({ code: '0A000' });
      expect(await errorOf(() => a.query('explain execute "sql-exec-probe"(1)'))).toMatchObject({ code: expect.stringMatching(/^(0A000|42501)$/) });
      // Bound again through the protocol, it is prepared anew; then EXECUTE runs the new plan.
      expect((await a.query({ name: 'sql-exec-probe', text: 'select full_name from customers where id = $1', values: [1] })).rows).toEqual([{ full_name: 'Xxx Xx' }]);
      expect((await a.query('execute "sql-exec-probe"(1)')).rows).toEqual([{ full_name: 'Xxx Xx' }]);
    } finally {
      await a.end();
      await usePolicies(POLICIES);
    }
  });

  it('ends a session that holds SQL-level prepared statements when its policies change', async () => {
    const a = await analyst();
    const ended = new Promise<Error>((resolve) => a.once('error', resolve));
    try {
      await a.query('prepare sql_level as select full_name from customers where id = 1');
      await usePolicies(NAMES_HIDDEN);
      expect(await ended).toMatchObject({ code: '57P01', message: expect.stringMatching(/SQL-level prepared statements or cursors/) });
    } finally {
      await a.end().catch(() => {});
      await usePolicies(POLICIES);
    }
  });

  it('moves an open session to a fresh catalog after DDL elsewhere', async () => {
    const a = await analyst();
    expect((await a.query('select count(*)::int as n from customers')).rows[0].n).toBe(2);
    const owner = await freshlyConnected(server);
    await owner.query('alter table customers add column nickname text');
    await owner.query("update customers set nickname = 'n-' || id");
    await owner.end();
    // The first statement fails on the unknown column and triggers a refresh; the session then sees it.
    let rows: Array<{ nickname: string }> = [];
    for (let attempt = 0; attempt < 50 && rows.length === 0; attempt++) {
      rows = await a.query('select nickname from customers order by id').then((r) => r.rows, () => []);
      if (rows.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rows).toEqual([{ nickname: 'n-1' }, { nickname: 'n-2' }]);
    await a.end();
  });

  it('treats its own schema changes as barriers until the catalog is read again', async () => {
    const a = await analyst();
    const mixed = await errorOf(() => a.query('create table scratch (id int); select 1 from customers'));
    expect(mixed.code).toBe('0A000');
    await a.query('create table scratch (id int)');
    // Statements that read no table go on; reads wait for the fresh snapshot (retry on 55000).
    expect((await a.query('select 1 as ok')).rows[0].ok).toBe(1);
    let rows: unknown[] | undefined;
    for (let attempt = 0; attempt < 50 && rows === undefined; attempt++) {
      rows = await a.query('select count(*)::int as n from scratch').then(
        (r) => r.rows,
        (e: { code?: string }) => {
          expect(e.code).toBe('55000');
          return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100));
        },
      );
    }
    expect(rows).toEqual([{ n: 0 }]);
    await a.end();
  });

  it('serves repeated statements from the plan cache', async () => {
    const a = await analyst();
    await a.query('select id from customers where id = 1 /* cache probe */');
    const hits = runtime.planCache.hits;
    await a.query('select id from customers where id = 1 /* cache probe */');
    expect(runtime.planCache.hits).toBe(hits + 1);
    await a.end();
  });

  it('serves statements that differ only in their literals from one template, with the right rows and masks', async () => {
    const a = await analyst();
    const sql = postgres({ host: pgward.host, port: pgward.port, user: ANALYST, password: await provider.token('reporting'), database: DATABASE, ssl: pgward.ssl, max: 1 });
    try {
      const templateHits = runtime.planCache.templateHits;
      const simple = async (text: string) => (await a.query({ text, rowMode: 'array' })).rows;
      // The first statement of each shape builds the template; the rest fill it.
      for (const [id, want] of [[1, [['XXX-XX-3333', 'xxxxx@example.eu']]], [2, [['XXX-XX-4444', 'xxxxx@example.eu']]], [3, []], [-1, []], [1, [['XXX-XX-3333', 'xxxxx@example.eu']]]] as const) {
        expect(await simple(`select ssn, email from customers where id = ${id}`)).toEqual(want);
      }
      for (const [name, want] of [[`'Ada Eu'`, [[1]]], [`'Cy Us'`, []], [`'O''Brien'`, []], [`E'back\\slash'`, []], [`$x$Bo Eu$x$`, [[2]]], [`'x'' OR true --'`, []]] as const) {
        expect(await simple(`select id from customers where full_name = ${name}`), name).toEqual(want);
      }
      // Predicates on masked columns see masked values, whatever constant fills the template.
      for (const [pattern, n] of [[`'111%'`, 0], [`'XXX-XX-3%'`, 1], [`'%'`, 2], [`'999%'`, 0]] as const) {
        expect(await simple(`select count(*)::int from customers where ssn like ${pattern}`), pattern).toEqual([[n]]);
      }
      // Extended protocol without parameters (postgres.js unsafe) inlines its values too.
      for (const id of [1, 2, 3]) {
        const rows = await sql.unsafe(`select ssn from customers where id = ${id}`);
        expect(rows.map((r) => r['ssn'])).toEqual(id === 3 ? [] : [id === 1 ? 'XXX-XX-3333' : 'XXX-XX-4444']);
      }
      expect(runtime.planCache.templateHits - templateHits).toBeGreaterThanOrEqual(13);
      // A refused shape stays refused for every constant.
      for (const id of [1, 2]) expect(await errorOf(() => a.query(`select card_number from customers where id = ${id}`))).toMatchObject({ code: '42501' });
    } finally {
      await a.end();
      await sql.end();
    }
  });
});
