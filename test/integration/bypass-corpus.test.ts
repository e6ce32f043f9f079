/**
 * The bypass corpus: several hundred attempts by a restricted identity (an
 * analyst of region eu) to learn what the policies hide, sent through pgward
 * by real clients — node-postgres (simple and extended protocol), postgres.js
 * (pipelined) and psql — plus differential probes, session-level tricks and
 * protocol-level ones. Every byte pgward sends to the analyst passes through
 * a tap and is searched for the secrets: every raw SSN, email local part,
 * salary, card number and exact birth date, and the name and id of every
 * customer outside the analyst's region.
 *
 * pgward listens without requiring TLS here (as a loopback sidecar would) so
 * the tap can read the bytes; a few attempts also go over TLS.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSync } from 'libpg-query';
import type { A_Const, Node } from 'libpg-query';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { loadSqlParser } from '../../src/policy/row-filter.js';
import { PolicyStore } from '../../src/policy/store.js';
import { decodeErrorFields } from '../../src/protocol/backend-messages.js';
import { createPolicyContext } from '../../src/policy/decide.js';
import { buildCatalog, CATALOG_SQL } from '../../src/rewrite/catalog.js';
import { CatalogCache } from '../../src/rewrite/catalog-cache.js';
import { deparseStatement, sameTree, stripPositions } from '../../src/rewrite/deparse.js';
import { literalShape } from '../../src/rewrite/literal-template.js';
import { PlanCache } from '../../src/rewrite/plan-cache.js';
import { planRewrite, type RewriteDecision } from '../../src/rewrite/plan.js';
import type { PolicyRuntime } from '../../src/session/session.js';
import { startOidcProvider, type RunningProvider } from '../helpers/oidc-provider.js';
import { oidcSessionAuth, startPgward, type PgwardUnderTest } from '../helpers/pgward.js';
import { replacePolicies } from '../helpers/policies.js';
import { psql } from '../helpers/psql.js';
import { frontend, passwordMessage, RawClient, typedFrame } from '../helpers/raw-client.js';
import { freshDatabase, TEST_PASSWORDS, type TestServerInfo } from '../helpers/test-servers.js';
import type { Attempt } from './bypass-corpus/attempt.js';
import { buildCorpus } from './bypass-corpus/corpus.js';
import { buildPairs, type Pair } from './bypass-corpus/pairs.js';
import { leaked, startTap, type Tap, type TapConnection } from './bypass-corpus/tap.js';
import { buildWorld, POLICIES, type World } from './bypass-corpus/world.js';

const DATABASE = 'bypass_corpus';
const ANALYST = 'svc-reporting';
const ADMIN = 'svc-etl';
/** Raw text of every value, so dates and numbers appear as the server wrote them. */
const RAW_TYPES = { getTypeParser: () => (value: string) => value };
/** What pgward itself answers with when it refuses; XX000 means it could not analyze, which is a bug. */
const REFUSAL_CODES = new Set(['42501', '0A000', '42601', '42P01', '42883', '42809', '42P10', '42703', '54001']);

type Rows = (string | null)[][];

interface Outcome {
  rows: Rows;
  error?: { code?: string; message: string };
}

function describeAttempt(a: Attempt): string {
  return `[${a.category}] ${a.sql.length > 300 ? `${a.sql.slice(0, 300)}…` : a.sql}`;
}

/** What is wrong with an outcome, given the attempt's expectation (undefined when it is right). */
function judge(a: Attempt, o: Outcome, options: { rows: boolean }): string | undefined {
  const code = o.error?.code;
  if (code === 'XX000' || (o.error && code === undefined)) return `internal failure: ${o.error?.message}`;
  switch (a.expect) {
    case 'ok':
      if (o.error) return `expected an answer, got ${code} ${o.error.message}`;
      break;
    case 'refused':
      if (!o.error) return `expected a refusal (${a.codes?.join('/')}), got an answer`;
      if (!(a.codes ?? ['42501']).includes(code!)) return `expected ${a.codes?.join('/')}, got ${code} ${o.error.message}`;
      break;
    case 'error':
      if (!o.error) return 'expected an error, got an answer';
      if (a.codes && !a.codes.includes(code!)) return `expected ${a.codes.join('/')}, got ${code} ${o.error.message}`;
      break;
    case 'any':
      break;
  }
  if (options.rows && !o.error && a.check) return a.check(o.rows);
  return undefined;
}

describe.each(inject('servers'))('bypass corpus (PostgreSQL $major)', (server: TestServerInfo) => {
  let provider: RunningProvider;
  let pgward: PgwardUnderTest;
  let tap: Tap;
  let policyDir: string;
  let runtime: PolicyRuntime;
  let world: World;
  let corpus: Attempt[];
  let pairs: Pair[];
  let analystToken: string;
  let adminToken: string;
  let superuser: pg.Client;
  const tally = new Map<string, number>();
  const count = (category: string, n = 1): void => void tally.set(category, (tally.get(category) ?? 0) + n);

  beforeAll(async () => {
    superuser = await freshDatabase(server, DATABASE);
    world = await buildWorld(superuser);
    corpus = buildCorpus(world);
    pairs = buildPairs(world);

    provider = await startOidcProvider();
    policyDir = mkdtempSync(join(tmpdir(), 'pgward-corpus-policies-'));
    writeFileSync(join(policyDir, 'policies.yaml'), POLICIES);
    await loadSqlParser();
    runtime = {
      store: await PolicyStore.open(policyDir, silentLogger),
      searchPath: ['"$user"', 'public'],
      planCache: new PlanCache(5000),
      catalogs: new CatalogCache(60_000),
    };
    pgward = await startPgward(server, {
      upstreamTls: 'disable',
      tlsRequired: false,
      policies: runtime,
      auth: oidcSessionAuth(provider.issuer, { user: 'scram_user', password: TEST_PASSWORDS.scram_user }, { terminateAtExpiry: false, throttle: { maxFailures: 100_000 } }, { plaintextAllowed: true }),
    });
    runtime.store.onChange(() => pgward.proxy.policiesChanged());
    tap = await startTap(pgward.port);
    analystToken = await provider.token('reporting');
    adminToken = await provider.token('etl');
  });

  afterAll(async () => {
    // Distinct attempts of the corpus and probe pairs per category, and how many times they ran (all clients).
    const distinct = new Map<string, number>();
    for (const a of corpus ?? []) distinct.set(a.category, (distinct.get(a.category) ?? 0) + 1);
    for (const p of pairs ?? []) distinct.set(`differential: ${p.category}`, (distinct.get(`differential: ${p.category}`) ?? 0) + 1);
    console.log(
      `bypass corpus (PostgreSQL ${server.major}): category: distinct attempts / executions\n` +
        [...tally.entries()].map(([k, n]) => `  ${k}: ${distinct.get(k) ?? '-'} / ${n}`).join('\n') +
        `\n  total: ${[...distinct.values()].reduce((a, b) => a + b, 0)} / ${[...tally.values()].reduce((a, b) => a + b, 0)}`,
    );
    runtime?.store.close();
    await tap?.close();
    await pgward?.stop();
    await provider?.close();
    await superuser?.end();
  });

  /** A node-postgres client through the tap, and the tap's record of what it received. */
  const connect = async (token: string, user = ANALYST, extra: Partial<pg.ClientConfig> = {}): Promise<{ client: pg.Client; tapped: TapConnection }> => {
    const before = tap.connections.length;
    const client = new pg.Client({ host: '127.0.0.1', port: tap.port, user, password: token, database: DATABASE, ssl: false, ...extra });
    client.on('error', () => {});
    client.on('notice', () => {});
    await client.connect();
    const tapped = tap.connections[before];
    if (!tapped) throw new Error('the tap saw no connection');
    return { client, tapped };
  };

  /** A raw protocol session of the analyst through the tap, logged in and ready for a query. */
  const analystRaw = async (): Promise<RawClient> => {
    const raw = await RawClient.connect(tap.port);
    raw.startup([['user', ANALYST], ['database', DATABASE]]);
    await raw.message();
    raw.write(passwordMessage(analystToken));
    await raw.until('Z');
    return raw;
  };

  /**
   * Waits until the tap has passed on the ReadyForQuery that ends the current exchange: a driver may
   * settle a query on its ErrorResponse, before the rest of the answer is through.
   */
  const settled = async (tapped: TapConnection, mark: number): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      const bytes = tapped.since(mark);
      const tail = bytes.subarray(bytes.length - 6);
      if (tail.length === 6 && tail[0] === 0x5a && tail.readInt32BE(1) === 5) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  const runPg = async (client: pg.Client, sql: string, extended: boolean): Promise<Outcome> => {
    try {
      const result = await client.query({ text: sql, rowMode: 'array', types: RAW_TYPES, ...(extended ? { queryMode: 'extended' } : {}) } as pg.QueryConfig);
      const results = (Array.isArray(result) ? result : [result]) as pg.QueryResult[];
      return { rows: results.flatMap((r) => (r.rows ?? []) as Rows) };
    } catch (err) {
      const e = err as Error & { code?: string };
      return { rows: [], error: { code: e.code, message: e.message } };
    }
  };

  /** Runs the corpus on one node-postgres session; returns every problem found. */
  const runCorpusPg = async (extended: boolean): Promise<string[]> => {
    const { client, tapped } = await connect(analystToken);
    const problems: string[] = [];
    try {
      for (const a of corpus) {
        if (extended && a.multi) continue;
        count(a.category);
        const mark = tapped.receivedLength;
        if (a.tx) await client.query('BEGIN');
        const outcome = await runPg(client, a.sql, extended);
        if (a.tx) await client.query('ROLLBACK');
        await settled(tapped, mark);
        const bytes = tapped.since(mark);
        const leaks = leaked(bytes, world.secrets, a.sql);
        if (leaks.length > 0) problems.push(`LEAK ${JSON.stringify(leaks)} ← ${describeAttempt(a)}`);
        const wrong = judge(a, outcome, { rows: true });
        if (wrong) problems.push(`${wrong} ← ${describeAttempt(a)}`);
        // The session must stay usable whatever the attempt did.
        const alive = await runPg(client, 'SELECT 1', false);
        if (alive.error) {
          problems.push(`session unusable after ${describeAttempt(a)}: ${alive.error.code} ${alive.error.message}`);
          if (alive.error.code === undefined) break;
          await client.query('ROLLBACK').catch(() => {});
        }
      }
    } finally {
      await client.end().catch(() => {});
    }
    return problems;
  };

  it('node-postgres, simple protocol: nothing leaks, refusals carry their SQLSTATE', async () => {
    expect(await runCorpusPg(false)).toEqual([]);
  });

  it('node-postgres, extended protocol: nothing leaks, refusals carry their SQLSTATE', async () => {
    expect(await runCorpusPg(true)).toEqual([]);
  });

  it('postgres.js, pipelined: nothing leaks, each refusal answers in its place', async () => {
    const before = tap.connections.length;
    const sql = postgres({ host: '127.0.0.1', port: tap.port, user: ANALYST, password: analystToken, database: DATABASE, ssl: false, max: 1, onnotice: () => {} });
    const problems: string[] = [];
    try {
      await sql`select 1`;
      const tapped = tap.connections[before]!;
      const usable = corpus.filter((a) => !a.tx && !a.copy && a.sql.trim() !== '');
      for (let i = 0; i < usable.length; i += 25) {
        const batch = usable.slice(i, i + 25);
        const mark = tapped.receivedLength;
        const settled = await Promise.allSettled(
          // Without parameters postgres.js would use the simple protocol: ask for named, pipelined extended-protocol statements.
          batch.map((a) => sql.unsafe(a.sql, [], (a.multi ? { simple: true } : { prepare: true, simple: false }) as unknown as postgres.UnsafeQueryOptions).values()),
        );
        batch.forEach((a, j) => {
          count(a.category);
          const s = settled[j]!;
          const outcome: Outcome =
            s.status === 'fulfilled'
              ? { rows: [] }
              : { rows: [], error: { code: (s.reason as { code?: string }).code, message: String((s.reason as Error).message) } };
          // postgres.js reports its own errors (e.g. for statements it cannot describe) without a SQLSTATE.
          if (outcome.error && outcome.error.code === undefined) outcome.error.code = 'client';
          const wrong = outcome.error?.code === 'client' && a.expect !== 'ok' ? undefined : judge(a, outcome, { rows: false });
          if (wrong) problems.push(`${wrong} ← ${describeAttempt(a)}`);
        });
        const sent = batch.map((a) => a.sql).join('\n');
        const leaks = leaked(tapped.since(mark), world.secrets, sent);
        if (leaks.length > 0) problems.push(`LEAK ${JSON.stringify(leaks)} ← one of:\n${batch.map(describeAttempt).join('\n')}`);
      }
      expect((await sql`select 1 as ok`)[0]?.ok).toBe(1);
    } finally {
      await sql.end();
    }
    expect(problems).toEqual([]);
  });

  it('psql: nothing leaks on stdout, stderr or the wire', async () => {
    const usable = corpus.filter((a) => !a.noPsql);
    const problems: string[] = [];
    for (let i = 0; i < usable.length; i += 120) {
      const chunk = usable.slice(i, i + 120);
      const script = chunk.map((a) => (a.tx ? `BEGIN;\n${a.sql}\n;\nROLLBACK;\n` : `${a.sql}\n;\n`)).join('') + `SELECT 'psql-done';\n`;
      const before = tap.connections.length;
      const out = await psql({ host: '127.0.0.1', port: tap.port }, `user=${ANALYST} sslmode=disable`, ['-v', 'ON_ERROR_STOP=0'], {
        env: { PGPASSWORD: analystToken },
        dbname: DATABASE,
        input: script,
      });
      for (const a of chunk) count(a.category);
      const sent = chunk.map((a) => a.sql).join('\n');
      const wire = tap.connections.slice(before).map((c) => c.since(0));
      const leaks = leaked(Buffer.concat([Buffer.from(out.stdout), Buffer.from(out.stderr), ...wire]), world.secrets, sent);
      if (leaks.length > 0) problems.push(`LEAK ${JSON.stringify(leaks)} in psql chunk ${i / 120}`);
      if (!out.stdout.includes('psql-done')) problems.push(`psql chunk ${i / 120} did not finish: ${out.stderr.slice(-500)}`);
      if (/server closed the connection|connection to server .* failed|XX000/.test(out.stderr)) problems.push(`psql chunk ${i / 120}: ${out.stderr.slice(-500)}`);
    }
    expect(problems).toEqual([]);
  });

  it('differential probes: a hidden value and a decoy get the same answer, byte for byte', async () => {
    const problems: string[] = [];
    for (const extended of [false, true]) {
      const { client, tapped } = await connect(analystToken);
      const answer = async (sql: string, literal: string): Promise<string> => {
        const mark = tapped.receivedLength;
        await runPg(client, sql, extended);
        await settled(tapped, mark);
        return tapped.since(mark).toString('latin1').replaceAll(literal, '<value>');
      };
      try {
        for (const p of pairs) {
          count(`differential: ${p.category}`, 2);
          const secret = await answer(p.sql(p.secret), p.secret);
          const decoy = await answer(p.sql(p.decoy), p.decoy);
          if (secret !== decoy) {
            problems.push(
              `DIFFERS (${extended ? 'extended' : 'simple'}) ${p.template}: ${p.sql(p.secret)}\n  secret: ${JSON.stringify(secret.slice(0, 4000))}\n  decoy:  ${JSON.stringify(decoy.slice(0, 4000))}`,
            );
          }
          const leaks = leaked(secret, world.secrets, p.sql(p.secret));
          if (leaks.length > 0) problems.push(`LEAK ${JSON.stringify(leaks)} ← ${p.sql(p.secret)}`);
        }
      } finally {
        await client.end();
      }
    }
    expect(problems).toEqual([]);
  });

  /** Replaces the policies and waits until sessions have been told. */
  const usePolicies = (text: string): Promise<void> => replacePolicies(runtime.store, policyDir, text);

  // Statements that differ only in constants share one rewrite template (literal-template.ts). Each
  // corpus statement is planned, then a copy with every constant changed is looked up: what the
  // template gives it must be exactly what a fresh rewrite of the copy gives.
  it('rewrite templates give every corpus statement with other constants what a fresh rewrite gives', async () => {
    const catalog = buildCatalog((await superuser.query(CATALOG_SQL)).rows as Record<string, unknown>[]);
    const policies = runtime.store.current;
    const identity = { user: ANALYST, groups: ['analysts', 'ops'], claims: { region: 'eu' }, source: 'oidc' as const };
    const policy = createPolicyContext(policies.bundle, identity, policies.version);
    const problems: string[] = [];
    let templated = 0;
    for (const protocol of ['simple', 'extended'] as const) {
      const direct = (sql: string): RewriteDecision =>
        planRewrite({ sql, protocol, policy, bundle: policies.bundle, identity, catalog, searchPath: ['"$user"', 'public'] });
      for (const sql of new Set([...corpus.map((a) => a.sql), ...pairs.flatMap((p) => [p.sql(p.secret), p.sql(p.decoy)])])) {
        const shape = literalShape(sql);
        if (!shape) continue;
        const variant = withOtherConstants(sql);
        if (variant === undefined || literalShape(variant)?.key !== shape.key) continue;
        const cache = new PlanCache(10);
        const scope = { context: 'corpus', catalog: catalog.version, searchPath: ['"$user"', 'public'], protocol };
        cache.lookup(scope, sql, direct);
        const got = cache.lookup(scope, variant, direct);
        if (cache.templateHits === 0) continue;
        templated += 1;
        count('template: same as a fresh rewrite');
        const want = direct(variant);
        const same =
          got.kind === want.kind &&
          (got.kind !== 'rewrite' || want.kind !== 'rewrite' || sameTree(stripPositions(parseSync(got.sql).stmts), stripPositions(parseSync(want.sql).stmts))) &&
          (got.kind === 'deny' || want.kind === 'deny' || JSON.stringify(got.statements) === JSON.stringify(want.statements));
        if (!same) problems.push(`${protocol}: ${variant}\n  template: ${JSON.stringify(got)}\n  fresh:    ${JSON.stringify(want)}`);
      }
    }
    expect(problems).toEqual([]);
    expect(templated).toBeGreaterThan(300);
  });

  // Plans of row-filtered tables follow statistics over every row, the hidden ones included: here a
  // join whose method flips with the estimated number of orders would tell a hidden customer's order
  // count from a customer that does not exist, COSTS OFF or not. pgward refuses such EXPLAINs.
  it('EXPLAIN plans never depend on hidden rows: EXPLAIN of row-filtered tables is refused', async () => {
    const { rows } = await superuser.query<{ customer_id: number }>(
      `SELECT customer_id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region <> 'eu' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`,
    );
    const hidden = rows[0]!.customer_id;
    const { client } = await connect(analystToken);
    const differences: string[] = [];
    try {
      for (let n = 1; n <= 12; n++) {
        count('differential: plan shape', 2);
        const plan = async (id: number): Promise<string> => {
          const out = await runPg(client, `EXPLAIN (COSTS OFF) SELECT 1 FROM orders o JOIN generate_series(1, ${n}) g ON g = o.id WHERE o.customer_id = ${id}`, false);
          expect(out.error?.code).toBe('42501');
          return JSON.stringify(out).replaceAll(String(id), '<id>');
        };
        if ((await plan(hidden)) !== (await plan(hidden + 1))) differences.push(`join with ${n} rows`);
      }
    } finally {
      await client.end();
    }
    expect(differences).toEqual([]);
  });

  const NAMES_MASKED = POLICIES.replace(
    '  masks:\n',
    '  masks:\n    - { name: names-hidden, subjects: [analysts], resources: { columns: [public.customers.full_name] }, mask: { type: full } }\n',
  );

  /**
   * One policy-reload scenario on a fresh analyst session: `before` runs under the first policies
   * (full names of the analyst's region visible), the policies then mask full names, and `after`
   * must not show any of those names — pgward may refuse it or end the session, but nothing it
   * planned under the old policies may run under the new ones.
   */
  const afterReload = async (
    scenario: string,
    before: (c: pg.Client) => Promise<unknown>,
    after: (c: pg.Client) => Promise<unknown>,
  ): Promise<string | undefined> => {
    const names = world.visible.map((c) => c.fullName);
    const { client, tapped } = await connect(analystToken);
    try {
      await before(client);
      await usePolicies(NAMES_MASKED);
      count('policy reload');
      const mark = tapped.receivedLength;
      await after(client).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const shown = names.filter((n) => tapped.since(mark).toString('utf8').includes(n));
      return shown.length > 0 ? `${scenario}: shows ${shown.length} full names the new policies mask` : undefined;
    } finally {
      await client.end().catch(() => {});
      await usePolicies(POLICIES);
    }
  };

  it('nothing planned before a policy reload runs under the new policies', async () => {
    const v = world.visible[0]!;
    const byId = { name: 'corpus_reuse', text: 'SELECT full_name FROM customers WHERE id = $1', values: [v.id] };
    const problems = (
      [
        await afterReload('a fresh statement', async () => {}, (c) => c.query('SELECT full_name FROM customers')),
        await afterReload('EXECUTE of a statement prepared before', (c) => c.query('PREPARE corpus_before AS SELECT full_name FROM customers'), (c) => c.query('EXECUTE corpus_before')),
        await afterReload(
          'EXECUTE after a DEALLOCATE that failed in an aborted transaction',
          async (c) => {
            await c.query('PREPARE corpus_before AS SELECT full_name FROM customers');
          },
          async (c) => {
            await c.query('BEGIN');
            await c.query('SELECT 1 / 0').catch(() => undefined);
            await c.query('DEALLOCATE corpus_before').catch(() => undefined);
            await c.query('ROLLBACK');
            await c.query('PREPARE corpus_before AS SELECT 1').catch(() => undefined);
            return c.query('EXECUTE corpus_before');
          },
        ),
        await afterReload(
          'FETCH from a WITH HOLD cursor declared before',
          (c) => c.query('DECLARE corpus_held CURSOR WITH HOLD FOR SELECT full_name FROM customers'),
          (c) => c.query('FETCH ALL FROM corpus_held'),
        ),
        await afterReload('a protocol-level named statement parsed before', (c) => c.query(byId), (c) => c.query(byId)),
        await afterReload(
          'EXECUTE of a protocol-level statement parsed before',
          (c) => c.query(byId),
          (c) => c.query(`EXECUTE corpus_reuse(${v.id})`),
        ),
      ]
    ).filter((p): p is string => p !== undefined);
    expect(problems).toEqual([]);
  });

  it('nothing parsed before a policy reload runs under the new policies, at the protocol level', async () => {
    const names = world.visible.map((c) => c.fullName);
    const problems: string[] = [];
    for (const [scenario, statement] of [
      ['the unnamed statement, bound again', ''],
      ['a named statement', 'corpus_raw_named'],
    ] as const) {
      const raw = await analystRaw();
      const received: Buffer[] = [];
      try {
        const bind = frontend.bind('', statement);
        const execute = frontend.execute('');
        raw.write(Buffer.concat([frontend.parse(statement, 'SELECT full_name FROM customers'), bind, execute, frontend.sync]));
        await raw.until('Z');
        await usePolicies(NAMES_MASKED);
        count('policy reload');
        raw.write(Buffer.concat([bind, execute, typedFrame('S')]));
        for (;;) {
          const m = await raw.message();
          received.push(m);
          if (m[0] === 0x5a) break;
        }
      } catch {
        // the session was ended: fine
      } finally {
        raw.close();
        await usePolicies(POLICIES);
      }
      const shown = names.filter((n) => Buffer.concat(received).toString('utf8').includes(n));
      if (shown.length > 0) problems.push(`${scenario}: shows ${shown.length} full names the new policies mask`);
    }
    expect(problems).toEqual([]);
  });

  // Sequences from independent reviews: each leaves a statement or portal planned under the old
  // policies where a guess from the client's messages alone would think it gone or new (a Parse,
  // Close or Query the server skipped after an error, a duplicate-name Parse, a portal bound across
  // reloads or before a reload that landed mid-request). Whatever pgward does after a reload —
  // prepare again, refuse, or end the session — none of the names the new policies mask may arrive.
  it('nothing planned before a policy reload runs after it, whatever the client sent before', async () => {
    const { parse, bind, execute, closeStatement: close, query, sync, flush } = frontend;
    const names = `SELECT full_name FROM customers ORDER BY id LIMIT 2`;
    /** Bytes to send, then what ends their answer: ReadyForQuery (`zs` of them), or a BindComplete for a batch left open. */
    type Step = { send: Buffer; zs?: number; until?: '1' | '2' | 'C' | 'E' | 'G'; reloadAfterMs?: number } | 'reload' | 'reload back';
    const run = (...parts: Buffer[]): Step => ({ send: Buffer.concat(parts) });
    const copyIn = frontend.copyDone;
    /** `answers`: the session must stay usable and answer the last use with (masked) rows. */
    const scenarios: Array<{ name: string; steps: Step[]; copy?: true; answers?: true }> = [
      { name: 'unnamed statement, a Parse of it skipped after an error, reload', steps: [run(parse('', names), sync), run(parse('zz', 'SELEC'), parse('', 'SELECT 1'), sync), 'reload', run(bind('', ''), execute(''), sync)] },
      { name: 'unnamed statement, reload, a Parse of it skipped after an error', answers: true, steps: [run(parse('', names), sync), 'reload', run(parse('zz', 'SELEC'), parse('', 'SELECT 1'), sync), run(bind('', ''), execute(''), sync)] },
      { name: 'unnamed statement, a refused Parse of it skipped after an error, reload', steps: [run(parse('', names), sync), run(parse('zz', 'SELEC'), parse('', 'SELECT card_number FROM customers'), sync), 'reload', run(bind('', ''), execute(''), sync)] },
      { name: 'unnamed statement, reload, a Query skipped after an error', steps: [run(parse('', names), sync), 'reload', run(parse('zz', 'SELEC'), query('SELECT 1'), sync), run(bind('', ''), execute(''), sync)] },
      { name: 'named statement, a Close of it skipped after an error, reload', steps: [run(parse('corpus_s5', names), sync), run(parse('zz', 'SELEC'), close('corpus_s5'), sync), 'reload', run(bind('', 'corpus_s5'), execute(''), sync)] },
      { name: 'named statement, a duplicate-name Parse, reload', steps: [run(parse('corpus_s7', names), sync), run(parse('corpus_s7', 'SELECT 1'), sync), 'reload', run(bind('', 'corpus_s7'), execute(''), sync)] },
      { name: 'Parse sent, reload before its Bind in the same batch', steps: [{ send: Buffer.concat([parse('corpus_s8', names), flush]), until: '1' }, 'reload', run(bind('', 'corpus_s8'), execute(''), sync)] },
      { name: 'portal bound and left open with Flush, reload', steps: [{ send: Buffer.concat([parse('', names), bind('corpus_p', ''), flush]), until: '2' }, 'reload', run(execute('corpus_p'), sync)] },
      { name: 'portal bound across two reloads', steps: ['reload', 'reload back', { send: Buffer.concat([parse('', names), bind('corpus_p', ''), flush]), until: '2' }, 'reload', run(execute('corpus_p'), sync)] },
      { name: 'portal suspended in a transaction, reload', steps: [run(query('BEGIN')), run(parse('corpus_s3', names), bind('corpus_p', 'corpus_s3'), execute('corpus_p', 1), sync), 'reload', run(execute('corpus_p'), sync)] },
      {
        name: 'portal bound behind a slow query, reload while it runs',
        steps: [run(parse('corpus_s9', names), sync), { send: Buffer.concat([query('SELECT pg_sleep(0.6)'), query('BEGIN'), bind('corpus_p', 'corpus_s9'), execute('corpus_p', 1), sync]), zs: 3, reloadAfterMs: 200 }, run(execute('corpus_p'), sync)],
      },
      { name: 'named statement, reload inside an aborted transaction, then ROLLBACK', answers: true, steps: [run(parse('corpus_s4', names), sync), run(query('BEGIN')), run(query('SELECT 1/0')), 'reload', run(bind('', 'corpus_s4'), execute(''), sync), run(query('ROLLBACK')), run(bind('', 'corpus_s4'), execute(''), sync)] },
      // A ROLLBACK through the extended protocol, without Sync, ends the aborted block the last ReadyForQuery reported.
      { name: 'reload, aborted block, ROLLBACK sent with Flush, then a use', steps: [run(parse('corpus_r1', names), sync), 'reload', run(query('BEGIN')), run(query('SELECT 1/0')), { send: Buffer.concat([parse('', 'ROLLBACK'), bind('', ''), execute(''), flush]), until: 'C' }, run(bind('', 'corpus_r1'), execute(''), sync)] },
      { name: 'aborted block, reload, ROLLBACK TO SAVEPOINT sent with Flush, then a use', steps: [run(parse('corpus_r2', names), sync), run(query('BEGIN')), run(query('SAVEPOINT corpus_sp')), run(query('SELECT 1/0')), 'reload', { send: Buffer.concat([parse('', 'ROLLBACK TO SAVEPOINT corpus_sp'), bind('', ''), execute(''), flush]), until: 'C' }, run(bind('', 'corpus_r2'), execute(''), sync)] },
      // DEALLOCATE ALL and DISCARD ALL clear named statements only; the unnamed one stays.
      { name: 'unnamed statement, DEALLOCATE ALL through the extended protocol, reload', steps: [run(parse('', names), sync), run(parse('corpus_d', 'DEALLOCATE ALL'), bind('', 'corpus_d'), execute(''), sync), 'reload', run(bind('', ''), execute(''), sync)] },
      { name: 'unnamed statement, DISCARD ALL through the extended protocol, reload', steps: [run(parse('', names), sync), run(parse('corpus_d2', 'DISCARD ALL'), bind('', 'corpus_d2'), execute(''), sync), 'reload', run(bind('', ''), execute(''), sync)] },
      // A statement SQL-level PREPARE creates after a reload is planned under the new policies: usable through the protocol.
      { name: 'reload, SQL-level PREPARE, then a protocol Bind of it', answers: true, steps: ['reload', run(query(`PREPARE corpus_q AS ${names}`)), run(bind('', 'corpus_q'), execute(''), sync)] },
      // SQL-level FETCH and MOVE address protocol-level portals by name.
      { name: 'portal bound in a transaction, reload, SQL FETCH of it', steps: [run(query('BEGIN')), run(parse('corpus_f1', names), bind('corpus_pf', 'corpus_f1'), sync), 'reload', run(query('FETCH ALL FROM corpus_pf'))] },
      { name: 'portal bound in a transaction, reload, FETCH of it through the extended protocol', steps: [run(query('BEGIN')), run(parse('corpus_f2', names), bind('corpus_pf2', 'corpus_f2'), sync), 'reload', run(parse('', 'FETCH ALL FROM corpus_pf2'), bind('', ''), execute(''), sync)] },
      { name: 'portal bound and left open with Flush, reload, SQL FETCH of it', steps: [{ send: Buffer.concat([parse('', names), bind('corpus_pf3', ''), flush]), until: '2' }, 'reload', run(query('FETCH ALL FROM corpus_pf3'))] },
      { name: 'portal bound in a transaction, reload, SQL MOVE then FETCH', steps: [run(query('BEGIN')), run(parse('corpus_f4', names), bind('corpus_pf4', 'corpus_f4'), sync), 'reload', run(query('MOVE 0 IN corpus_pf4; FETCH ALL FROM corpus_pf4'))] },
      // A Parse or Close in an earlier batch of the same write may fail without skipping the use.
      { name: 'reload, duplicate-name Parse and a use pipelined across a Sync', steps: [run(parse('corpus_x1', names), sync), 'reload', { send: Buffer.concat([parse('corpus_x1', 'SELECT 1'), sync, bind('', 'corpus_x1'), execute(''), sync]), zs: 2 }] },
      { name: 'reload, Close skipped after an error and a use pipelined across a Sync', steps: [run(parse('corpus_x2', names), sync), 'reload', { send: Buffer.concat([parse('zz', 'SELEC'), close('corpus_x2'), sync, bind('', 'corpus_x2'), execute(''), sync]), zs: 2 }] },
      { name: 'reload, refused Parse of an existing name and a use pipelined across a Sync', steps: [run(parse('corpus_x3', names), sync), 'reload', { send: Buffer.concat([parse('corpus_x3', 'SELECT card_number FROM customers'), sync, bind('', 'corpus_x3'), execute(''), sync]), zs: 2 }] },
      { name: 'reload, duplicate-name Parse and SQL EXECUTE pipelined across a Sync', steps: [run(parse('corpus_y1', names), sync), 'reload', { send: Buffer.concat([parse('corpus_y1', 'SELECT 1'), sync, query('EXECUTE corpus_y1')]), zs: 2 }] },
      { name: 'reload, more statement text than tracked, a pending duplicate Parse', steps: [run(parse('corpus_x5', names), sync), 'reload', run(parse('corpus_big', `SELECT '${'x'.repeat(4_300_000)}'::text`), parse('corpus_x5', 'SELECT 1'), sync), run(bind('', 'corpus_x5'), execute(''), sync)] },
      { name: 'messages after an error seen through Flush, reload', answers: true, steps: [run(parse('corpus_y4', names), sync), { send: Buffer.concat([parse('zz', 'SELEC'), flush]), until: 'E' }, run(bind('', 'corpus_y4'), execute(''), sync), run(query('SELECT 1')), 'reload', run(bind('', 'corpus_y4'), execute(''), sync)] },
      // libpq's extended COPY sends a Sync before CopyDone, which the server ignores.
      { name: 'extended COPY FROM with a Sync before CopyDone, reload', copy: true, answers: true, steps: [run(parse('corpus_y6', names), sync), { send: Buffer.concat([parse('', 'COPY products FROM STDIN'), bind('', ''), execute(''), sync]), until: 'G' }, run(copyIn, sync), 'reload', run(bind('', 'corpus_y6'), execute(''), sync), run(bind('', 'corpus_y6'), execute(''), sync)] },
      { name: 'simple COPY FROM with a Sync inside, reload while a slow query runs', copy: true, steps: [{ send: Buffer.concat([query('SELECT pg_sleep(0.6)'), query('COPY products FROM STDIN'), sync, copyIn, parse('corpus_x7', names), sync]), zs: 3, reloadAfterMs: 200 }, run(bind('', 'corpus_x7'), execute(''), sync)] },
    ];
    const withCopy = (policies: string): string => policies.replace('actions: [select, copy_to], resources: { tables: [public.products] }', 'actions: [select, copy_to, copy_from], resources: { tables: [public.products] }');
    await superuser.query('GRANT INSERT ON products TO scram_user');
    const problems: string[] = [];
    for (const scenario of scenarios) {
      const base = scenario.copy ? withCopy(POLICIES) : POLICIES;
      const changed = scenario.copy ? withCopy(NAMES_MASKED) : NAMES_MASKED;
      if (scenario.copy) await usePolicies(base);
      const raw = await analystRaw();
      let reloaded = false;
      const received: Buffer[] = [];
      try {
        for (const step of scenario.steps) {
          if (step === 'reload' || step === 'reload back') {
            await usePolicies(step === 'reload' ? changed : base);
            reloaded = step === 'reload';
            count('policy reload');
            continue;
          }
          raw.write(step.send);
          const reload = step.reloadAfterMs === undefined ? undefined : new Promise((resolve) => setTimeout(resolve, step.reloadAfterMs)).then(() => usePolicies(changed));
          for (let zs = 0; zs < (step.zs ?? 1); ) {
            const m = await raw.message();
            if (reloaded) received.push(m);
            if (m[0] === 0x5a) zs += 1;
            if (step.until && m[0] === step.until.charCodeAt(0)) break;
          }
          if (reload) {
            await reload;
            reloaded = true;
          }
        }
      } catch {
        // the session was ended: fine
      } finally {
        raw.close();
        await usePolicies(POLICIES);
      }
      const shown = world.visible.map((c) => c.fullName).filter((n) => Buffer.concat(received).toString('utf8').includes(n));
      if (shown.length > 0) problems.push(`${scenario.name}: shows ${shown.length} full names the new policies mask`);
      const last = received.slice(received.findLastIndex((m, i) => i < received.length - 1 && m[0] === 0x5a) + 1);
      if (scenario.answers && !last.some((m) => m[0] === 0x44)) {
        problems.push(`${scenario.name}: the last use got no rows (${last.map((m) => String.fromCharCode(m[0]!)).join(' ') || 'the session ended'})`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('after a policy reload, statements are prepared again before their next use, and what cannot be is refused', async () => {
    const names = world.visible.map((c) => c.fullName);
    const { parse, bind, execute, sync } = frontend;
    /** Every message up to the next ReadyForQuery, as type letters (errors with their SQLSTATE), and the bytes. */
    const exchange = async (raw: RawClient, bytes: Buffer): Promise<{ types: string[]; text: string }> => {
      raw.write(bytes);
      const types: string[] = [];
      const seen: Buffer[] = [];
      for (;;) {
        const m = await raw.message();
        seen.push(m);
        const type = String.fromCharCode(m[0]!);
        if (type === 'N' || type === 'S') continue;
        types.push(type === 'E' ? `E${decodeErrorFields(m).get('C')}` : type);
        if (type === 'Z') return { types, text: Buffer.concat(seen).toString('utf8') };
      }
    };
    const shows = (text: string): string[] => names.filter((n) => text.includes(n));
    const raw = await analystRaw();
    try {
      const first = `SELECT full_name FROM customers ORDER BY id LIMIT 2`;
      const second = `SELECT full_name FROM customers ORDER BY id DESC LIMIT 2`;
      const before = await exchange(raw, Buffer.concat([parse('corpus_a', first), parse('corpus_b', second), parse('', first), sync]));
      expect(before.types).toEqual(['1', '1', '1', 'Z']);
      // A portal in an open transaction, suspended after one row.
      await exchange(raw, typedFrame('Q', 'BEGIN\0'));
      const suspended = await exchange(raw, Buffer.concat([bind('corpus_portal', 'corpus_a'), execute('corpus_portal', 1), sync]));
      expect(suspended.types).toEqual(['2', 'D', 's', 'Z']);
      await usePolicies(NAMES_MASKED);
      count('policy reload', 4);

      // The portal bound before the reload does not run on.
      const resumed = await exchange(raw, Buffer.concat([execute('corpus_portal'), sync]));
      expect(resumed.types).toEqual(['E0A000', 'Z']);
      expect(shows(resumed.text)).toEqual([]);
      await exchange(raw, typedFrame('Q', 'ROLLBACK\0'));

      // The first stale statement of a batch is prepared again (pgward's Close and Parse answer
      // unseen); one behind it in the same batch is refused.
      const both = await exchange(raw, Buffer.concat([bind('', 'corpus_a'), execute(''), bind('', 'corpus_b'), execute(''), sync]));
      expect(both.types).toEqual(['2', 'D', 'D', 'C', 'E0A000', 'Z']);
      expect(shows(both.text)).toEqual([]);
      // Alone in its batch, it is prepared again too.
      for (const statement of ['corpus_b', 'corpus_a']) {
        const again = await exchange(raw, Buffer.concat([bind('', statement), execute(''), sync]));
        expect(again.types, statement).toEqual(['2', 'D', 'D', 'C', 'Z']);
        expect(shows(again.text)).toEqual([]);
      }
      // The session is healthy, and new statements see the new policies.
      const fresh = await exchange(raw, Buffer.concat([parse('', first), bind('', ''), execute(''), sync]));
      expect(fresh.types).toEqual(['1', '2', 'D', 'D', 'C', 'Z']);
      expect(shows(fresh.text)).toEqual([]);

      // The unnamed statement, parsed under the first policies and bound again after a reload (no
      // simple Query in between, which would drop it), is prepared again as well.
      await usePolicies(POLICIES);
      expect((await exchange(raw, Buffer.concat([parse('', first), sync]))).types).toEqual(['1', 'Z']);
      await usePolicies(NAMES_MASKED);
      const unnamed = await exchange(raw, Buffer.concat([bind('', ''), execute(''), sync]));
      expect(unnamed.types).toEqual(['2', 'D', 'D', 'C', 'Z']);
      expect(shows(unnamed.text)).toEqual([]);

      // A statement the new policies refuse answers with the refusal at every use, and the session goes on.
      await usePolicies(
        POLICIES.replace('  masks:\n', '    - { name: names-denied, effect: deny, subjects: [analysts], resources: { columns: [public.customers.full_name] } }\n  masks:\n'),
      );
      for (let i = 0; i < 2; i++) {
        const denied = await exchange(raw, Buffer.concat([bind('', 'corpus_a'), execute(''), sync]));
        expect(denied.types).toEqual(['E42501', 'Z']);
        expect(shows(denied.text)).toEqual([]);
      }
      expect((await exchange(raw, typedFrame('Q', 'SELECT count(*) FROM customers\0'))).types).toEqual(['T', 'D', 'C', 'Z']);
    } finally {
      raw.close();
      await usePolicies(POLICIES);
    }
  });

  it('hash-mask salts never reach the client: not through EXPLAIN, debug output or catalog views', async () => {
    const salt = 'corpus-salt-5d41402abc';
    // Query trees print constants as their bytes: `:constvalue 26 [ 104 0 0 0 99 111 ... ]`.
    const datum = [...Buffer.from(salt)].join(' ');
    const shows = (bytes: Buffer): boolean => {
      const text = bytes.toString('utf8');
      return text.includes(salt) || text.includes(datum);
    };
    await usePolicies(POLICIES.replace('mask: { type: partial, showLast: 4 }', `mask: { type: hash, salt: ${salt} }`));
    const problems: string[] = [];
    try {
      for (const options of [undefined, '-c debug_print_plan=on -c debug_print_parse=on -c client_min_messages=log']) {
        let connected: { client: pg.Client; tapped: TapConnection };
        try {
          connected = await connect(analystToken, ANALYST, options ? ({ options } as Partial<pg.ClientConfig>) : {});
        } catch {
          continue; // settings that echo statements refused at startup: fine
        }
        const { client, tapped } = connected;
        const mark = tapped.receivedLength;
        for (const sql of [
          'SELECT ssn FROM customers ORDER BY ssn LIMIT 2',
          'EXPLAIN (COSTS OFF) SELECT ssn FROM customers',
          'EXPLAIN (COSTS OFF, VERBOSE) SELECT id FROM customers',
          'SET client_min_messages = debug5',
          'SET debug_print_plan = on',
          'SET debug_print_rewritten = on',
          'SET debug_print_parse = on',
          'SET debug_pretty_print = off',
          'SELECT ssn FROM customers WHERE ssn > $$a$$',
          'PREPARE corpus_salted AS SELECT ssn FROM customers',
          'EXPLAIN (COSTS OFF) EXECUTE corpus_salted',
          'EXECUTE corpus_salted',
          'SELECT statement FROM pg_prepared_statements',
          'SELECT current_query()',
          'SELECT query FROM pg_stat_activity',
          'SELECT ssn::int FROM customers',
          'SELECT 1 / 0 FROM customers WHERE ssn IS NOT NULL',
          'SELECT ssn FROM customers WHERE ssn::numeric > 0',
          'RESET ALL',
          'DISCARD ALL',
        ]) {
          for (const extended of [false, true]) {
            const at = tapped.receivedLength;
            await runPg(client, sql, extended);
            await settled(tapped, at);
            if (shows(tapped.since(at))) {
              problems.push(`the salt reached the client after ${sql}${extended ? ' (extended)' : ''}${options ? ` (startup options ${options})` : ''}`);
            }
          }
        }
        await settled(tapped, mark);
        if (shows(tapped.since(0)) && problems.length === 0) problems.push(`the salt reached the client${options ? ` (startup options ${options})` : ''}`);
        await client.end();
      }
    } finally {
      await usePolicies(POLICIES);
    }
    expect(problems).toEqual([]);
  });

  it('startup options cannot move name resolution or the lexical settings pgward parses with', async () => {
    const problems: string[] = [];
    const variants = [
      '-c search_path=evil',
      '-csearch_path=evil',
      '--search_path=evil',
      '-c SEARCH_PATH=evil',
      '-c search\\_path=evil',
      '-c search-path=evil',
      '--search-path=evil',
      '-c client_encoding=SJIS',
      '-c standard_conforming_strings=off',
      '-c role=pgward_test',
      '-c session_authorization=pgward_test',
      '-c default_transaction_read_only=on',
      '-c DateStyle=German',
    ];
    for (const options of variants) {
      let connected: { client: pg.Client; tapped: TapConnection } | undefined;
      try {
        connected = await connect(analystToken, ANALYST, { options } as Partial<pg.ClientConfig>);
      } catch {
        continue; // refused at startup: fine
      }
      const { client, tapped } = connected;
      try {
        const path = await runPg(client, 'SHOW search_path', false);
        if (path.rows[0]?.[0] !== '"$user", public') problems.push(`${options}: search_path is ${JSON.stringify(path.rows)}`);
        const strings = await runPg(client, 'SHOW standard_conforming_strings', false);
        const encoding = await runPg(client, 'SHOW client_encoding', false);
        if (strings.rows[0]?.[0] !== 'on' || !['UTF8', 'SQL_ASCII'].includes(encoding.rows[0]?.[0] ?? '')) {
          problems.push(`${options}: standard_conforming_strings ${JSON.stringify(strings.rows)}, client_encoding ${JSON.stringify(encoding.rows)}`);
        }
        const count = await runPg(client, 'SELECT count(*) FROM customers', false);
        if (count.rows[0]?.[0] !== String(world.visible.length)) problems.push(`${options}: customers resolved elsewhere: ${JSON.stringify(count)}`);
        await runPg(client, 'SELECT id, ssn, email FROM customers', false);
        const leaks = leaked(tapped.since(0), world.secrets, options);
        if (leaks.length > 0) problems.push(`${options}: LEAK ${JSON.stringify(leaks)}`);
      } finally {
        await client.end().catch(() => {});
      }
    }
    // Startup parameters other than options, spelled the way the server matches them (case-insensitively).
    for (const [name, value] of [
      ['SEARCH_PATH', 'evil'],
      ['Search_Path', 'evil, public'],
      ['client_encoding', 'SJIS'],
      ['standard_conforming_strings', 'off'],
    ] as const) {
      const raw = await RawClient.connect(tap.port);
      try {
        raw.startup([['user', ANALYST], ['database', DATABASE], [name, value]]);
        const first = await raw.message();
        if (first[0] !== 0x52) continue;
        raw.write(passwordMessage(analystToken));
        let ready = false;
        for (;;) {
          const m = await raw.message();
          if (m[0] === 0x45) break; // refused
          if (m[0] === 0x5a) {
            ready = true;
            break;
          }
        }
        if (!ready) continue;
        raw.write(typedFrame('Q', 'SHOW search_path\0'));
        const row = await raw.until('D');
        const shown = row.toString('utf8', 11);
        if (shown !== '"$user", public') problems.push(`startup ${name}=${value}: search_path is ${shown}`);
        raw.write(typedFrame('Q', 'SELECT count(*) FROM customers\0'));
        const count = (await raw.until('D')).toString('utf8', 11);
        if (count !== String(world.visible.length)) problems.push(`startup ${name}=${value}: customers resolved elsewhere (${count} rows)`);
      } catch (err) {
        // a closed connection is a refusal
        if (!/closed|ECONNRESET/i.test(String(err))) problems.push(`startup ${name}=${value}: ${String(err)}`);
      } finally {
        raw.close();
      }
    }
    expect(problems).toEqual([]);
  });

  it('protocol-level tricks: fast-path calls, NUL bytes, invalid UTF-8, refused Parse then Bind', async () => {
    const raw = await analystRaw();
    const problems: string[] = [];
    const frames: Buffer[] = [];
    const exchange = async (bytes: Buffer): Promise<Buffer[]> => {
      raw.write(bytes);
      const got: Buffer[] = [];
      for (;;) {
        const m = await raw.message();
        got.push(m);
        frames.push(m);
        if (m[0] === 0x5a) return got;
      }
    };
    const errorCode = (got: Buffer[]): string | undefined => {
      const e = got.find((m) => m[0] === 0x45);
      return e ? decodeErrorFields(e).get('C') : undefined;
    };
    const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
    const int16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
    const int32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeInt32BE(n);
      return b;
    };
    try {
      // Fast-path FunctionCall of lo_import's oid (764) and of an arbitrary function oid.
      for (const oid of [764, 1242, 2170]) {
        const call = typedFrame('F', Buffer.concat([int32(oid), int16(1), int16(0), int16(1), int32(11), Buffer.from('/etc/passwd'), int16(0)]));
        const code = errorCode(await exchange(call));
        if (code !== '42501') problems.push(`FunctionCall ${oid}: ${code}`);
      }
      // A Query with bytes after its terminating NUL: the server must not run what follows.
      const code1 = errorCode(await exchange(typedFrame('Q', Buffer.concat([cstr('SELECT 1'), cstr('SELECT card_number FROM customers')]))));
      if (code1 === undefined) problems.push('Query with trailing bytes after NUL was answered');
      // Invalid UTF-8 inside a literal and an identifier.
      for (const body of [
        Buffer.concat([Buffer.from("SELECT ssn FROM customers WHERE full_name = '"), Buffer.from([0x95, 0x5c]), Buffer.from("' OR card_number IS NOT NULL --'\0")]),
        Buffer.concat([Buffer.from('SELECT ssn FROM customers WHERE "'), Buffer.from([0xc3]), Buffer.from('" IS NULL\0')]),
        Buffer.concat([Buffer.from("SELECT '"), Buffer.from([0xe0, 0x80]), Buffer.from("', card_number FROM customers\0")]),
      ]) {
        const got = await exchange(typedFrame('Q', body));
        if (!errorCode(got)) problems.push(`invalid UTF-8 was answered: ${body.toString('latin1')}`);
      }
      // Parse refused, then Bind/Describe/Execute of that name: nothing may run.
      const parse = typedFrame('P', Buffer.concat([cstr('corpus_raw'), cstr('SELECT card_number FROM customers'), int16(0)]));
      const bind = typedFrame('B', Buffer.concat([cstr(''), cstr('corpus_raw'), int16(0), int16(0), int16(0)]));
      const describe = typedFrame('D', Buffer.concat([Buffer.from('P'), cstr('')]));
      const execute = typedFrame('E', Buffer.concat([cstr(''), int32(0)]));
      const sync = typedFrame('S');
      const got = await exchange(Buffer.concat([parse, bind, describe, execute, sync]));
      if (errorCode(got) !== '42501' || got.some((m) => m[0] === 0x44)) problems.push(`refused Parse then Bind: ${got.map((m) => String.fromCharCode(m[0]!)).join('')}`);
      // A masked unnamed statement, then a refused unnamed Parse, then a Bind of the unnamed statement:
      // what runs is neither the refused text nor anything unmasked.
      await exchange(Buffer.concat([typedFrame('P', Buffer.concat([cstr(''), cstr('SELECT id, ssn FROM customers'), int16(0)])), sync]));
      await exchange(Buffer.concat([typedFrame('P', Buffer.concat([cstr(''), cstr('SELECT card_number FROM customers'), int16(0)])), sync]));
      const unnamed = typedFrame('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(0), int16(0)]));
      const reused = await exchange(Buffer.concat([unnamed, execute, sync]));
      if (reused.some((m) => m[0] === 0x44)) problems.push('a Bind after a refused unnamed Parse returned rows');
      // A Parse that lies about its length structure.
      const broken = typedFrame('P', Buffer.concat([cstr('x'), cstr('SELECT 1'), int16(5)]));
      const brokenCode = errorCode(await exchange(Buffer.concat([broken, sync])));
      if (!brokenCode) problems.push('malformed Parse was answered');
      const alive = await exchange(typedFrame('Q', cstr('SELECT 42')));
      if (!alive.some((m) => m[0] === 0x44)) problems.push(`session unusable after protocol tricks: ${alive.map((m) => m.toString('latin1')).join(' | ')}`);
    } catch (err) {
      problems.push(`connection failed: ${String(err)}`);
    } finally {
      raw.close();
    }
    const leaks = leaked(Buffer.concat(frames), world.secrets, '');
    if (leaks.length > 0) problems.push(`LEAK ${JSON.stringify(leaks)}`);
    expect(problems).toEqual([]);
  });

  it('statements nested too deeply for the checker are refused, and pgward stays up', async () => {
    const { client, tapped } = await connect(analystToken);
    const problems: string[] = [];
    try {
      for (const depth of [500, 1500, 5000]) {
        for (const sql of [
          `SELECT id FROM customers WHERE id = ${'abs('.repeat(depth)}1${')'.repeat(depth)}`,
          `SELECT ${'(SELECT '.repeat(depth)}ssn FROM customers${')'.repeat(depth)}`,
          `SELECT id FROM customers WHERE ${'NOT '.repeat(depth)}true`,
          `SELECT ${'ARRAY['.repeat(depth)}ssn${']'.repeat(depth)} FROM customers`,
          `SELECT id FROM customers WHERE id IN (${'SELECT id FROM customers WHERE id IN ('.repeat(Math.min(depth, 800))}1${')'.repeat(Math.min(depth, 800))})`,
        ]) {
          for (const extended of [false, true]) {
            count('deep nesting');
            const mark = tapped.receivedLength;
            const outcome = await runPg(client, sql, extended);
            await settled(tapped, mark);
            if (outcome.error?.code === undefined && outcome.error) problems.push(`depth ${depth}: connection lost (${outcome.error.message})`);
            if (outcome.error?.code === 'XX000') problems.push(`depth ${depth}: internal error ${outcome.error.message}`);
            const leaks = leaked(tapped.since(mark), world.secrets, sql);
            if (leaks.length > 0) problems.push(`depth ${depth}: LEAK ${JSON.stringify(leaks)}`);
          }
        }
      }
      expect((await client.query('SELECT 1 AS ok')).rows[0]?.ok).toBe(1);
    } finally {
      await client.end().catch(() => {});
    }
    // pgward itself is still there for new sessions.
    const { client: fresh } = await connect(analystToken);
    expect((await fresh.query('SELECT count(*)::int AS n FROM customers')).rows[0]?.n).toBe(world.visible.length);
    await fresh.end();
    expect(problems).toEqual([]);
  });

  it('psql meta-commands work for analysts and leak nothing', async () => {
    const commands = [
      '\\d customers',
      '\\d+ orders',
      '\\dt',
      '\\dv',
      '\\dn',
      '\\df leak_ssn',
      '\\dp customers',
      '\\l',
      '\\lo_list',
      '\\copy customers (id, ssn, email) to stdout',
      '\\copy (select id, salary, date_of_birth from customers) to stdout with csv',
      "select 'select card_number from customers' \\gexec",
      "select 'select ssn from evil.customers' as q \\gset\n:q;",
      '\\lo_import /etc/hostname',
      '\\lo_export 1 /tmp/pgward-corpus-lo',
      'select region, id, ssn from customers \\crosstabview region id ssn',
      '\\sv customer_view',
      '\\ef leak_ssn',
    ];
    count('psql meta-commands', commands.length);
    const before = tap.connections.length;
    const out = await psql({ host: '127.0.0.1', port: tap.port }, `user=${ANALYST} sslmode=disable`, ['-v', 'ON_ERROR_STOP=0'], {
      env: { PGPASSWORD: analystToken, EDITOR: 'true' },
      dbname: DATABASE,
      input: commands.join('\n') + '\n',
    });
    const wire = tap.connections.slice(before).map((c) => c.since(0));
    expect(leaked(Buffer.concat([Buffer.from(out.stdout), Buffer.from(out.stderr), ...wire]), world.secrets, commands.join('\n'))).toEqual([]);
    // \d needs the catalog, extended statistics definitions included; it must work for analysts.
    expect(out.stdout).toMatch(/ssn\|text/);
    expect(out.stderr).not.toMatch(/pg_statistic_ext is not readable/);
    expect(out.stderr).toMatch(/card numbers are not readable through pgward/);
  });

  it('admins see raw data, unchanged, on every path', async () => {
    const { client, tapped } = await connect(adminToken, ADMIN);
    try {
      const through = await runPg(client, 'SELECT id, full_name, email, ssn, salary::text, card_number, date_of_birth::text FROM customers ORDER BY id', false);
      const direct = await superuser.query({ text: 'SELECT id, full_name, email, ssn, salary::text, card_number, date_of_birth::text FROM customers ORDER BY id', rowMode: 'array', types: RAW_TYPES });
      expect(through.rows).toEqual(direct.rows);
      const hidden = world.hidden[0]!;
      expect((await runPg(client, `SELECT full_name FROM customers WHERE id = ${hidden.id}`, true)).rows).toEqual([[hidden.fullName]]);
      await runPg(client, 'COPY customers (ssn, card_number) TO STDOUT', false);
      await settled(tapped, 0);
      const bytes = tapped.since(0).toString('utf8');
      for (const c of world.customers) expect(bytes).toContain(c.cardNumber);
      expect((await runPg(client, 'SELECT * FROM pg_stats WHERE tablename = $$customers$$', false)).error).toBeUndefined();
      expect((await runPg(client, 'EXPLAIN SELECT * FROM customers', false)).error).toBeUndefined();
      expect((await runPg(client, 'SHOW search_path', false)).rows).toEqual([['"$user", public']]);
    } finally {
      await client.end();
    }
  });

  it('over TLS, drivers get the same masked answers and refusals', async () => {
    const client = new pg.Client({ host: pgward.host, port: pgward.port, user: ANALYST, password: analystToken, database: DATABASE, ssl: pgward.ssl });
    client.on('error', () => {});
    await client.connect();
    try {
      // Every seventh attempt, leaving out those that depend on an earlier one (prepared statements, cursors).
      const stateless = corpus.filter((a) => !a.multi && !/corpus_[pc]\d|\b(FETCH|MOVE|CLOSE|EXECUTE|DEALLOCATE|DISCARD)\b/.test(a.sql));
      const sample = stateless.filter((_, i) => i % 7 === 0);
      const problems: string[] = [];
      for (const a of sample) {
        count('TLS sample');
        if (a.tx) await client.query('BEGIN');
        const outcome = await runPg(client, a.sql, false);
        if (a.tx) await client.query('ROLLBACK');
        const wrong = judge(a, outcome, { rows: true });
        if (wrong) problems.push(`${wrong} ← ${describeAttempt(a)}`);
        const leaks = leaked(JSON.stringify(outcome), world.secrets, a.sql);
        if (leaks.length > 0) problems.push(`LEAK ${JSON.stringify(leaks)} ← ${describeAttempt(a)}`);
      }
      expect(problems).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it('notifications other sessions compute from protected data do not reach an analyst', async () => {
    const listener = await connect(analystToken);
    const { client: app } = await connect(adminToken, ADMIN);
    const problems: string[] = [];
    try {
      count('LISTEN/NOTIFY', 3);
      const listen = await runPg(listener.client, 'LISTEN corpus_feed', false);
      // An application (unrestricted) announces changes with the row in the payload.
      await app.query(`SELECT pg_notify('corpus_feed', row_to_json(c)::text) FROM customers c`);
      await app.query(`NOTIFY corpus_feed, '${world.hidden[0]!.ssn}'`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await runPg(listener.client, 'SELECT 1', false);
      const leaks = leaked(listener.tapped.since(0), world.secrets, '');
      if (leaks.length > 0) problems.push(`LISTEN ${listen.error ? 'refused, yet' : 'allowed:'} ${leaks.length} secrets arrived in notifications`);
    } finally {
      await listener.client.end().catch(() => {});
      await app.end().catch(() => {});
    }
    expect(problems).toEqual([]);
  });

  it('an analyst cannot signal the backends of other sessions that share the service role', async () => {
    const { client: app } = await connect(adminToken, ADMIN);
    const { client } = await connect(analystToken);
    const problems: string[] = [];
    try {
      const pid = (await app.query('SELECT pg_backend_pid() AS pid')).rows[0]!.pid as number;
      for (const sql of [`SELECT pg_cancel_backend(${pid})`, `SELECT pg_terminate_backend(${pid})`, `SELECT pg_terminate_backend(pg_stat_get_backend_pid(s)) FROM pg_stat_get_backend_idset() s WHERE pg_stat_get_backend_pid(s) <> pg_backend_pid()`]) {
        count('other sessions');
        const outcome = await runPg(client, sql, false);
        if (!outcome.error) problems.push(`allowed: ${sql}`);
      }
      const alive = await app.query('SELECT 1 AS ok').then(() => true, () => false);
      if (!alive) problems.push('the application session was terminated by the analyst');
    } finally {
      await client.end().catch(() => {});
      await app.end().catch(() => {});
    }
    expect(problems).toEqual([]);
  });
});

/** The statement with every string and number constant changed (same kinds), deparsed; undefined if none changed. */
function withOtherConstants(sql: string): string | undefined {
  const stmts = parseSync(sql).stmts ?? [];
  let changed = 0;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (typeof node !== 'object' || node === null) return;
    for (const [k, v] of Object.entries(node)) {
      if (k !== 'A_Const') {
        visit(v);
        continue;
      }
      const c = v as A_Const;
      if (c.sval) {
        c.sval.sval = `${c.sval.sval ?? ''}z'\\`;
        changed += 1;
      } else if (c.ival) {
        c.ival.ival = (c.ival.ival ?? 0) + 17;
        changed += 1;
      } else if (c.fval?.fval && /^-?[\d.]+(e[+-]?\d+)?$/i.test(c.fval.fval)) {
        c.fval.fval = c.fval.fval.replace(/\d/, (d) => String((Number(d) % 9) + 1));
        changed += 1;
      }
    }
  };
  visit(stmts);
  if (changed === 0) return undefined;
  try {
    return stmts.map((s) => deparseStatement(s.stmt as Node)).join(';\n');
  } catch {
    return undefined; // the deparser cannot print it (JSON_TABLE): pgward refuses those anyway
  }
}
