import { parseSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { sameTree, stripPositions } from '../../../src/rewrite/deparse.js';
import { buildTemplate, fillTemplate, literalShape, literalText } from '../../../src/rewrite/literal-template.js';
import { loadSqlParser } from '../../../src/rewrite/placeholders.js';
import { PlanCache, type PlanScope } from '../../../src/rewrite/plan-cache.js';
import type { RewriteDecision } from '../../../src/rewrite/plan.js';
import { analyst, world, type World } from './fixtures.js';

let w: World;

beforeAll(async () => {
  await loadSqlParser();
  w = await world();
});

const scope: PlanScope = { context: 'ctx', catalog: 'v1', searchPath: ['public'], protocol: 'simple' };

/** The rewritten text's parse tree, positions dropped. */
function tree(sql: string): unknown {
  return stripPositions(parseSync(sql).stmts);
}

function expectSameDecision(got: RewriteDecision, want: RewriteDecision, sql: string): void {
  expect(got.kind, sql).toBe(want.kind);
  if (got.kind === 'rewrite' && want.kind === 'rewrite') {
    expect(sameTree(tree(got.sql), tree(want.sql)), `${sql}\n  got:  ${got.sql}\n  want: ${want.sql}`).toBe(true);
  }
  if (got.kind !== 'deny' && want.kind !== 'deny') expect(got.statements).toEqual(want.statements);
}

describe('literal shapes', () => {
  const key = (sql: string) => literalShape(sql)?.key;

  it('statements that differ only in constants of one kind share a shape', () => {
    expect(key('SELECT ssn FROM customers WHERE id = 1')).toBe(key('select ssn  from customers where id=-42 -- comment'));
    expect(key(`SELECT 1 FROM customers WHERE email LIKE 'a%'`)).toBe(key(`SELECT 7 FROM customers WHERE email LIKE $$b'%$$`));
    expect(key(`SELECT 1 FROM t WHERE x = 1.5`)).toBe(key(`SELECT 1 FROM t WHERE x = -2e10`));
    expect(literalShape(`SELECT 'a', 2, 3.5 FROM t WHERE x = 'b'`)!.literals).toHaveLength(4);
  });

  it('a constant of another kind makes another shape: the rewriter types comparisons by kind', () => {
    const shapes = [
      `SELECT 1 FROM t WHERE x = 1`,
      `SELECT 1 FROM t WHERE x = '1'`,
      `SELECT 1 FROM t WHERE x = 1.0`,
      `SELECT 1 FROM t WHERE x = 99999999999`,
      `SELECT 1 FROM t WHERE x = true`,
      `SELECT 1 FROM t WHERE x = false`,
      `SELECT 1 FROM t WHERE x = NULL`,
      `SELECT 1 FROM t WHERE x = B'101'`,
      `SELECT 1 FROM t WHERE y = 1`,
    ].map(key);
    expect(new Set(shapes).size).toBe(shapes.length);
  });

  it('only plain SELECTs with a constant get a shape', () => {
    for (const sql of [
      `SET search_path = 'evil'`,
      `SELECT 1 INTO t2 FROM t`,
      `EXPLAIN SELECT 1 FROM t WHERE x = 1`,
      `COPY (SELECT 1) TO STDOUT`,
      `PREPARE p AS SELECT 1`,
      `SELECT x FROM t`,
      `SELECT x FROM t WHERE x = true`,
      `SELECT 1; SET search_path = 'evil'`,
      `SELECT 'unterminated`,
      ``,
    ]) {
      expect(literalShape(sql), sql).toBeUndefined();
    }
    expect(literalShape(`SELECT 1; SELECT 'a'`)).toBeDefined();
  });

  it('keeps type modifiers in the key: the deparser prints some of them by value', () => {
    expect(key(`SELECT CAST(ssn AS varchar(5)) FROM customers`)).toBeUndefined();
    expect(key(`SELECT CAST(ssn AS varchar(5)), 1 FROM customers`)).not.toBe(key(`SELECT CAST(ssn AS varchar(32767)), 1 FROM customers`));
    expect(literalShape(`SELECT CAST(x AS numeric(10, 2)) FROM t WHERE x > 1`)!.literals).toHaveLength(1);
  });

  it('leaves large statements to the cache by text: building a template costs two more rewrites', () => {
    const list = (n: number) => `SELECT id FROM customers WHERE id IN (${Array.from({ length: n }, (_, i) => i).join(', ')})`;
    expect(literalShape(list(100))).toBeDefined();
    expect(literalShape(list(300))).toBeUndefined();
    expect(literalShape(`SELECT '${'x'.repeat(20_000)}'`)).toBeUndefined();
  });
});

describe('literal text', () => {
  const text = (sql: string): string => literalText(literalShape(`SELECT ${sql}`)!.literals[0]!);

  it('quotes strings so that they read the same whatever standard_conforming_strings says', () => {
    expect(text(`'plain'`)).toBe(`'plain'`);
    expect(text(`'it''s'`)).toBe(`'it''s'`);
    expect(text(`E'back\\\\slash\\'quote'`)).toBe(`E'back\\\\slash''quote'`);
    expect(text(`$q$a'b\\c$q$`)).toBe(`E'a''b\\\\c'`);
    expect(text(`U&'\\00e9t\\00e9'`)).toBe(`'été'`);
    expect(text(`''`)).toBe(`''`);
  });

  it('gives numbers as they were written, negative ones in parentheses', () => {
    expect(text('0')).toBe('0');
    expect(text('-5')).toBe('(-5)');
    expect(text('12.50')).toBe('12.50');
    expect(text('-1e-5')).toBe('(-1e-5)');
    expect(text('99999999999')).toBe('99999999999');
    expect(text('0x1F')).toBe('31');
  });
});

describe('templates from the rewriter', () => {
  const direct = (sql: string): RewriteDecision => w.plan(sql, analyst);

  it('every statement of a shape gets what the rewriter gives it directly', () => {
    const cache = new PlanCache(100);
    const families = [
      (v: string) => `SELECT id, ssn, email FROM customers WHERE id = ${v}`,
      (v: string) => `SELECT ssn FROM customers WHERE ssn LIKE ${v} ORDER BY 1 LIMIT 3`,
      (v: string) => `SELECT c.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.amount > ${v} AND c.region = 'eu'`,
      (v: string) => `SELECT id FROM orders WHERE status = ${v}`,
      (v: string) => `SELECT (SELECT count(*) FROM customers WHERE salary > ${v}), ${v}`,
      (v: string) => `SELECT CAST(ssn AS varchar(${/^\d+$/.test(v) ? v : 5})), ${v} FROM customers`,
    ];
    const values = ['1', '42', '32767', '-7', '0', `'x'`, `'it''s'`, `E'a\\\\b'`, `'--'`, `'; DROP TABLE customers; --'`, `'é'`, '1.5', '-2.25', '99999999999', '1e3'];
    for (const family of families) {
      for (const v of values) {
        const sql = family(v);
        expectSameDecision(cache.lookup(scope, sql, direct), direct(sql), sql);
      }
    }
    expect(cache.templateHits).toBeGreaterThan(families.length * values.length / 2);
  });

  it('a point lookup keeps its pushed-down form, with the constant wherever the rewriter put it', () => {
    const cache = new PlanCache(10);
    cache.lookup(scope, 'SELECT ssn FROM customers WHERE id = 1', direct);
    const got = cache.lookup(scope, 'SELECT ssn FROM customers WHERE id = 31337', direct);
    expect(cache.templateHits).toBe(1);
    expect(got.kind).toBe('rewrite');
    const want = direct('SELECT ssn FROM customers WHERE id = 31337') as { sql: string };
    if (got.kind === 'rewrite') expect(got.sql.match(/31337/g)?.length).toBe(want.sql.match(/31337/g)?.length);
    expectSameDecision(got, direct('SELECT ssn FROM customers WHERE id = 31337'), 'point lookup');
  });

  it('refusals are never templated, and statements without templates are cached by text', () => {
    const cache = new PlanCache(10);
    for (const id of [1, 2, 3]) expect(cache.lookup(scope, `SELECT card_number FROM customers WHERE id = ${id}`, direct).kind).toBe('deny');
    expect(cache.templateHits).toBe(0);
    expect(cache.misses).toBe(3);
    cache.lookup(scope, 'SELECT id FROM customers', direct);
    cache.lookup(scope, 'SELECT id FROM customers', direct);
    expect(cache.hits).toBe(1);
  });

  it('forwarded statements template as forwards', () => {
    const cache = new PlanCache(10);
    expect(cache.lookup(scope, `SELECT 1 + 1`, direct).kind).toBe('forward');
    expect(cache.lookup(scope, `SELECT 5 + 9`, direct)).toEqual({ kind: 'forward', statements: (direct('SELECT 5 + 9') as { statements: unknown }).statements });
    expect(cache.templateHits).toBe(1);
  });

  it('gives no template when the decision depends on a value', () => {
    const shape = literalShape(`SELECT id FROM customers WHERE id = 1`)!;
    // A planner that reads a value: the two sentinel plans disagree.
    const valueDependent = (sql: string): RewriteDecision => (sql.includes('1100000000') ? direct('SELECT 1') : direct(sql));
    expect(buildTemplate(shape, 'SELECT id FROM customers WHERE id = 1', direct('SELECT id FROM customers WHERE id = 1'), valueDependent)).toBeUndefined();
    // A planner whose text between the slots depends on a value (as a colliding policy constant would).
    const textDependent = (sql: string): RewriteDecision => {
      const d = direct(sql);
      return d.kind === 'rewrite' && sql.includes('1500000000') ? { ...d, sql: d.sql.replace('OFFSET 0', 'OFFSET 1') } : d;
    };
    const sql = 'SELECT id FROM customers WHERE id > 1';
    expect(buildTemplate(literalShape(sql)!, sql, direct(sql), textDependent)).toBeUndefined();
    expect(buildTemplate(literalShape(sql)!, sql, direct(sql), direct)).toBeDefined();
  });

  it('a statement the deparser cannot print gets no template and its own decision', () => {
    const cache = new PlanCache(10);
    const sql = `SELECT * FROM JSON_TABLE('[1]'::jsonb, '$[*]' COLUMNS (x int PATH '$')) AS j WHERE x > 1`;
    expect(cache.lookup(scope, sql, direct)).toEqual(direct(sql));
    expect(cache.templateHits).toBe(0);
  });

  it('a template filled with its own statement gives exactly the direct rewrite', () => {
    const sql = `SELECT ssn, email FROM customers WHERE email LIKE '%@example.com' AND id > 10`;
    const template = buildTemplate(literalShape(sql)!, sql, direct(sql), direct)!;
    expect(template.slots).toEqual(expect.arrayContaining([0, 1]));
    expect(fillTemplate(template, literalShape(sql)!)).toEqual(direct(sql));
  });
});
