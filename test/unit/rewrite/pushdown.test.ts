import { loadModule, parseSync } from 'libpg-query';
import type { Node, SelectStmt } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { deparseStatement } from '../../../src/rewrite/deparse.js';
import { pushDownConditions, type PushdownTarget } from '../../../src/rewrite/pushdown.js';

const LEAKPROOF = new Set(['=|int4|int4', '>=|int4|int4', '<=|int4|int4', '=|text|text', '<|int4|int8']);
const leakproof = (op: string, l: string, r: string): boolean => LEAKPROOF.has(`${op}|${l}|${r}`);

function where(sql: string): Node | undefined {
  const stmt = parseSync(`SELECT 1 FROM t WHERE ${sql}`).stmts![0]!.stmt as { SelectStmt: SelectStmt };
  return stmt.SelectStmt.whereClause;
}

function target(): PushdownTarget {
  const inner = parseSync('SELECT id, ssn FROM public.customers AS customers WHERE region = \'eu\' OFFSET 0').stmts![0]!.stmt as { SelectStmt: SelectStmt };
  return {
    alias: 'c',
    select: inner.SelectStmt,
    innerAlias: 'customers',
    columns: new Map([
      ['id', { innerName: 'id', raw: true, typeName: 'int4' }],
      ['name', { innerName: 'full_name', raw: true, typeName: 'text' }],
      ['ssn', { innerName: 'ssn', raw: false, typeName: 'text' }],
      ['amount', { innerName: 'amount', raw: true, typeName: 'numeric' }],
    ]),
  };
}

function innerWhere(t: PushdownTarget): string {
  return deparseStatement({ SelectStmt: t.select } as Node).replace(/^.* WHERE /, '').replace(/ OFFSET 0$/, '');
}

describe('pushing harmless conditions into protected subqueries', () => {
  beforeAll(async () => {
    await loadModule();
  });

  it('copies leakproof comparisons of raw columns with constants and parameters', () => {
    const t = target();
    pushDownConditions(where("c.id = $1 AND c.name = 'Ada' AND c.id BETWEEN 1 AND 5 AND c.id IN (1, 2) AND c.name IS NOT NULL AND 5000000000 > c.id"), [t], undefined, leakproof);
    expect(innerWhere(t)).toBe("region = 'eu' AND customers.id = $1 AND customers.full_name = 'Ada' AND customers.id BETWEEN 1 AND 5 AND customers.id IN (1, 2) AND customers.full_name IS NOT NULL");
  });

  it('leaves masked columns, non-leakproof operators, functions, ORs and IS NULL outside', () => {
    const t = target();
    pushDownConditions(
      where("c.ssn = '1' AND c.amount = 1.5 AND length(c.name) = 3 AND (c.id = 1 OR c.id = 2) AND c.name IS NULL AND c.id = c.id AND other.id = 1 AND c.id::text = '1'"),
      [t],
      undefined,
      leakproof,
    );
    expect(innerWhere(t)).toBe("region = 'eu'");
  });

  it('takes unqualified names only when the protected reference is the only item of the level', () => {
    const shared = target();
    pushDownConditions(where('id = 1'), [shared], undefined, leakproof);
    expect(innerWhere(shared)).toBe("region = 'eu'");
    const sole = target();
    pushDownConditions(where('id = 1'), [sole], sole, leakproof);
    expect(innerWhere(sole)).toBe("region = 'eu' AND customers.id = 1");
  });
});

describe('the OFFSET 0 fence in rewritten statements', () => {
  async function planner(): Promise<(sql: string) => string> {
    const { parsePolicyText } = await import('../../../src/policy/load.js');
    const { createPolicyContext } = await import('../../../src/policy/decide.js');
    const { buildCatalog } = await import('../../../src/rewrite/catalog.js');
    const { planRewrite } = await import('../../../src/rewrite/plan.js');
    const { loadSqlParser } = await import('../../../src/policy/row-filter.js');
    const { analyst, catalogRows, DEMO_POLICIES } = await import('./fixtures.js');
    await loadSqlParser();
    const loaded = await parsePolicyText(DEMO_POLICIES, 'test.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const [row] = catalogRows();
    const doc = JSON.parse(String(row!.catalog)) as Record<string, unknown>;
    doc.leakproof = [['=', 'int4', 'int4']];
    const catalog = buildCatalog([{ catalog: JSON.stringify(doc) }]);
    const policy = createPolicyContext(loaded.policies, analyst, loaded.version);
    return (sql) => {
      const decision = planRewrite({ sql, protocol: 'extended', policy, bundle: loaded.policies, identity: analyst, catalog, searchPath: ['public'] });
      if (decision.kind !== 'rewrite') throw new Error(`expected a rewrite of ${sql}, got ${decision.kind}`);
      return decision.sql;
    };
  }

  it('is dropped for a point lookup whose every condition is leakproof, and kept otherwise', async () => {
    const plan = await planner();
    const lookup = plan('SELECT ssn FROM customers WHERE id = $1');
    expect(lookup).not.toContain('OFFSET 0');
    expect(lookup).toContain('customers.id = $1');
    expect(plan('SELECT ssn FROM customers WHERE id = $1 AND length(ssn) = 11')).toContain('OFFSET 0');
    expect(plan('SELECT ssn FROM customers')).toContain('OFFSET 0');
    expect(plan('SELECT c.ssn FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1')).toContain('OFFSET 0');
    expect(plan('SELECT region, count(*) FROM customers WHERE id = $1 GROUP BY region HAVING region > $2')).toContain('OFFSET 0');
  });
});
