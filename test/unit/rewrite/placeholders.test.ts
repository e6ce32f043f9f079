import { parseSync } from 'libpg-query';
import type { Node } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { alice, compiled } from '../policy/row-filter-fixtures.js';
import type { Identity } from '../../../src/auth/identity.js';
import {
  deparseExpression,
  literalNode,
  loadSqlParser,
  renderRowFilter,
  stripLocations,
} from '../../../src/rewrite/placeholders.js';

beforeAll(async () => {
  await loadSqlParser();
});


function expressionOf(sql: string): Node {
  const stmt = parseSync(`SELECT 1 WHERE ${sql}`).stmts?.[0]?.stmt;
  if (!stmt || !('SelectStmt' in stmt) || !stmt.SelectStmt.whereClause) throw new Error('no where clause');
  return stripLocations(stmt.SelectStmt.whereClause);
}

/** The rendered text must parse back to exactly the tree we built. */
function expectRoundTrip(rendered: { sql: string; ast: Node }): void {
  expect(expressionOf(rendered.sql)).toEqual(rendered.ast);
}

describe('renderRowFilter', () => {
  it('renders text as a pg_catalog.text constant', () => {
    const r = renderRowFilter(compiled('region = ${claims.region}'), alice);
    expect(r.sql).toBe("region = CAST('eu' AS pg_catalog.text)");
    expect(r.failClosed).toBeUndefined();
    expectRoundTrip(r);
  });

  it('doubles quotes and keeps backslashes literal', () => {
    const id: Identity = { ...alice, user: "o'brien \\ '); DROP TABLE x; --" };
    const r = renderRowFilter(compiled('owner = ${user.name}'), id);
    expectRoundTrip(r);
    const literal = JSON.stringify(r.ast);
    expect(literal).toContain(JSON.stringify("o'brien \\ '); DROP TABLE x; --"));
    expect(expressionOf(r.sql)).toEqual(r.ast);
  });

  it('renders numbers as numeric, booleans as booleans and lists as text[]', () => {
    const r = renderRowFilter(
      compiled('level <= ${claims.level} AND ratio = ${claims.ratio} AND big < ${claims.big} AND active = ${claims.active} AND grp = ANY (${user.groups}) AND tag = ANY (${claims.org.tags})'),
      alice,
    );
    expect(r.sql).toBe(
      "level <= CAST(3 AS numeric) AND ratio = CAST(1.5 AS numeric) AND big < CAST(1e+21 AS numeric) AND active = false AND grp = ANY (CAST(ARRAY['analyst', 'eu-team'] AS pg_catalog.text[])) AND tag = ANY (CAST(ARRAY['a', 'b'] AS pg_catalog.text[]))",
    );
    expectRoundTrip(r);
  });

  it('renders edge-case numbers and strings exactly as the parser would', () => {
    for (const value of [0, -1, 2147483647, -2147483647, 2147483648, -2147483648, 0.1, -0.5]) {
      const r = renderRowFilter(compiled('x = ${claims.v}'), { ...alice, claims: { v: value } });
      expectRoundTrip(r);
    }
    for (const value of ['', ' ', "'", "''", '\\', 'é日本', 'a\nb', '$1', '${user.name}']) {
      const r = renderRowFilter(compiled('x = ${claims.v}'), { ...alice, claims: { v: value } });
      expectRoundTrip(r);
    }
    for (const value of [true, false]) {
      expectRoundTrip(renderRowFilter(compiled('x = ${claims.v}'), { ...alice, claims: { v: value } }));
    }
  });

  it('renders an empty group list as an empty text[]', () => {
    const r = renderRowFilter(compiled('grp = ANY (${user.groups})'), { ...alice, groups: [] });
    expect(r.sql).toBe('grp = ANY (CAST(ARRAY[] AS pg_catalog.text[]))');
    expectRoundTrip(r);
  });

  it('fails closed when a claim is missing', () => {
    const r = renderRowFilter(compiled('region = ${claims.region} OR true'), { ...alice, claims: {} });
    expect(r.sql).toBe('false');
    expect(r.ast).toEqual({ A_Const: { boolval: {} } });
    expect(r.failClosed).toMatch(/claim region is missing/);
    expectRoundTrip(r);
  });

  it('fails closed on NUL bytes', () => {
    const r = renderRowFilter(compiled('owner = ${user.name}'), { ...alice, user: 'a\0' });
    expect(r.sql).toBe('false');
    expect(r.failClosed).toMatch(/NUL/);
  });

  it('fails closed in passthrough mode, where there are no claims', () => {
    const r = renderRowFilter(compiled('region = ${claims.region}'), { user: 'bob', groups: [], claims: {}, source: 'passthrough' });
    expect(r.sql).toBe('false');
  });

  it('keeps subqueries and leaves the compiled filter untouched', () => {
    const f = compiled('region IN (SELECT r FROM public.allowed a WHERE a.u = ${user.name})');
    const before = JSON.stringify(f.ast);
    const r = renderRowFilter(f, alice);
    expect(r.sql).toBe("region IN (SELECT r FROM public.allowed AS a WHERE a.u = CAST('alice' AS pg_catalog.text))");
    expectRoundTrip(r);
    expect(JSON.stringify(f.ast)).toBe(before);
  });

  it('accepts filter text and throws on invalid text', () => {
    expect(renderRowFilter('owner = ${user.name}', alice).sql).toBe("owner = CAST('alice' AS pg_catalog.text)");
    expect(() => renderRowFilter('owner = ${user.x}', alice)).toThrow(/invalid row filter/);
  });
});

describe('literalNode', () => {
  it('builds the tree the parser builds for the same literal', () => {
    expect(literalNode({ type: 'text', value: 'a' })).toEqual(expressionOf("CAST('a' AS pg_catalog.text)"));
    expect(literalNode({ type: 'numeric', value: 0 })).toEqual(expressionOf('CAST(0 AS pg_catalog.numeric)'));
    expect(literalNode({ type: 'boolean', value: true })).toEqual(expressionOf('true'));
    expect(literalNode({ type: 'textArray', value: [] })).toEqual(expressionOf('CAST(ARRAY[] AS pg_catalog.text[])'));
  });
});

describe('deparseExpression', () => {
  it('keeps pg_catalog on casts so the text re-parses to the same tree', () => {
    for (const sql of ['NULL::pg_catalog.date', "'a'::pg_catalog.text", 'c::pg_catalog.int4', 'c::pg_catalog.text[]', 'c::text', 'c::public.citext']) {
      const ast = expressionOf(sql);
      expect(expressionOf(deparseExpression(ast)), sql).toEqual(ast);
    }
  });
});
