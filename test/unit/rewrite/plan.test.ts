import { parseSync } from 'libpg-query';
import type { Node } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { deparseExpression } from '../../../src/rewrite/deparse.js';
import { loadSqlParser } from '../../../src/rewrite/placeholders.js';
import { createPolicyContext } from '../../../src/policy/decide.js';
import { describeDecision, planRewrite, type RewriteDecision, type StatementPlan } from '../../../src/rewrite/plan.js';
import { analyst, analystNoRegion, builder, DEMO_POLICIES, loader, stranger, world, type World } from './fixtures.js';

let w: World;

beforeAll(async () => {
  await loadSqlParser();
  w = await world();
});

// ---------------------------------------------------------------------------
// Helpers: read the rewritten SQL back as a tree.

interface ProtectedRef {
  /** The alias the rest of the statement uses. */
  readonly alias: string;
  readonly schema: string;
  readonly table: string;
  readonly only: boolean;
  /** Output column names in order. */
  readonly columns: readonly string[];
  /** SQL of each output expression, by name. */
  readonly exprs: Readonly<Record<string, string>>;
  readonly where: string | undefined;
  readonly offsetZero: boolean;
}

/** Every subquery pgward generated (FROM schema.table AS <internal> ... OFFSET 0) in a statement. */
function protectedRefs(sql: string): ProtectedRef[] {
  const out: ProtectedRef[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    const rs = record['RangeSubselect'] as { subquery?: Node; alias?: { aliasname?: string } } | undefined;
    const sub = rs?.subquery && 'SelectStmt' in rs.subquery ? rs.subquery.SelectStmt : undefined;
    const from = sub?.fromClause?.[0];
    const offset = sub?.limitOffset;
    if (rs && sub && from && 'RangeVar' in from && offset && 'A_Const' in offset) {
      const targets = (sub.targetList ?? []).flatMap((t) => ('ResTarget' in t ? [t.ResTarget] : []));
      out.push({
        alias: rs.alias?.aliasname ?? '',
        schema: from.RangeVar.schemaname ?? '',
        table: from.RangeVar.relname ?? '',
        only: from.RangeVar.inh !== true,
        columns: targets.map((t) => t.name ?? ''),
        exprs: Object.fromEntries(targets.map((t) => [t.name ?? '', t.val ? deparseExpression(t.val) : ''])),
        where: sub.whereClause ? deparseExpression(sub.whereClause) : undefined,
        offsetZero: offset.A_Const.ival !== undefined && (offset.A_Const.ival.ival ?? 0) === 0,
      });
    }
    for (const v of Object.values(record)) walk(v);
  };
  for (const s of parseSync(sql).stmts ?? []) walk(s.stmt);
  return out;
}

function rewritten(d: RewriteDecision): string {
  if (d.kind !== 'rewrite') throw new Error(`expected a rewrite, got ${describeDecision(d)}`);
  return d.sql;
}

function plans(d: RewriteDecision): readonly StatementPlan[] {
  if (d.kind === 'deny') throw new Error(`expected a plan, got ${describeDecision(d)}`);
  return d.statements;
}

function denied(d: RewriteDecision, sqlstate = '42501'): Extract<RewriteDecision, { kind: 'deny' }> {
  if (d.kind !== 'deny') throw new Error(`expected a deny, got ${describeDecision(d)}`);
  expect(d.sqlstate, d.message).toBe(sqlstate);
  return d;
}

/** The outer statement with every generated subquery replaced by `<table>`, for readable assertions. */
function outline(sql: string): string {
  let out = sql;
  for (const ref of protectedRefs(sql)) {
    const text = /\( SELECT .*? OFFSET 0 \)/.exec(out);
    if (!text) break;
    out = out.replace(text[0], `<${ref.schema}.${ref.table}${ref.only ? ' ONLY' : ''}>`);
  }
  return out;
}

const CUSTOMER_COLUMNS = ['id', 'full_name', 'email', 'ssn', 'region', 'salary', 'date_of_birth', 'created_at'];
const EU_FILTER = "region = CAST('eu' AS pg_catalog.text)";

// ---------------------------------------------------------------------------

describe('protected table references', () => {
  it('become a filtered, masked subquery with the same alias, names, order and no denied column', () => {
    const sql = rewritten(w.plan('SELECT c.full_name, c.ssn FROM customers c WHERE c.salary > 100000'));
    expect(outline(sql)).toBe('SELECT c.full_name, c.ssn FROM <public.customers> AS c WHERE c.salary > 100000');
    const [ref] = protectedRefs(sql);
    expect(ref).toMatchObject({ alias: 'c', schema: 'public', table: 'customers', only: false, columns: CUSTOMER_COLUMNS, where: EU_FILTER, offsetZero: true });
    expect(ref?.exprs['id']).toBe('customers.id');
    expect(ref?.exprs['ssn']).toContain('pg_catalog.regexp_replace(customers.ssn');
    expect(ref?.exprs['email']).toContain("'xxxxx@'");
    expect(ref?.exprs['salary']).toBe('CAST(NULL AS numeric)');
    expect(ref?.exprs['date_of_birth']).toBe("CAST(pg_catalog.date_trunc('year', CAST(customers.date_of_birth AS timestamp)) AS pg_catalog.date)");
    expect(ref?.exprs).not.toHaveProperty('card_number');
  });

  it('uses the table name as alias when there was none, and keeps ONLY exactly when written', () => {
    const plain = rewritten(w.plan('SELECT id FROM customers'));
    expect(outline(plain)).toBe('SELECT id FROM <public.customers> AS customers');
    const only = rewritten(w.plan('SELECT id FROM ONLY public.customers'));
    expect(outline(only)).toBe('SELECT id FROM <public.customers ONLY> AS customers');
  });

  it('leaves an unprotected table a plain, schema-qualified reference', () => {
    expect(rewritten(w.plan('SELECT o.id FROM orders o'))).toBe('SELECT o.id FROM public.orders AS o');
    expect(rewritten(w.plan('SELECT id FROM ONLY orders'))).toBe('SELECT id FROM ONLY public.orders');
    // Already qualified and nothing to apply: the original text goes upstream.
    expect(w.plan('SELECT id FROM public.orders').kind).toBe('forward');
  });

  it('applies the alias column list inside the subquery', () => {
    const sql = rewritten(w.plan('SELECT a, d FROM customers AS c(a, b, x, d)'));
    expect(protectedRefs(sql)[0]?.columns).toEqual(['a', 'b', 'x', 'd', 'region', 'salary', 'date_of_birth', 'created_at']);
    // A renamed denied column is still the denied column.
    denied(w.plan('SELECT g FROM customers AS c(a, b, x, d, e, f, g)'));
    denied(w.plan('SELECT 1 FROM customers AS c(a, b, c, d, e, f, g, h, i, j)'), '42P10');
  });

  it('renders a missing claim as a false filter (fail closed)', () => {
    const sql = rewritten(w.plan('SELECT id FROM customers', analystNoRegion));
    expect(protectedRefs(sql)[0]?.where).toBe('false');
  });

  it('quotes odd identifiers in the subquery and masks array-free text columns', () => {
    const sql = rewritten(w.plan('SELECT "SSN", "Tags" FROM "Client Data"'));
    expect(outline(sql)).toBe('SELECT "SSN", "Tags" FROM <public.Client Data> AS "Client Data"');
    const [ref] = protectedRefs(sql);
    expect(ref?.columns).toEqual(['Id', 'SSN', 'Tags']);
    expect(ref?.exprs['SSN']).toContain('pg_catalog.regexp_replace("Client Data"."SSN"');
  });

  it('rewrites three-part and database-qualified column references to the alias', () => {
    const sql = rewritten(w.plan('SELECT public.customers.ssn, app.public.customers.email FROM app.public.customers'));
    expect(outline(sql)).toBe('SELECT customers.ssn, customers.email FROM <public.customers> AS customers');
    denied(w.plan('SELECT x.id FROM elsewhere.public.customers x'), '0A000');
  });

  it('refuses a three-part reference it cannot rewrite unambiguously', () => {
    denied(w.plan('SELECT (SELECT public.customers.ssn FROM orders AS customers) FROM public.customers'), '0A000');
  });

  it('resolves quoted and unicode-escaped identifiers like PostgreSQL', () => {
    const sql = rewritten(w.plan('SELECT "ssn", U&"\\0065mail" FROM U&"\\0063ustomers"'));
    expect(outline(sql)).toBe('SELECT ssn, email FROM <public.customers> AS customers');
    denied(w.plan('SELECT 1 FROM "Customers"'), '42P01');
    denied(w.plan('SELECT U&"\\0063ard_number" FROM customers'));
  });

  it('keeps $n parameters', () => {
    const sql = rewritten(w.plan('SELECT id FROM customers WHERE ssn LIKE $1 AND id = ANY($2::int[]) LIMIT $3', analyst, { protocol: 'extended' }));
    expect(outline(sql)).toBe('SELECT id FROM <public.customers> AS customers WHERE ssn LIKE $1 AND id = ANY (CAST($2 AS int[])) LIMIT $3');
  });

  it('records column provenance, masks and encryption included', () => {
    const [plan] = plans(w.plan('SELECT c.id, c.ssn, upper(c.email) AS e, o.amount, x.s FROM customers c JOIN orders o ON o.customer_id = c.id, LATERAL (SELECT c.email AS s) x'));
    expect(plan?.columns).toEqual([
      { name: 'id', source: { kind: 'column', schema: 'public', table: 'customers', column: 'id', masked: undefined, encrypted: false } },
      { name: 'ssn', source: { kind: 'column', schema: 'public', table: 'customers', column: 'ssn', masked: 'analysts-ssn-last4', encrypted: false } },
      { name: 'e', source: { kind: 'computed' } },
      { name: 'amount', source: { kind: 'column', schema: 'public', table: 'orders', column: 'amount', masked: undefined, encrypted: false } },
      { name: 's', source: { kind: 'column', schema: 'public', table: 'customers', column: 'email', masked: 'analysts-email-domain', encrypted: false } },
    ]);
    expect(plan?.tables).toEqual([
      { schema: 'public', table: 'customers', protected: true },
      { schema: 'public', table: 'orders', protected: false },
    ]);
    expect(plan?.command).toBe('SELECT');
    expect(plan?.action).toBe('select');
  });
});

describe('denied columns', () => {
  it.each([
    ['SELECT card_number FROM customers'],
    ['SELECT c.card_number FROM customers c'],
    ['SELECT public.customers.card_number FROM customers'],
    ['SELECT * FROM customers'],
    ['SELECT c.* FROM customers c'],
    ['TABLE customers'],
    ['SELECT c FROM customers c'],
    ['SELECT customers FROM customers'],
    ['SELECT row_to_json(c) FROM customers c'],
    ['SELECT to_jsonb(c.*) FROM customers c'],
    ['SELECT c::text FROM customers c'],
    ['SELECT ROW(c.*) FROM customers c'],
    ['SELECT count(card_number) FROM customers'],
    ['SELECT id FROM customers WHERE card_number LIKE $1'],
    ['SELECT id FROM customers ORDER BY card_number'],
    ['SELECT full_name AS card_number FROM customers GROUP BY card_number'],
    ['SELECT id FROM customers c JOIN orders o ON c.card_number = o.status'],
    ['SELECT (SELECT card_number) FROM customers'],
    ['SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.card_number = o.status)'],
    ['SELECT x FROM (SELECT card_number AS x FROM customers) s'],
    ['WITH t AS (SELECT card_number FROM customers) SELECT 1'],
    ['SELECT * FROM customers JOIN orders USING (id)'],
    ['SELECT j.card_number FROM (customers c JOIN orders o ON true) AS j'],
    ['SELECT 1 FROM customers JOIN payments USING (card_number)'],
    ['SELECT id FROM customers NATURAL JOIN payments'],
    ['SELECT card_number FROM customers c, generate_series(1, 2) g'],
    ['SELECT u FROM customers c, LATERAL unnest(ARRAY[c.card_number]) u'],
    ['SELECT rank() OVER (PARTITION BY card_number) FROM customers'],
    ['SELECT count(*) FILTER (WHERE card_number IS NULL) FROM customers'],
    ['SELECT id FROM customers WINDOW w AS (ORDER BY card_number)'],
    ['SELECT (c).card_number FROM customers c'],
    ['VALUES ((SELECT max(card_number) FROM customers))'],
    ['SELECT card_number FROM payments_eu'],
    ['SELECT * FROM payments'],
  ])('%s', (sql) => {
    const d = denied(w.plan(sql));
    expect(d.message).toBe('card numbers are not readable through pgward');
    expect(d.rule).toBe('no-card-numbers');
  });

  it('lets a name that only looks like a denied column through (output aliases, other tables, CTEs)', () => {
    expect(w.plan('SELECT full_name AS card_number FROM customers ORDER BY card_number').kind).toBe('rewrite');
    expect(w.plan('WITH customers AS (SELECT 1 AS id, text \'x\' AS card_number) SELECT card_number, id FROM customers').kind).toBe('forward');
    expect(w.plan('SELECT c.full_name FROM customers c JOIN (SELECT 1 AS card_number) x ON true WHERE x.card_number = 1').kind).toBe('rewrite');
  });

  it('refuses system columns of protected tables, not of others', () => {
    denied(w.plan('SELECT ctid FROM customers'));
    denied(w.plan('SELECT c.xmin FROM customers c'));
    denied(w.plan('SELECT tableoid FROM payments'));
    expect(w.plan('SELECT o.ctid, xmin FROM orders o').kind).toBe('rewrite');
  });
});

describe('scopes', () => {
  it('a CTE shadows a table of the same name inside its WITH, not outside', () => {
    const sql = rewritten(w.plan('WITH orders AS (SELECT id, ssn FROM customers) SELECT o.ssn, (SELECT count(*) FROM public.orders) FROM orders o'));
    expect(outline(sql)).toBe('WITH orders AS (SELECT id, ssn FROM <public.customers> AS customers) SELECT o.ssn, (SELECT count(*) FROM public.orders) FROM orders AS o');
    const inner = rewritten(w.plan('SELECT (WITH customers AS (SELECT 1 AS x) SELECT x FROM customers), ssn FROM customers'));
    expect(outline(inner)).toBe('SELECT (WITH customers AS (SELECT 1 AS x) SELECT x FROM customers), ssn FROM <public.customers> AS customers');
  });

  it('a non-recursive CTE body does not see its own name; a recursive one does', () => {
    const plain = rewritten(w.plan('WITH customers AS (SELECT id, ssn FROM customers) SELECT * FROM customers'));
    expect(outline(plain)).toBe('WITH customers AS (SELECT id, ssn FROM <public.customers> AS customers) SELECT * FROM customers');
    const recursive = w.plan('WITH RECURSIVE customers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM customers WHERE n < 3) SELECT n FROM customers');
    expect(recursive.kind).toBe('forward');
    expect(plans(recursive)[0]?.columns.map((c) => c.name)).toEqual(['n']);
  });

  it('handles CTE and LATERAL nesting', () => {
    const sql = rewritten(
      w.plan(`WITH a AS (WITH b AS (SELECT id, email FROM customers) SELECT * FROM b)
              SELECT a.id, z.e FROM a, LATERAL (SELECT a.email || '!' AS e, (SELECT ssn FROM customers c2 WHERE c2.id = a.id) AS s) z`),
    );
    expect(protectedRefs(sql).map((r) => r.alias).sort()).toEqual(['c2', 'customers']);
    denied(w.plan('WITH a AS (SELECT id FROM customers) SELECT * FROM a, LATERAL (SELECT card_number FROM customers c WHERE c.id = a.id) z'));
  });

  it('a subquery alias is not a table', () => {
    const sql = rewritten(w.plan('SELECT customers.ssn FROM (SELECT id, ssn FROM orders o JOIN customers c ON c.id = o.customer_id) AS customers'));
    expect(protectedRefs(sql).map((r) => r.alias)).toEqual(['c']);
  });

  it('protects every reference in set operations, EXISTS, IN, ANY, scalar subqueries', () => {
    const sql = rewritten(
      w.plan(`SELECT ssn FROM customers UNION SELECT status FROM orders
              INTERSECT SELECT email FROM customers c WHERE EXISTS (SELECT 1 FROM customers d WHERE d.id = c.id)
              EXCEPT SELECT (SELECT max(ssn) FROM customers e) WHERE 1 = ANY (SELECT id FROM customers f) AND 2 IN (SELECT id FROM customers g)`),
    );
    expect(protectedRefs(sql).map((r) => r.alias)).toEqual(['customers', 'c', 'd', 'e', 'f', 'g']);
  });

  it('partitions and inheritance children get their ancestors policies', () => {
    const eu = rewritten(w.plan('SELECT id, amount FROM payments_eu'));
    const [ref] = protectedRefs(eu);
    expect(ref).toMatchObject({ table: 'payments_eu', columns: ['id', 'customer_id', 'region', 'amount'] });
    // The parent's filter, written with the parent's name, applies to the partition's own rows.
    expect(ref?.where).toBe("payments_eu.region = CAST('eu' AS pg_catalog.text)");
    const parent = rewritten(w.plan('SELECT id FROM payments'));
    expect(protectedRefs(parent)[0]?.where).toBe("payments.region = CAST('eu' AS pg_catalog.text)");
    const child = rewritten(w.plan('SELECT ssn, note FROM legacy_child'));
    expect(protectedRefs(child)[0]?.exprs['ssn']).toContain('regexp_replace(legacy_child.ssn');
  });

  it('views are refused unless a rule names them; then they are read like tables', () => {
    expect(rewritten(w.plan('SELECT region FROM customer_summary'))).toBe('SELECT region FROM public.customer_summary');
    const d = denied(w.plan('SELECT ssn FROM secret_view'));
    expect(d.message).toBe('view public.secret_view is not available to restricted identities unless a policy rule names it');
    // A wildcard rule does not name it.
    denied(w.plan('SELECT ssn FROM secret_view', builder));
  });

  it('system catalogs stay readable, except those that leak values or statements', () => {
    const sql = rewritten(w.plan('SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'));
    expect(sql).toBe('SELECT c.relname, n.nspname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace');
    expect(w.plan('SELECT column_name FROM information_schema.columns', stranger).kind).toBe('forward');
    for (const sql of [
      'SELECT * FROM pg_stats',
      'SELECT query FROM pg_stat_activity',
      'SELECT 1 FROM pg_catalog.pg_statistic',
      'SELECT loid FROM pg_largeobject',
      'SELECT statement FROM pg_prepared_statements',
      'SELECT statement FROM pg_cursors',
    ]) {
      expect(denied(w.plan(sql)).message).toMatch(/reveals data values or other sessions/);
    }
  });

  it('refuses tables no rule allows, with PostgreSQL wording for unknown ones', () => {
    expect(denied(w.plan('SELECT * FROM audit_log')).message).toBe('permission denied for table public.audit_log');
    expect(denied(w.plan('SELECT * FROM other.customers')).message).toBe('permission denied for table other.customers');
    expect(denied(w.plan('SELECT * FROM nope'), '42P01').message).toBe('relation "nope" does not exist');
    expect(denied(w.plan('SELECT * FROM other.nope'), '42P01').message).toBe('relation "other.nope" does not exist');
    expect(denied(w.plan('SELECT * FROM pg_temp.customers'), '42P01').message).toBe('relation "pg_temp.customers" does not exist');
  });

  it('resolves unqualified names on the pinned search_path', () => {
    expect(denied(w.plan('SELECT id FROM customers', analyst, { searchPath: ['other', 'public'] })).message).toBe('permission denied for table other.customers');
    denied(w.plan('SELECT id FROM customers', analyst, { searchPath: [] }), '42P01');
  });
});

describe('adversarial shapes only ever see masked, filtered values', () => {
  it.each([
    ["SELECT id FROM customers WHERE ssn LIKE '9%'", "SELECT id FROM <public.customers> AS customers WHERE ssn LIKE '9%'"],
    ['SELECT 1 FROM customers WHERE 1 / (CASE WHEN salary > 100000 THEN 0 ELSE 1 END) = 1', 'SELECT 1 FROM <public.customers> AS customers WHERE (1 / (CASE WHEN salary > 100000 THEN 0 ELSE 1 END)) = 1'],
    ['SELECT a.id FROM customers a JOIN customers b ON a.ssn = b.ssn', 'SELECT a.id FROM <public.customers> AS a JOIN <public.customers> AS b ON a.ssn = b.ssn'],
    ['SELECT email, count(*) FROM customers GROUP BY email HAVING count(*) > 1 ORDER BY email', 'SELECT email, count(*) FROM <public.customers> AS customers GROUP BY email HAVING count(*) > 1 ORDER BY email'],
    ['SELECT ssn, rank() OVER (ORDER BY salary DESC) FROM customers', 'SELECT ssn, rank() OVER (ORDER BY salary DESC) FROM <public.customers> AS customers'],
    ['SELECT DISTINCT ON (region) region, ssn FROM customers ORDER BY region, salary', 'SELECT DISTINCT ON (region) region, ssn FROM <public.customers> AS customers ORDER BY region, salary'],
    ['SELECT row_to_json(l), l::text, to_jsonb(l) FROM legacy l', 'SELECT row_to_json(l), l::text, to_jsonb(l) FROM <public.legacy> AS l'],
    ["SELECT count(*) FILTER (WHERE ssn LIKE '9%') FROM customers", "SELECT count(*) FILTER (WHERE ssn LIKE '9%') FROM <public.customers> AS customers"],
  ])('%s', (sql, expected) => {
    expect(outline(rewritten(w.plan(sql)))).toBe(expected);
  });
});

describe('functions and operators', () => {
  it('allows built-in functions, refuses user-defined ones without the function action', () => {
    expect(w.plan('SELECT count(*), max(id), pg_catalog.lower(full_name) FROM customers').kind).toBe('rewrite');
    const d = denied(w.plan('SELECT my_func(1)'));
    expect(d.message).toMatch(/public.my_func is not a built-in function/);
    // A name pg_catalog shares with another schema on the path may resolve there.
    denied(w.plan('SELECT lower(full_name) FROM customers'));
    expect(w.plan('SELECT my_func(1)', builder).kind).toBe('forward');
    denied(w.plan('SELECT nope(1)'), '42883');
  });

  it.each([
    "SELECT query_to_xml('select * from customers', true, true, '')",
    "SELECT table_to_xml('customers', true, true, '')",
    'SELECT cursor_to_xml(\'c\', 1, true, true, \'\')',
    "SELECT set_config('search_path', 'other', false)",
    "SELECT pg_catalog.set_config('search_path', 'other', true)",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    'SELECT lo_get(1)',
    "SELECT * FROM ts_stat('select 1')",
    'SELECT * FROM pg_stat_get_activity(NULL)',
    "SELECT dblink('x', 'select 1')",
    'SELECT current_query()',
    "SELECT * FROM crosstab('select 1')",
  ])('refuses %s whatever the policies say', (sql) => {
    expect(denied(w.plan(sql, builder)).message).toMatch(/not available to restricted identities/);
  });

  it('refuses casts to domains with CHECK constraints without the function action', () => {
    denied(w.plan("SELECT '12345'::us_postal_code"));
    denied(w.plan("SELECT CAST('1' AS public.us_postal_code[])"));
    expect(w.plan("SELECT '12345'::us_postal_code", builder).kind).toBe('forward');
    expect(w.plan("SELECT '12345'::pg_catalog.text, '1'::int").kind).toBe('forward');
  });

  it('refuses user-defined operators without the function action', () => {
    denied(w.plan('SELECT 1 #@# 2'));
    denied(w.plan("SELECT '{}'::jsonb -> 'a'"));
    expect(w.plan("SELECT '{}'::jsonb OPERATOR(pg_catalog.->) 'a'").kind).toBe('forward');
    expect(w.plan('SELECT 1 #@# 2', builder).kind).toBe('forward');
    denied(w.plan('SELECT 1 <=> 2'), '42883');
  });
});

describe('statements', () => {
  it('EXPLAIN rewrites the inner statement; ANALYZE in any syntax is refused', () => {
    const d = w.plan('EXPLAIN SELECT ssn FROM legacy');
    expect(outline(rewritten(d))).toBe('EXPLAIN SELECT ssn FROM <public.legacy> AS legacy');
    expect(plans(d)[0]).toMatchObject({ command: 'EXPLAIN', action: 'select', columns: [{ name: 'QUERY PLAN', source: { kind: 'computed' } }] });
    for (const sql of ['EXPLAIN ANALYZE SELECT 1', 'EXPLAIN (ANALYZE) SELECT 1', 'EXPLAIN (analyze true, buffers) SELECT 1', 'EXPLAIN (ANALYZE off) SELECT 1', 'EXPLAIN ANALYSE SELECT 1']) {
      expect(denied(w.plan(sql)).message).toMatch(/EXPLAIN ANALYZE/);
    }
    denied(w.plan('EXPLAIN SELECT card_number FROM customers'));
  });

  it('EXPLAIN of a row-filtered table is refused with any options: plans follow statistics over hidden rows', () => {
    for (const sql of [
      'EXPLAIN SELECT id FROM customers',
      'EXPLAIN VERBOSE SELECT id FROM customers',
      'EXPLAIN (COSTS OFF) SELECT id FROM customers',
      'EXPLAIN (COSTS false, FORMAT JSON) SELECT id FROM payments_eu',
      'EXPLAIN (COSTS false) SELECT id FROM payments',
      'EXPLAIN (COSTS off) SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id',
      'EXPLAIN (COSTS OFF) SELECT 1 WHERE EXISTS (SELECT 1 FROM customers)',
      'EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM customers',
    ]) {
      expect(denied(w.plan(sql)).message, sql).toMatch(/^EXPLAIN of a statement that reads public\.(customers|payments|payments_eu) is not allowed/);
    }
    for (const sql of ['EXPLAIN EXECUTE p', 'EXPLAIN (COSTS 0) EXECUTE p']) {
      expect(denied(w.plan(sql)).message, sql).toMatch(/^EXPLAIN EXECUTE is not allowed for identities with row filters/);
    }
    for (const sql of ['EXPLAIN (COSTS false) SELECT ssn FROM legacy', 'EXPLAIN SELECT id FROM orders', 'EXPLAIN SELECT 1']) {
      expect(w.plan(sql).kind, sql).not.toBe('deny');
    }
  });

  it('DECLARE and PREPARE rewrite their query; FETCH, MOVE, CLOSE, EXECUTE, DEALLOCATE are forwarded', () => {
    const declare = w.plan('DECLARE c1 CURSOR WITH HOLD FOR SELECT ssn FROM customers');
    expect(outline(rewritten(declare))).toBe('DECLARE c1 CURSOR WITH HOLD FOR SELECT ssn FROM <public.customers> AS customers');
    expect(plans(declare)[0]).toMatchObject({
      command: 'DECLARE CURSOR',
      columns: [],
      deferred: { kind: 'cursor', name: 'c1', columns: [{ name: 'ssn', source: { kind: 'column', masked: 'analysts-ssn-last4' } }] },
    });
    const prepare = w.plan('PREPARE p1(int) AS SELECT email FROM customers WHERE id = $1');
    expect(outline(rewritten(prepare))).toBe('PREPARE p1 (int) AS SELECT email FROM <public.customers> AS customers WHERE id = $1');
    expect(plans(prepare)[0]?.deferred).toMatchObject({ kind: 'prepared', name: 'p1' });
    for (const [sql, command] of [
      ['FETCH 10 FROM c1', 'FETCH'],
      ['MOVE NEXT IN c1', 'MOVE'],
      ['CLOSE c1', 'CLOSE CURSOR'],
      ['EXECUTE p1(1)', 'EXECUTE'],
      ['DEALLOCATE p1', 'DEALLOCATE'],
    ] as const) {
      const d = w.plan(sql);
      expect(d).toMatchObject({ kind: 'forward', statements: [{ command, action: 'misc' }] });
    }
    expect(outline(rewritten(w.plan('EXECUTE p1((SELECT max(id) FROM customers))')))).toBe('EXECUTE p1 ((SELECT max(id) FROM <public.customers> AS customers))');
    denied(w.plan('DECLARE c2 CURSOR FOR SELECT * FROM customers'));
  });

  it('names the prepared statement EXECUTE runs and the cursor FETCH and MOVE read (checked after a policy change)', () => {
    expect(plans(w.plan('EXECUTE p1(1)'))[0]).toMatchObject({ executes: 'p1' });
    expect(plans(w.plan('EXPLAIN EXECUTE "Mixed Case"', builder))[0]).toMatchObject({ command: 'EXPLAIN', executes: 'Mixed Case' });
    expect(plans(w.plan('FETCH ALL FROM c1'))[0]).toMatchObject({ fetches: 'c1' });
    expect(plans(w.plan('MOVE 0 IN "C 2"'))[0]).toMatchObject({ command: 'MOVE', fetches: 'C 2' });
    expect(plans(w.plan('SELECT 1'))[0]).not.toHaveProperty('executes');
  });

  it('COPY (query) TO STDOUT is rewritten; COPY table TO STDOUT becomes a query over the protected table', () => {
    expect(outline(rewritten(w.plan('COPY (SELECT ssn FROM customers) TO STDOUT WITH (FORMAT csv)')))).toBe(
      'COPY (SELECT ssn FROM <public.customers> AS customers) TO STDOUT WITH (FORMAT csv)',
    );
    const table = w.plan('COPY customers (id, ssn) TO STDOUT csv header');
    expect(outline(rewritten(table))).toBe('COPY (SELECT id, ssn FROM <public.customers ONLY> AS customers) TO STDOUT WITH (FORMAT csv, HEADER)');
    expect(plans(table)[0]).toMatchObject({ command: 'COPY', action: 'copy_to', columns: [{ name: 'id' }, { name: 'ssn', source: { masked: 'analysts-ssn-last4' } }] });
    expect(rewritten(w.plan('COPY legacy TO STDOUT', builder))).toBe('COPY public.legacy TO STDOUT');
    denied(w.plan('COPY customers TO STDOUT'));
    denied(w.plan('COPY customers (id, card_number) TO STDOUT'));
    expect(denied(w.plan('COPY orders TO STDOUT')).rule).toBe('analysts-no-copy-orders');
    expect(denied(w.plan('COPY (SELECT id FROM orders) TO STDOUT')).rule).toBe('analysts-no-copy-orders');
    denied(w.plan('COPY payments TO STDOUT'), '42809');
    denied(w.plan('COPY customers (nope) TO STDOUT'), '42703');
  });

  it('COPY to or from files and programs is refused; COPY FROM STDIN only into a table with nothing to enforce', () => {
    for (const sql of ["COPY customers TO '/tmp/x'", "COPY (SELECT 1) TO PROGRAM 'cat'", "COPY orders FROM '/etc/passwd'"]) {
      expect(denied(w.plan(sql, builder)).message).toMatch(/server file or program/);
    }
    expect(w.plan('COPY orders FROM STDIN', loader)).toMatchObject({ kind: 'rewrite', sql: 'COPY public.orders FROM STDIN' });
    expect(w.plan('COPY public.orders (id, amount) FROM STDIN WITH (FORMAT csv) WHERE amount > 0', loader).kind).toBe('forward');
    expect(denied(w.plan('COPY customers FROM STDIN', loader), '0A000').message).toMatch(/not supported yet for restricted identities/);
    denied(w.plan('COPY orders FROM STDIN'));
  });

  it('writes go through only when nothing applies to the target; their reads are rewritten', () => {
    expect(rewritten(w.plan('INSERT INTO orders (id, amount) VALUES ($1, $2)', loader))).toBe('INSERT INTO public.orders (id, amount) VALUES ($1, $2)');
    const insertSelect = rewritten(w.plan('INSERT INTO orders (id, customer_id) SELECT id, id FROM customers', loader));
    expect(protectedRefs(insertSelect).map((r) => r.table)).toEqual(['customers']);
    expect(rewritten(w.plan('UPDATE orders SET amount = 0 WHERE id = 1 RETURNING id, amount', loader))).toBe(
      'UPDATE public.orders SET amount = 0 WHERE id = 1 RETURNING id, amount',
    );
    expect(w.plan('DELETE FROM public.orders WHERE id = 1', loader).kind).toBe('forward');
    const using = rewritten(w.plan('DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.ssn LIKE $1', loader));
    expect(protectedRefs(using).map((r) => r.alias)).toEqual(['c']);
    const cte = w.plan('WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d', loader);
    expect(plans(cte)[0]?.columns.map((c) => c.name)).toEqual(['id', 'customer_id', 'amount', 'status', 'ordered_at']);
    expect(denied(w.plan('INSERT INTO customers (id) VALUES (1)', loader), '0A000').message).toMatch(/card_number is denied/);
    denied(w.plan('UPDATE customers SET full_name = full_name', loader));
    denied(w.plan('INSERT INTO orders (id) VALUES (1)'));
    denied(w.plan("MERGE INTO orders o USING customers c ON c.id = o.customer_id WHEN MATCHED THEN UPDATE SET amount = 0"));
    expect(
      protectedRefs(rewritten(w.plan('MERGE INTO orders o USING customers c ON c.id = o.customer_id WHEN MATCHED THEN DELETE', loader))).map((r) => r.alias),
    ).toEqual(['c']);
    denied(w.plan('WITH x AS (UPDATE orders SET amount = 0 RETURNING id) SELECT * FROM x'));
  });

  it('TRUNCATE needs the truncate action on the table and everything it reaches', () => {
    expect(w.plan('TRUNCATE orders', loader)).toMatchObject({ kind: 'forward', statements: [{ command: 'TRUNCATE TABLE', action: 'truncate' }] });
    denied(w.plan('TRUNCATE orders'));
    denied(w.plan('TRUNCATE customers', loader));
    denied(w.plan('TRUNCATE nope', loader), '42P01');
  });

  it('SET: search_path, role and session authorization are pinned; other settings pass', () => {
    for (const sql of ['SET search_path = other', 'SET LOCAL search_path TO other', 'SET SCHEMA \'other\'', 'SET "SEARCH_PATH" = other', 'RESET search_path', 'SET search_path FROM CURRENT']) {
      expect(denied(w.plan(sql)).message).toBe('search_path is pinned by pgward for restricted identities');
    }
    expect(denied(w.plan('RESET ALL')).message).toMatch(/RESET ALL/);
    expect(denied(w.plan('SET ROLE postgres')).message).toMatch(/SET ROLE/);
    expect(denied(w.plan('RESET ROLE')).message).toMatch(/ROLE/);
    expect(denied(w.plan('SET SESSION AUTHORIZATION postgres')).message).toMatch(/SESSION AUTHORIZATION/);
    expect(w.plan("SET statement_timeout = '5s'")).toMatchObject({ kind: 'forward', statements: [{ command: 'SET', action: 'misc' }] });
    expect(w.plan('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE').kind).toBe('forward');
    expect(w.plan('RESET statement_timeout')).toMatchObject({ kind: 'forward', statements: [{ command: 'RESET' }] });
  });

  it('SET: settings that change how the server reads SQL text keep the values pgward parses with', () => {
    for (const sql of ["SET client_encoding = 'SJIS'", "SET NAMES 'GBK'", 'SET standard_conforming_strings = off', 'SET standard_conforming_strings = 0', "SET LOCAL standard_conforming_strings TO 'false'"]) {
      expect(denied(w.plan(sql)).message).toMatch(/pinned by pgward/);
    }
    for (const sql of ["SET client_encoding = 'UTF8'", "SET NAMES 'utf-8'", "SET client_encoding TO 'Unicode'", 'SET standard_conforming_strings = on', 'SET standard_conforming_strings = 1', 'RESET client_encoding', 'SET client_encoding TO DEFAULT']) {
      expect(w.plan(sql).kind, sql).toBe('forward');
    }
  });

  it('SET: client_min_messages stays at notice or above, where the server cannot echo the rewritten statements', () => {
    for (const sql of ['SET client_min_messages = debug5', 'SET client_min_messages TO log', "SET LOCAL client_min_messages = 'DEBUG1'", 'SET client_min_messages = debug']) {
      expect(denied(w.plan(sql)).message, sql).toMatch(/client_min_messages/);
    }
    for (const sql of ['SET client_min_messages = notice', "SET client_min_messages TO 'WARNING'", 'SET client_min_messages = error', 'RESET client_min_messages']) {
      expect(w.plan(sql).kind, sql).toBe('forward');
    }
  });

  it('forwards transaction control, SHOW, DISCARD, UNLISTEN without policy checks', () => {
    const d = w.plan('BEGIN; SAVEPOINT a; RELEASE a; SHOW search_path; DISCARD ALL; UNLISTEN *; COMMIT', stranger);
    expect(plans(d).map((p) => p.command)).toEqual(['BEGIN', 'SAVEPOINT', 'RELEASE', 'SHOW', 'DISCARD', 'UNLISTEN', 'COMMIT']);
    expect(d.kind).toBe('forward');
    expect(plans(d)[3]?.columns).toEqual([{ name: 'search_path', source: { kind: 'computed' } }]);
  });

  it('NOTIFY and built-ins that change state outside the statement need the misc action', () => {
    for (const sql of [
      `NOTIFY x, 'y'`,
      `SELECT pg_notify('x', 'y')`,
      `SELECT nextval('orders_id_seq')`,
      `SELECT pg_catalog.setval('orders_id_seq', 1)`,
      `SELECT pg_advisory_lock(1)`,
      `SELECT 1 WHERE pg_try_advisory_xact_lock(1, 2)`,
      `SELECT pg_advisory_unlock_all()`,
      `SELECT pg_stat_reset()`,
      `SELECT pg_reload_conf()`,
      `SELECT pg_create_logical_replication_slot('s', 'pgoutput')`,
      `SELECT id FROM orders WHERE id = nextval('orders_id_seq')`,
    ]) {
      expect(denied(w.plan(sql), '42501').message, sql).toMatch(/NOTIFY|misc action/);
      expect(w.plan(sql, builder).kind, sql).not.toBe('deny');
    }
    for (const sql of [`SELECT currval('orders_id_seq')`, `SELECT pg_sleep(0)`, `SELECT pg_backend_pid()`]) {
      expect(w.plan(sql).kind, sql).not.toBe('deny');
    }
  });

  it('LISTEN needs the misc action: notification payloads come from other sessions, unmasked', () => {
    expect(denied(w.plan('LISTEN x', stranger)).message).toMatch(/LISTEN is not allowed/);
    expect(denied(w.plan('LISTEN x')).message).toMatch(/misc action/);
    expect(w.plan('LISTEN x', builder)).toMatchObject({ kind: 'forward', statements: [{ command: 'LISTEN', action: 'misc' }] });
  });

  it('DDL, maintenance and code execution follow the ddl / misc actions, or are refused', () => {
    expect(denied(w.plan('CREATE TABLE t (a int)')).message).toBe('CREATE TABLE: permission denied: ddl statements are not allowed');
    expect(w.plan('CREATE TABLE t (a int)', builder)).toMatchObject({ kind: 'forward', statements: [{ command: 'CREATE TABLE', action: 'ddl' }] });
    expect(plans(w.plan('GRANT SELECT ON orders TO public; REVOKE SELECT ON orders FROM public; CREATE INDEX i ON orders (id)', builder)).map((p) => p.command)).toEqual([
      'GRANT',
      'REVOKE',
      'CREATE INDEX',
    ]);
    denied(w.plan('DROP TABLE orders'));
    denied(w.plan("COMMENT ON TABLE orders IS 'x'"));
    denied(w.plan('GRANT SELECT ON orders TO public'));
    denied(w.plan('CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'));
    expect(w.plan('ALTER TABLE orders ADD COLUMN x int', builder).kind).toBe('forward');
    denied(w.plan('VACUUM orders'));
    expect(w.plan('VACUUM orders', builder)).toMatchObject({ kind: 'forward', statements: [{ command: 'VACUUM', action: 'misc' }] });
    denied(w.plan('LOCK TABLE orders'));
    denied(w.plan('CHECKPOINT'));
    for (const sql of ['DO $$ BEGIN END $$', 'CALL p()', "LOAD 'x'"]) {
      expect(denied(w.plan(sql, builder)).message).toMatch(/not allowed for restricted identities/);
    }
  });

  it('SELECT INTO / CREATE TABLE AS / CREATE MATERIALIZED VIEW need ddl, and their query is rewritten', () => {
    denied(w.plan('SELECT id INTO t FROM orders'));
    denied(w.plan('CREATE TABLE t AS SELECT id FROM orders'));
    denied(w.plan('CREATE MATERIALIZED VIEW mv AS SELECT id FROM orders'));
    const ctas = w.plan('CREATE TABLE t AS SELECT id, ssn FROM customers', builder);
    expect(plans(ctas)[0]).toMatchObject({ command: 'CREATE TABLE AS', action: 'ddl' });
    expect(protectedRefs(rewritten(ctas))).toHaveLength(1);
    expect(plans(w.plan('SELECT id INTO t FROM orders', builder))[0]?.command).toBe('SELECT INTO');
    expect(plans(w.plan('CREATE MATERIALIZED VIEW mv AS SELECT 1', builder))[0]?.command).toBe('CREATE MATERIALIZED VIEW');
  });

  it('refuses syntax errors with the parser message (42601); an empty query is forwarded', () => {
    expect(denied(w.plan('SELEC 1'), '42601').message).toBe('syntax error at or near "SELEC"');
    expect(w.plan('')).toEqual({ kind: 'forward', statements: [] });
    expect(w.plan('  ;  ')).toEqual({ kind: 'forward', statements: [] });
    expect(w.plan('-- nothing')).toEqual({ kind: 'forward', statements: [] });
  });

  it('refuses a statement nested too deeply for the checker (54001) instead of throwing', () => {
    for (const sql of [`SELECT id FROM customers WHERE id = ${'abs('.repeat(1000)}1${')'.repeat(1000)}`, `SELECT id FROM customers WHERE ${'NOT '.repeat(1000)}true`]) {
      expect(denied(w.plan(sql), '54001').message).toMatch(/too deeply nested/);
    }
  });
});

describe('whole messages', () => {
  it('one denied statement refuses the whole Query, naming its index', () => {
    const d = denied(w.plan('SELECT 1; SELECT card_number FROM customers; SELECT 2'));
    expect(d.statementIndex).toBe(1);
  });

  it('keeps unchanged statements as written and joins with ;', () => {
    const d = w.plan('SELECT 1 -- one\n; SELECT id FROM orders; /* c */ SELECT 3');
    expect(rewritten(d)).toBe('SELECT 1 -- one\n;\nSELECT id FROM public.orders;\nSELECT 3');
    expect(plans(d)).toHaveLength(3);
  });

  it('handles multi-byte text before a rewritten statement', () => {
    const d = w.plan("SELECT 'Jürgen 🙂'; SELECT id FROM orders; SELECT 'é'");
    expect(rewritten(d)).toBe("SELECT 'Jürgen 🙂';\nSELECT id FROM public.orders;\nSELECT 'é'");
  });

  it('a Parse message holds at most one statement', () => {
    expect(denied(w.plan('SELECT 1; SELECT 2', analyst, { protocol: 'extended' }), '42601').message).toBe('cannot insert multiple commands into a prepared statement');
    expect(w.plan('SELECT $1::int', analyst, { protocol: 'extended' }).kind).toBe('forward');
  });
});

describe('policy variants', () => {
  const HEADER = 'apiVersion: pgward.dev/v1';
  const variant = async (body: string): Promise<World> => world(`${DEMO_POLICIES}\n---\n${HEADER}\n${body}`);

  it('resolves row-filter subqueries in the policy own scope: a client CTE cannot stand in for the table it reads', async () => {
    const v = await world(
      DEMO_POLICIES.replace('rowFilter: "region = ${claims.region}"', 'rowFilter: "region IN (SELECT g.region FROM region_grants g WHERE g.user_name = ${user.name})"'),
    );
    const sql = rewritten(v.plan("WITH region_grants AS (SELECT 'ann' AS user_name, 'us' AS region) SELECT id FROM customers"));
    expect(protectedRefs(sql)[0]?.where).toBe("region IN (SELECT g.region FROM public.region_grants AS g WHERE g.user_name = CAST('ann' AS pg_catalog.text))");
  });

  it('refuses a table whose row filter names a column it does not have', async () => {
    const v = await world(DEMO_POLICIES.replace('rowFilter: "region = ${claims.region}"', 'rowFilter: "territory = ${claims.region}"'));
    expect(denied(v.plan('SELECT id FROM customers')).message).toMatch(/policies for public.customers cannot be applied: column "territory" does not exist/);
  });

  it('refuses a table with a mask that does not fit its column type', async () => {
    const v = await variant(`kind: PolicySet
metadata: { name: extra }
spec:
  defaultAction: deny
  subjects: { analysts: { anyOf: [ { group: analyst } ] } }
  masks:
    - name: salary-partial
      subjects: [analysts]
      resources: { columns: [public.orders.amount] }
      mask: { type: partial, showLast: 2 }
`);
    const d = denied(v.plan('SELECT id FROM orders'));
    expect(d.message).toMatch(/^policy mask salary-partial does not fit column public.orders.amount \(numeric\)/);
    expect(d.rule).toBe('salary-partial');
  });

  it('refuses EXPLAIN to identities with hash masks: plans would print the salt', async () => {
    const v = await variant(`kind: PolicySet
metadata: { name: extra }
spec:
  defaultAction: deny
  subjects: { analysts: { anyOf: [ { group: analyst } ] } }
  masks:
    - name: status-hash
      subjects: [analysts]
      resources: { columns: [public.orders.status] }
      mask: { type: hash, salt: s3cret }
`);
    const select = rewritten(v.plan('SELECT status FROM orders'));
    expect(protectedRefs(select)[0]?.exprs['status']).toContain("'s3cret'");
    expect(denied(v.plan('EXPLAIN SELECT id FROM customers')).message).toMatch(/hash masks/);
    expect(w.plan('EXPLAIN SELECT id FROM orders').kind).toBe('rewrite');
  });

  it('marks encrypted columns in provenance and passes them through unmasked', async () => {
    const v = await variant(`kind: KeyRing
metadata: { name: keys }
spec:
  keyEncryptionKeys: [ { id: kek, source: { env: PGWARD_TEST_KEK } } ]
  encryptedColumns:
    - { column: public.orders.status, mode: deterministic, plaintextType: text, storage: text, kek: kek }
  dataKeys: keys.json
`);
    const d = v.plan('SELECT id, status FROM orders');
    const sql = rewritten(d);
    expect(protectedRefs(sql)[0]?.exprs['status']).toBe('orders.status');
    expect(plans(d)[0]?.columns[1]).toEqual({ name: 'status', source: { kind: 'column', schema: 'public', table: 'orders', column: 'status', masked: undefined, encrypted: true } });
  });

  it('a child with rules of its own keeps its parent masks and filters too', async () => {
    const v = await variant(`kind: PolicySet
metadata: { name: extra }
spec:
  defaultAction: deny
  subjects: { analysts: { anyOf: [ { group: analyst } ] } }
  rules:
    - name: eu-partition
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: [public.payments_eu] }
      rowFilter: "amount < 1000"
  masks:
    - name: amounts-rounded
      subjects: [analysts]
      resources: { columns: [public.payments.amount] }
      mask: { type: "null" }
`);
    const [ref] = protectedRefs(rewritten(v.plan('SELECT id, amount FROM payments_eu')));
    expect(ref?.where).toBe("amount < 1000 AND payments_eu.region = CAST('eu' AS pg_catalog.text)");
    expect(ref?.exprs['amount']).toBe('CAST(NULL AS numeric)');
  });
});

describe('describeDecision', () => {
  it('prints the decision, the plan and the rewritten SQL', () => {
    const text = describeDecision(w.plan('SELECT id, ssn FROM customers'));
    expect(text).toMatch(/^rewrite\nstatement 1: SELECT \(action select\)\n {2}tables: public.customers \[protected\]\n/);
    expect(text).toContain('column ssn ← public.customers.ssn (masked by analysts-ssn-last4)');
    expect(text).toContain('rewritten SQL:\nSELECT id, ssn FROM ( SELECT');
    expect(describeDecision(w.plan('SELECT card_number FROM customers'))).toBe(
      'deny (SQLSTATE 42501) at statement 1: card numbers are not readable through pgward\n  rule: no-card-numbers',
    );
    expect(describeDecision(w.plan('BEGIN'))).toBe('forward unchanged\nstatement 1: BEGIN (action misc)');
  });
});

describe('cost', () => {
  it('prints the planning cost of a typical analyst query (informational, no assertion on time)', () => {
    const sql = 'SELECT c.full_name, c.email, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.region = $1 ORDER BY o.ordered_at DESC LIMIT 50';
    const input = (policy = createPolicyContext(w.bundle, analyst, w.version)) => ({ sql, protocol: 'extended' as const, policy, bundle: w.bundle, identity: analyst, catalog: w.catalog, searchPath: ['public'] });
    // Cold: a new policy context, so the masks and subquery of customers are built too.
    const coldStart = performance.now();
    const cold = 20;
    for (let i = 0; i < cold; i++) planRewrite(input());
    const coldEach = (performance.now() - coldStart) / cold;
    const warm = input();
    for (let i = 0; i < 50; i++) planRewrite(warm);
    const n = 500;
    const start = performance.now();
    for (let i = 0; i < n; i++) planRewrite(warm);
    const each = (performance.now() - start) / n;
    console.log(`planRewrite: ${each.toFixed(3)} ms per call with the context's relation work cached, ${coldEach.toFixed(3)} ms for a new context — ${sql}`);
    expect(planRewrite(warm).kind).toBe('rewrite');
  });
});
