import { parseSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ancestors,
  buildCatalog,
  CATALOG_SQL,
  descendants,
  lookupSchemas,
  mayBeCheckedDomain,
  resolveFunction,
  resolveOperator,
  resolveRelation,
  type Catalog,
} from '../../../src/rewrite/catalog.js';
import { loadSqlParser } from '../../../src/rewrite/placeholders.js';
import { catalogRows, OIDS } from './fixtures.js';

beforeAll(async () => {
  await loadSqlParser();
});

function rel(catalog: Catalog, oid: number) {
  const r = catalog.relations.get(oid);
  if (!r) throw new Error(`no relation ${oid}`);
  return r;
}

describe('CATALOG_SQL', () => {
  it('is one statement that names only pg_catalog functions and operators', () => {
    const stmts = parseSync(CATALOG_SQL).stmts ?? [];
    expect(stmts).toHaveLength(1);
    const unqualified: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (typeof node !== 'object' || node === null) return;
      const record = node as Record<string, unknown>;
      for (const [key, value] of Object.entries(record)) {
        if (key === 'FuncCall' || key === 'A_Expr') {
          const data = value as { funcname?: { String: { sval: string } }[]; name?: { String: { sval: string } }[] };
          const names = (data.funcname ?? data.name ?? []).map((n) => n.String.sval);
          if (names[0] !== 'pg_catalog') unqualified.push(names.join('.'));
        }
        if (key === 'RangeVar') {
          const rv = value as { schemaname?: string; relname?: string };
          if (rv.schemaname !== 'pg_catalog') unqualified.push(rv.relname ?? '');
        }
        walk(value);
      }
    };
    walk(stmts[0]?.stmt);
    expect(unqualified).toEqual([]);
  });

  it('returns one column named catalog', () => {
    const stmt = parseSync(CATALOG_SQL).stmts?.[0]?.stmt;
    const targets = stmt && 'SelectStmt' in stmt ? stmt.SelectStmt.targetList : [];
    expect(targets?.map((t) => ('ResTarget' in t ? t.ResTarget.name : undefined))).toEqual(['catalog']);
  });
});

describe('buildCatalog', () => {
  it('reads relations, columns, parents, functions and operators', () => {
    const catalog = buildCatalog(catalogRows());
    expect(catalog.database).toBe('app');
    const customers = rel(catalog, OIDS.customers);
    expect(customers).toMatchObject({ schema: 'public', name: 'customers', kind: 'table', parents: [] });
    expect(customers.columns.map((c) => c.name)).toEqual([
      'id', 'full_name', 'email', 'ssn', 'region', 'salary', 'card_number', 'date_of_birth', 'created_at',
    ]);
    expect(customers.columns[5]).toMatchObject({ attnum: 6, type: 'numeric(10,2)', typeName: 'numeric', typeSchema: 'pg_catalog', typmod: 655366 });
    expect(rel(catalog, OIDS.payments).kind).toBe('partitioned');
    expect(rel(catalog, OIDS.summary).kind).toBe('view');
    expect(rel(catalog, OIDS.paymentsEu).parents).toEqual([OIDS.payments]);
    expect(catalog.children.get(OIDS.payments)).toEqual([OIDS.paymentsEu, OIDS.paymentsUs]);
    expect(catalog.bySchema.get('other')?.get('customers')?.oid).toBe(OIDS.otherCustomers);
    expect(catalog.functions.get('count')).toEqual([{ schema: 'pg_catalog', name: 'count', kind: 'aggregate' }]);
    expect(catalog.functions.get('lower')?.map((f) => f.schema)).toEqual(['pg_catalog', 'public']);
    expect(catalog.operators.get('->')).toEqual(new Set(['pg_catalog', 'public']));
    expect(mayBeCheckedDomain(catalog, ['us_postal_code'], ['public'])).toBe(true);
    expect(mayBeCheckedDomain(catalog, ['us_postal_code'], ['other'])).toBe(false);
    expect(mayBeCheckedDomain(catalog, ['public', 'us_postal_code'], [])).toBe(true);
    expect(mayBeCheckedDomain(catalog, ['pg_catalog', 'text'], ['public'])).toBe(false);
    expect(catalog.version).toMatch(/^[0-9a-f]{64}$/);
  });

  it('gives equal snapshots equal versions, whether the driver parsed the JSON or not', () => {
    const rows = catalogRows();
    const text = rows[0]?.['catalog'] as string;
    const a = buildCatalog(rows);
    const b = buildCatalog([{ catalog: JSON.parse(text) }]);
    expect(b.relations.size).toBe(a.relations.size);
    expect(buildCatalog(catalogRows()).version).toBe(a.version);
    const other = buildCatalog(catalogRows({ relations: [[99999, 'public', 'extra', 'r', [], []]] }));
    expect(other.version).not.toBe(a.version);
  });

  it('accepts numbers written as strings and booleans as t/f', () => {
    const doc = {
      database: 'app',
      relations: [['42', 'public', 't', 'r', [['a', '1', 'integer', '23', '-1', 't', 'int4', 'pg_catalog', 'f']], ['7']]],
      functions: [],
      operators: [],
    };
    const catalog = buildCatalog([{ catalog: JSON.stringify(doc) }]);
    expect(catalog.relations.get(42)).toMatchObject({ parents: [7], columns: [{ attnum: 1, typeOid: 23, typmod: -1, notNull: true, typeIsArray: false }] });
  });

  it('maps unknown relkinds to other and rejects malformed input', () => {
    const seq = buildCatalog(catalogRows({ relations: [[50000, 'public', 'seq', 'S', [], []]] }));
    expect(seq.relations.get(50000)?.kind).toBe('other');
    expect(() => buildCatalog([])).toThrow(/one row/);
    expect(() => buildCatalog([{ catalog: 'not json' }])).toThrow(/not JSON/);
    expect(() => buildCatalog([{ other: '{}' }])).toThrow(/JSON object/);
    expect(() => buildCatalog([{ catalog: JSON.stringify({ database: 'x', relations: [[1]], functions: [], operators: [] }) }])).toThrow(/relation 0/);
  });
});

describe('name resolution', () => {
  const catalog = buildCatalog(catalogRows());

  it('resolves qualified names in their schema only', () => {
    expect(resolveRelation(catalog, ['public', 'customers'], [])?.oid).toBe(OIDS.customers);
    expect(resolveRelation(catalog, ['other', 'customers'], ['public'])?.oid).toBe(OIDS.otherCustomers);
    expect(resolveRelation(catalog, ['nope', 'customers'], ['public'])).toBeUndefined();
  });

  it('resolves unqualified names in pg_catalog first, then the path in order', () => {
    expect(resolveRelation(catalog, ['customers'], ['public', 'other'])?.oid).toBe(OIDS.customers);
    expect(resolveRelation(catalog, ['customers'], ['other', 'public'])?.oid).toBe(OIDS.otherCustomers);
    expect(resolveRelation(catalog, ['pg_class'], ['public'])?.schema).toBe('pg_catalog');
    expect(resolveRelation(catalog, ['customers'], [])).toBeUndefined();
    expect(lookupSchemas(['public'])).toEqual(['pg_catalog', 'public']);
    expect(lookupSchemas(['public', 'pg_catalog'])).toEqual(['public', 'pg_catalog']);
  });

  it('ignores pg_temp: temporary objects are never in the snapshot', () => {
    expect(lookupSchemas(['pg_temp', 'public', 'pg_temp_3'])).toEqual(['pg_catalog', 'public']);
    expect(resolveRelation(catalog, ['pg_temp', 'customers'], ['public'])).toBeUndefined();
  });

  it('accepts three-part names only for the snapshot database', () => {
    expect(resolveRelation(catalog, ['app', 'public', 'orders'], [])?.oid).toBe(OIDS.orders);
    expect(resolveRelation(catalog, ['elsewhere', 'public', 'orders'], [])).toBeUndefined();
    expect(resolveRelation(catalog, ['a', 'b', 'c', 'd'], [])).toBeUndefined();
  });

  it('lists ancestors nearest first and descendants', () => {
    expect(ancestors(catalog, rel(catalog, OIDS.paymentsEu)).map((r) => r.name)).toEqual(['payments']);
    expect(ancestors(catalog, rel(catalog, OIDS.customers))).toEqual([]);
    expect(descendants(catalog, rel(catalog, OIDS.payments)).map((r) => r.name)).toEqual(['payments_eu', 'payments_us']);
    const deep = buildCatalog(
      catalogRows({ relations: [[60000, 'public', 'grandchild', 'r', [], [OIDS.paymentsEu]], [60001, 'public', 'loop', 'r', [], [60001]]] }),
    );
    expect(ancestors(deep, rel(deep, 60000)).map((r) => r.name)).toEqual(['payments_eu', 'payments']);
    expect(ancestors(deep, rel(deep, 60001))).toEqual([]);
    expect(descendants(deep, rel(deep, OIDS.payments)).map((r) => r.name)).toEqual(['payments_eu', 'payments_us', 'grandchild']);
  });

  it('resolves functions: built-in only when nothing else on the path can supply the name', () => {
    expect(resolveFunction(catalog, ['count'], ['public'])).toEqual({ kind: 'builtin', name: 'count', kinds: ['aggregate'] });
    expect(resolveFunction(catalog, ['pg_catalog', 'lower'], ['public'])).toMatchObject({ kind: 'builtin' });
    // public.lower could win over pg_catalog.lower by argument types.
    expect(resolveFunction(catalog, ['lower'], ['public'])).toEqual({ kind: 'user', schema: 'public', name: 'lower' });
    expect(resolveFunction(catalog, ['lower'], ['other'])).toMatchObject({ kind: 'builtin' });
    expect(resolveFunction(catalog, ['my_func'], ['public'])).toMatchObject({ kind: 'user', schema: 'public' });
    expect(resolveFunction(catalog, ['my_func'], ['other'])).toMatchObject({ kind: 'unknown' });
    expect(resolveFunction(catalog, ['public', 'my_func'], [])).toMatchObject({ kind: 'user' });
    expect(resolveFunction(catalog, ['app', 'pg_catalog', 'count'], [])).toMatchObject({ kind: 'builtin' });
    expect(resolveFunction(catalog, ['elsewhere', 'pg_catalog', 'count'], [])).toMatchObject({ kind: 'unknown' });
    expect(resolveFunction(catalog, ['nope'], ['public'])).toMatchObject({ kind: 'unknown' });
  });

  it('resolves operators the same way', () => {
    expect(resolveOperator(catalog, ['='], ['public'])).toBe('builtin');
    expect(resolveOperator(catalog, ['->'], ['public'])).toBe('user');
    expect(resolveOperator(catalog, ['->'], ['other'])).toBe('builtin');
    expect(resolveOperator(catalog, ['pg_catalog', '->'], ['public'])).toBe('builtin');
    expect(resolveOperator(catalog, ['#@#'], ['public'])).toBe('user');
    expect(resolveOperator(catalog, ['public', '#@#'], [])).toBe('user');
    expect(resolveOperator(catalog, ['<=>'], ['public'])).toBe('unknown');
  });
});
