import { parseSync } from 'libpg-query';
import type { Node } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MaskSpec } from '../../../src/policy/schema.js';
import {
  columnRefSql,
  maskSql,
  maskTypeError,
  parseColumnType,
  partialPattern,
  sqlString,
  typeCategory,
  typeSql,
} from '../../../src/rewrite/mask-sql.js';
import { deparseExpression, loadSqlParser, stripLocations } from '../../../src/rewrite/placeholders.js';

beforeAll(async () => {
  await loadSqlParser();
});

function expressionOf(sql: string): Node {
  const stmt = parseSync(`SELECT ${sql}`).stmts?.[0]?.stmt;
  if (!stmt || !('SelectStmt' in stmt)) throw new Error('not a select');
  const target = stmt.SelectStmt.targetList?.[0];
  if (!target || !('ResTarget' in target) || !target.ResTarget.val) throw new Error('no target');
  return stripLocations(target.ResTarget.val);
}

function ok(mask: MaskSpec, type: string, column: readonly string[] = ['c', 'v']): { sql: string; ast: Node } {
  const r = maskSql(mask, column, type);
  if (!r.ok) throw new Error(r.error);
  return r;
}

const FULL_TEXT = (v: string) =>
  `pg_catalog.regexp_replace(pg_catalog.translate(${v}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '${'X'.repeat(26)}${'x'.repeat(26)}${'0'.repeat(10)}'), E'[^\\\\x01-\\\\x7f]', 'x', 'g')`;
const SEP = '[\\\\x01-\\\\x2f\\\\x3a-\\\\x40\\\\x5b-\\\\x60\\\\x7b-\\\\x7f]';
const MASKABLE = '[^\\\\x01-\\\\x2f\\\\x3a-\\\\x40\\\\x5b-\\\\x60\\\\x7b-\\\\x7f]';

describe('parseColumnType', () => {
  it('reads catalog names, SQL spellings, modifiers, arrays and schemas', () => {
    expect(parseColumnType('text')).toEqual({ name: 'text' });
    expect(parseColumnType('int4')).toEqual({ name: 'int4' });
    expect(parseColumnType('integer')).toEqual({ name: 'int4' });
    expect(parseColumnType('character varying(20)')).toEqual({ name: 'varchar' });
    expect(parseColumnType('numeric(10, 2)')).toEqual({ name: 'numeric' });
    expect(parseColumnType('timestamp(3) with time zone')).toEqual({ name: 'timestamptz' });
    expect(parseColumnType('Double Precision')).toEqual({ name: 'float8' });
    expect(parseColumnType('text[]')).toEqual({ name: 'text', array: true });
    expect(parseColumnType('_int4')).toEqual({ name: 'int4', array: true });
    expect(parseColumnType('pg_catalog.date')).toEqual({ name: 'date' });
    expect(parseColumnType('public.citext')).toEqual({ name: 'citext', schema: 'public' });
    expect(parseColumnType('char(8)')).toEqual({ name: 'bpchar' });
    expect(parseColumnType('char')).toEqual({ name: 'bpchar' });
    expect(parseColumnType('"char"')).toEqual({ name: 'char' });
  });
});

describe('typeCategory and typeSql', () => {
  it('classifies types', () => {
    for (const t of ['text', 'varchar', 'bpchar', 'name', 'character varying']) expect(typeCategory(t), t).toBe('text');
    expect(typeCategory({ name: 'citext', schema: 'ext' })).toBe('text');
    for (const t of ['int2', 'int4', 'int8', 'numeric', 'float4', 'float8', 'money']) expect(typeCategory(t), t).toBe('numeric');
    for (const t of ['date', 'timestamp', 'timestamptz']) expect(typeCategory(t), t).toBe('datetime');
    expect(typeCategory('bool')).toBe('boolean');
    for (const t of ['time', 'interval', 'jsonb', 'uuid', 'bytea', 'text[]', 'public.mood']) expect(typeCategory(t), t).toBe('other');
  });

  it('names types with their schema', () => {
    expect(typeSql('varchar')).toBe('pg_catalog.varchar');
    expect(typeSql('integer')).toBe('pg_catalog.int4');
    expect(typeSql('text[]')).toBe('pg_catalog.text[]');
    expect(typeSql({ name: 'char' })).toBe('pg_catalog.char');
    expect(typeSql({ name: 'My Type', schema: 'App' })).toBe('"App"."My Type"');
    expect(typeSql({ name: 'int4', schema: 'pg_catalog' })).toBe('pg_catalog.int4');
  });
});

describe('sqlString and columnRefSql', () => {
  it('quotes strings', () => {
    expect(sqlString('abc')).toBe("'abc'");
    expect(sqlString("it's")).toBe("'it''s'");
    expect(sqlString('a\\b')).toBe("E'a\\\\b'");
    expect(sqlString("a\\'")).toBe("E'a\\\\'''");
    expect(() => sqlString('a\0')).toThrow(/NUL/);
  });

  it('quotes identifiers only when needed', () => {
    expect(columnRefSql(['ssn'])).toBe('ssn');
    expect(columnRefSql(['c', 'ssn'])).toBe('c.ssn');
    expect(columnRefSql(['t', 'user'])).toBe('t.user');
    expect(columnRefSql(['user', 'Mixed Case'])).toBe('"user"."Mixed Case"');
    expect(columnRefSql(['a"b'])).toBe('"a""b"');
  });
});

describe('maskSql: SQL text per mask type', () => {
  it('none is the column itself', () => {
    expect(ok({ type: 'none' }, 'jsonb').sql).toBe('c.v');
  });

  it('null is a typed NULL for any type', () => {
    expect(ok({ type: 'null' }, 'numeric').sql).toBe('NULL::pg_catalog.numeric');
    expect(ok({ type: 'null' }, 'text[]').sql).toBe('NULL::pg_catalog.text[]');
    expect(ok({ type: 'null' }, 'public.mood').sql).toBe('NULL::public.mood');
  });

  it('full maps characters on text and is NULL for other types', () => {
    expect(ok({ type: 'full' }, 'text').sql).toBe(FULL_TEXT('c.v'));
    expect(ok({ type: 'full' }, 'varchar').sql).toBe(`(${FULL_TEXT('c.v::pg_catalog.text')})::pg_catalog.varchar`);
    expect(ok({ type: 'full' }, 'int4').sql).toBe('NULL::pg_catalog.int4');
    expect(ok({ type: 'full' }, 'date').sql).toBe('NULL::pg_catalog.date');
  });

  it('partial uses look-around over maskable characters', () => {
    expect(ok({ type: 'partial', showLast: 4 }, 'text').sql).toBe(
      `pg_catalog.regexp_replace(c.v, E'${MASKABLE}(?=(?:${SEP}*${MASKABLE}){4})', 'X', 'g')`,
    );
    expect(ok({ type: 'partial', showFirst: 1, char: '*' }, 'bpchar').sql).toBe(
      `(pg_catalog.regexp_replace(c.v::pg_catalog.text, E'(?<=(?:${MASKABLE}${SEP}*){1})${MASKABLE}', '*', 'g'))::pg_catalog.bpchar`,
    );
    expect(ok({ type: 'partial', showFirst: 0, showLast: 0 }, 'text').sql).toBe(`pg_catalog.regexp_replace(c.v, E'${MASKABLE}', 'X', 'g')`);
  });

  it('partial escapes a backslash mask character for the replacement string', () => {
    expect(ok({ type: 'partial', showLast: 1, char: '\\' }, 'text').sql).toMatch(/, E'\\\\\\\\', 'g'\)$/);
  });

  it('partialPattern is plain text for the regex engine', () => {
    expect(partialPattern(2, 3)).toBe(
      '(?<=(?:[^\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f][\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]*){2})[^\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f](?=(?:[\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]*[^\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]){3})',
    );
  });

  it('emailDomain keeps the part after the last @ and masks the rest fully without @', () => {
    expect(ok({ type: 'emailDomain' }, 'text').sql).toBe(
      `CASE WHEN pg_catalog.strpos(c.v, '@') OPERATOR(pg_catalog.>) 0 THEN 'xxxxx@' OPERATOR(pg_catalog.||) pg_catalog.reverse(pg_catalog.split_part(pg_catalog.reverse(c.v), '@', 1)) ELSE ${FULL_TEXT('c.v')} END`,
    );
    expect(ok({ type: 'emailDomain' }, 'varchar').sql).toMatch(/^\(CASE WHEN pg_catalog\.strpos\(c\.v::pg_catalog\.text, '@'\).* END\)::pg_catalog\.varchar$/);
  });

  it('hash is hex SHA-256 of salt || value', () => {
    expect(ok({ type: 'hash', salt: "pepper'" }, 'text').sql).toBe(
      "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to('pepper''' OPERATOR(pg_catalog.||) c.v, 'UTF8')), 'hex')",
    );
    expect(ok({ type: 'hash', salt: 's' }, 'varchar').sql).toBe(
      "(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to('s' OPERATOR(pg_catalog.||) c.v::pg_catalog.text, 'UTF8')), 'hex'))::pg_catalog.varchar",
    );
  });

  it('constant is the value cast to the column type, NULL kept', () => {
    expect(ok({ type: 'constant', value: 'n/a' }, 'text').sql).toBe("CASE WHEN c.v IS NULL THEN NULL ELSE 'n/a'::pg_catalog.text END");
    expect(ok({ type: 'constant', value: 0 }, 'numeric').sql).toBe("CASE WHEN c.v IS NULL THEN NULL ELSE '0'::pg_catalog.numeric END");
    expect(ok({ type: 'constant', value: false }, 'bool').sql).toBe("CASE WHEN c.v IS NULL THEN NULL ELSE 'false'::pg_catalog.bool END");
    expect(ok({ type: 'constant', value: '1900-01-01' }, 'date').sql).toBe("CASE WHEN c.v IS NULL THEN NULL ELSE '1900-01-01'::pg_catalog.date END");
  });

  it('dateYear truncates to the year and keeps the type', () => {
    expect(ok({ type: 'dateYear' }, 'date').sql).toBe("pg_catalog.date_trunc('year', c.v::pg_catalog.timestamp)::pg_catalog.date");
    expect(ok({ type: 'dateYear' }, 'timestamp').sql).toBe("pg_catalog.date_trunc('year', c.v)");
    expect(ok({ type: 'dateYear' }, 'timestamptz').sql).toBe("pg_catalog.date_trunc('year', c.v)");
  });

  it('regex applies regexp_replace with flags (default g)', () => {
    expect(ok({ type: 'regex', pattern: '\\d', replace: '#' }, 'text').sql).toBe("pg_catalog.regexp_replace(c.v, E'\\\\d', '#', 'g')");
    expect(ok({ type: 'regex', pattern: 'a', replace: 'b', flags: 'i' }, 'varchar').sql).toBe(
      "(pg_catalog.regexp_replace(c.v::pg_catalog.text, 'a', 'b', 'i'))::pg_catalog.varchar",
    );
  });

  it('quotes column references', () => {
    expect(ok({ type: 'null' }, 'text', ['Weird Table', 'select']).sql).toBe('NULL::pg_catalog.text');
    expect(ok({ type: 'hash', salt: 's' }, 'text', ['Weird Table', 'select']).sql).toContain('"Weird Table".select,');
    expect(ok({ type: 'none' }, 'text', ['ssn']).sql).toBe('ssn');
  });
});

describe('maskSql: parse trees', () => {
  const cases: [MaskSpec, string][] = [
    [{ type: 'none' }, 'text'],
    [{ type: 'null' }, 'date'],
    [{ type: 'full' }, 'text'],
    [{ type: 'full' }, 'varchar'],
    [{ type: 'full' }, 'int8'],
    [{ type: 'partial', showFirst: 2, showLast: 4, char: "'" }, 'bpchar'],
    [{ type: 'partial', showLast: 255 }, 'text'],
    [{ type: 'emailDomain' }, 'name'],
    [{ type: 'hash', salt: 'a\\b' }, 'text'],
    [{ type: 'constant', value: -1.5 }, 'float8'],
    [{ type: 'constant', value: 'x' }, 'public.citext'],
    [{ type: 'dateYear' }, 'date'],
    [{ type: 'dateYear' }, 'timestamptz'],
    [{ type: 'regex', pattern: "(\\w+)'", replace: '\\1', flags: 'gi' }, 'text'],
  ];

  it.each(cases)('%j on %s parses to the returned tree', (mask, type) => {
    const r = ok(mask, type);
    expect(r.ast).toEqual(expressionOf(r.sql));
    expect(JSON.stringify(r.ast)).not.toContain('location');
  });

  it.each(cases)('%j on %s survives deparse and re-parse', (mask, type) => {
    const r = ok(mask, type);
    expect(expressionOf(deparseExpression(r.ast))).toEqual(r.ast);
  });

  it('uses only pg_catalog functions, operators and types', () => {
    for (const [mask, type] of cases) {
      const json = JSON.stringify(ok(mask, type).ast);
      for (const m of json.matchAll(/"(funcname|names)":\[(.*?)\]/g)) {
        const parts = [...(m[2] ?? '').matchAll(/"sval":"([^"]*)"/g)].map((p) => p[1]);
        if (parts.length === 1 && ['>', '||'].includes(parts[0] ?? '')) throw new Error(`unqualified operator in ${json}`);
        if (parts[0] !== 'pg_catalog' && parts[0] !== 'public') throw new Error(`unqualified ${parts.join('.')} in ${JSON.stringify(mask)}`);
      }
    }
  });
});

describe('maskSql: type fit', () => {
  const bad: [MaskSpec, string, RegExp][] = [
    [{ type: 'partial', showLast: 4 }, 'date', /partial masks apply to text columns, not pg_catalog.date/],
    [{ type: 'emailDomain' }, 'int4', /emailDomain masks apply to text/],
    [{ type: 'hash', salt: 's' }, 'numeric', /hash masks apply to text/],
    [{ type: 'regex', pattern: 'a', replace: 'b' }, 'jsonb', /regex masks apply to text/],
    [{ type: 'dateYear' }, 'text', /dateYear masks apply to date or timestamp columns, not pg_catalog.text/],
    [{ type: 'dateYear' }, 'time', /dateYear/],
    [{ type: 'partial', showLast: 4 }, 'text[]', /not pg_catalog.text\[\]/],
    [{ type: 'constant', value: 'abc' }, 'int4', /not a number/],
    [{ type: 'constant', value: 1.5 }, 'int4', /not an integer/],
    [{ type: 'constant', value: true }, 'numeric', /not a number/],
    [{ type: 'constant', value: 'maybe' }, 'bool', /not a boolean/],
    [{ type: 'constant', value: 3 }, 'date', /must be written as a string/],
  ];

  it.each(bad)('%j on %s is refused', (mask, type, message) => {
    const r = maskSql(mask, ['v'], type);
    expect(r).toEqual({ ok: false, error: expect.stringMatching(message) });
    expect(maskTypeError(mask, type)).toMatch(message);
  });

  it('accepts masks that fit', () => {
    expect(maskTypeError({ type: 'full' }, 'jsonb')).toBeUndefined();
    expect(maskTypeError({ type: 'null' }, 'bytea')).toBeUndefined();
    expect(maskTypeError({ type: 'constant', value: '12.5' }, 'numeric')).toBeUndefined();
    expect(maskTypeError({ type: 'constant', value: -3 }, 'int4')).toBeUndefined();
    expect(maskTypeError({ type: 'constant', value: 'true' }, 'bool')).toBeUndefined();
    expect(maskTypeError({ type: 'constant', value: 7 }, 'text')).toBeUndefined();
    expect(maskTypeError({ type: 'hash', salt: 's' }, { name: 'citext', schema: 'public' })).toBeUndefined();
  });

  it('refuses NUL in constants and salts', () => {
    expect(maskSql({ type: 'constant', value: 'a\0' }, ['v'], 'text')).toMatchObject({ ok: false });
    expect(maskSql({ type: 'hash', salt: 'a\0' }, ['v'], 'text')).toMatchObject({ ok: false, error: expect.stringMatching(/NUL/) });
  });
});
