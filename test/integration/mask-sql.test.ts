/**
 * Masks and row-filter literals evaluated by real PostgreSQL: the generated
 * expressions must mean what POLICY-FORMAT.md says, keep the column type,
 * keep NULL, and not be redirected by a hostile search_path.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Identity } from '../../src/auth/identity.js';
import type { MaskSpec } from '../../src/policy/schema.js';
import { maskSql } from '../../src/rewrite/mask-sql.js';
import { deparseExpression, loadSqlParser, renderRowFilter } from '../../src/rewrite/placeholders.js';
import { TEST_DATABASE, type TestServerInfo } from '../helpers/test-servers.js';

const servers = inject('servers');

// Reference semantics, written independently of the SQL: ASCII punctuation,
// spaces and control characters are separators and kept; every other
// character (ASCII letters and digits, anything non-ASCII) is maskable.
function isSeparator(ch: string): boolean {
  const code = ch.codePointAt(0) ?? 0;
  return code <= 0x7f && !/[A-Za-z0-9]/.test(ch);
}

function refFull(s: string): string {
  return [...s].map((ch) => (/[A-Z]/.test(ch) ? 'X' : /[a-z]/.test(ch) ? 'x' : /[0-9]/.test(ch) ? '0' : isSeparator(ch) ? ch : 'x')).join('');
}

function refPartial(s: string, first: number, last: number, char: string): string {
  const chars = [...s];
  const total = chars.filter((c) => !isSeparator(c)).length;
  let seen = 0;
  return chars
    .map((ch) => {
      if (isSeparator(ch)) return ch;
      const i = seen++;
      return i < first || i >= total - last ? ch : char;
    })
    .join('');
}

function refEmail(s: string): string {
  const at = s.lastIndexOf('@');
  return at >= 0 ? `xxxxx@${s.slice(at + 1)}` : refFull(s);
}

const STRINGS = [
  '912-34-5678',
  'Jürgen Müller 42',
  'alice@example.com',
  'a@b@example.com',
  'first.last+tag@sub.example.co.uk',
  'no-at-sign',
  '',
  ' ',
  'x',
  'ab',
  'line1\nline2\ttab',
  '日本語テキスト',
  '🙂 emoji 👍🏽',
  'ÀÉÎ õü',
  '\u007fdel',
  "o'brien\\",
  'UPPER lower 0123',
  '4111 1111 1111 1111',
];

describe.each(servers.map((s) => [s.name, s] as const))('%s', (_name, server: TestServerInfo) => {
  let client: pg.Client;

  beforeAll(async () => {
    await loadSqlParser();
    client = new pg.Client({
      host: server.host,
      port: server.port,
      database: TEST_DATABASE,
      user: server.superuser,
      password: server.superuserPassword,
      ssl: { ca: readFileSync(server.caFile) },
    });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
  });

  /**
   * Applies a mask to values stored in a temporary column of `type`; returns
   * each result as text (NULL as null) and the result types. Runs the SQL
   * text and the deparsed tree, which must agree.
   */
  async function applyMask(mask: MaskSpec, type: string, values: readonly (string | null)[], setup: readonly string[] = []): Promise<{ values: (string | null)[]; types: string[] }> {
    const r = maskSql(mask, ['t', 'v'], type);
    if (!r.ok) throw new Error(r.error);
    await client.query('BEGIN');
    try {
      await client.query(`CREATE TEMP TABLE t (id int, v ${type}) ON COMMIT DROP`);
      for (const [i, v] of values.entries()) await client.query('INSERT INTO t VALUES ($1, $2)', [i, v]);
      for (const sql of setup) await client.query(sql);
      const run = async (expr: string) =>
        (await client.query<{ m: string | null; t: string }>(`SELECT (${expr})::text AS m, pg_typeof(${expr})::text AS t FROM t ORDER BY id`)).rows;
      const rows = await run(r.sql);
      expect(await run(deparseExpression(r.ast))).toEqual(rows);
      return { values: rows.map((row) => row.m), types: [...new Set(rows.map((row) => row.t))] };
    } finally {
      await client.query('ROLLBACK');
    }
  }

  it('full masks letters and digits by kind on text types', async () => {
    for (const type of ['text', 'varchar', 'character varying(200)']) {
      const r = await applyMask({ type: 'full' }, type, [...STRINGS, null]);
      expect(r.values).toEqual([...STRINGS.map(refFull), null]);
      expect(r.types).toEqual([type === 'text' ? 'text' : 'character varying']);
    }
  });

  it('full is NULL of the column type for other types', async () => {
    expect(await applyMask({ type: 'full' }, 'numeric', ['12.5', null])).toEqual({ values: [null, null], types: ['numeric'] });
    expect(await applyMask({ type: 'full' }, 'date', ['2001-02-03'])).toEqual({ values: [null], types: ['date'] });
  });

  it('partial keeps separators and shows the first/last letters or digits', async () => {
    const cases: [number, number, string][] = [
      [0, 4, 'X'],
      [2, 0, '*'],
      [2, 2, '#'],
      [1, 1, '\\'],
      [0, 0, '&'],
      [3, 1, '🙂'],
    ];
    for (const [first, last, char] of cases) {
      const r = await applyMask({ type: 'partial', showFirst: first, showLast: last, char }, 'text', [...STRINGS, null]);
      expect(r.values, `${first}/${last}/${char}`).toEqual([...STRINGS.map((s) => refPartial(s, first, last, char)), null]);
    }
    expect((await applyMask({ type: 'partial', showLast: 4 }, 'text', ['912-34-5678'])).values).toEqual(['XXX-XX-5678']);
  });

  it('partial keeps varchar and bpchar types', async () => {
    expect(await applyMask({ type: 'partial', showLast: 4 }, 'varchar(11)', ['912-34-5678'])).toEqual({ values: ['XXX-XX-5678'], types: ['character varying'] });
    const bp = await applyMask({ type: 'partial', showLast: 2 }, 'char(8)', ['ab-cd', null]);
    expect(bp.types).toEqual(['character']);
    expect(bp.values).toEqual(['XX-cd', null]);
  });

  it('emailDomain keeps the domain after the last @', async () => {
    const r = await applyMask({ type: 'emailDomain' }, 'varchar', [...STRINGS, null]);
    expect(r.values).toEqual([...STRINGS.map(refEmail), null]);
    expect(r.types).toEqual(['character varying']);
  });

  it('hash is the hex SHA-256 of salt || value', async () => {
    const salt = "pep'per\\";
    const r = await applyMask({ type: 'hash', salt }, 'text', [...STRINGS, null]);
    expect(r.values).toEqual([...STRINGS.map((s) => createHash('sha256').update(salt + s, 'utf8').digest('hex')), null]);
  });

  it('null is NULL of the column type', async () => {
    for (const [type, name] of [
      ['int4', 'integer'],
      ['jsonb', 'jsonb'],
      ['text[]', 'text[]'],
      ['timestamptz', 'timestamp with time zone'],
    ] as const) {
      expect(await applyMask({ type: 'null' }, type, [null])).toEqual({ values: [null], types: [name] });
    }
  });

  it('constant is the value in the column type, NULL kept', async () => {
    expect(await applyMask({ type: 'constant', value: 0 }, 'numeric', ['12.5', null])).toEqual({ values: ['0', null], types: ['numeric'] });
    expect(await applyMask({ type: 'constant', value: 'n/a' }, 'varchar', ['secret', null])).toEqual({ values: ['n/a', null], types: ['character varying'] });
    expect(await applyMask({ type: 'constant', value: '1900-01-01' }, 'date', ['2001-02-03'])).toEqual({ values: ['1900-01-01'], types: ['date'] });
    expect(await applyMask({ type: 'constant', value: false }, 'bool', ['true'])).toEqual({ values: ['false'], types: ['boolean'] });
  });

  it('dateYear truncates to 1 January and keeps the type', async () => {
    expect(await applyMask({ type: 'dateYear' }, 'date', ['1987-06-15', '2000-01-01', null])).toEqual({ values: ['1987-01-01', '2000-01-01', null], types: ['date'] });
    expect(await applyMask({ type: 'dateYear' }, 'timestamp', ['1987-06-15 13:14:15'])).toEqual({ values: ['1987-01-01 00:00:00'], types: ['timestamp without time zone'] });
    const tz = await applyMask({ type: 'dateYear' }, 'timestamptz', ['1987-06-15 13:14:15+00'], ["SET LOCAL TimeZone = 'UTC'"]);
    expect(tz).toEqual({ values: ['1987-01-01 00:00:00+00'], types: ['timestamp with time zone'] });
  });

  it('regex applies regexp_replace with the given flags', async () => {
    expect((await applyMask({ type: 'regex', pattern: '[0-9]', replace: '#' }, 'text', ['a1b22', null])).values).toEqual(['a#b##', null]);
    expect((await applyMask({ type: 'regex', pattern: '[0-9]', replace: '#', flags: '' }, 'text', ['a1b22'])).values).toEqual(['a#b22']);
    expect((await applyMask({ type: 'regex', pattern: '^(\\w)\\w*', replace: '\\1***', flags: 'g' }, 'varchar', ['Alice'])).values).toEqual(['A***']);
  });

  it('is not redirected by a hostile search_path', async () => {
    const hostile = [
      'CREATE SCHEMA evil',
      "CREATE FUNCTION evil.regexp_replace(text, text, text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned'::pg_catalog.text $$",
      "CREATE FUNCTION evil.translate(text, text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned'::pg_catalog.text $$",
      "CREATE FUNCTION evil.cat(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned'::pg_catalog.text $$",
      'CREATE OPERATOR evil.|| (leftarg = text, rightarg = text, function = evil.cat)',
      'SET LOCAL search_path = evil, pg_catalog',
    ];
    expect((await applyMask({ type: 'full' }, 'text', ['Ab1'], hostile)).values).toEqual(['Xx0']);
    expect((await applyMask({ type: 'emailDomain' }, 'text', ['a@b.c'], hostile)).values).toEqual(['xxxxx@b.c']);
    const salt = 's';
    expect((await applyMask({ type: 'hash', salt }, 'text', ['v'], hostile)).values).toEqual([createHash('sha256').update('sv').digest('hex')]);
  });

  describe('row filter literals', () => {
    async function matches(filter: string, identity: Identity, rows: readonly (string | null)[]): Promise<string[]> {
      const rendered = renderRowFilter(filter, identity);
      const values = rows.map((_, i) => `($${i + 1}::text)`).join(', ');
      const { rows: out } = await client.query<{ v: string }>(`SELECT v FROM (VALUES ${values}) AS r(v) WHERE ${rendered.sql}`, [...rows]);
      return out.map((r) => r.v);
    }
    const id = (claims: Record<string, unknown>, user = 'u', groups: string[] = []): Identity => ({ user, groups, claims, source: 'oidc' });

    it('compares text claims exactly, including quotes and backslashes', async () => {
      const tricky = "o'brien \\ '); DROP TABLE t; --";
      expect(await matches('v = ${claims.x}', id({ x: tricky }), ['a', tricky, null])).toEqual([tricky]);
      expect(await matches('v = ${user.name}', id({}, 'é日本'), ['é日本', 'e'])).toEqual(['é日本']);
    });

    it('uses text[] for lists and numeric for numbers', async () => {
      expect(await matches('v = ANY (${user.groups})', id({}, 'u', ['a', "b'c"]), ['a', "b'c", 'c'])).toEqual(['a', "b'c"]);
      expect(await matches('v = ANY (${user.groups})', id({}, 'u', []), ['a'])).toEqual([]);
      expect(await matches('v::numeric < ${claims.n}', id({ n: 2.5 }), ['1', '2.5', '3'])).toEqual(['1']);
      expect(await matches('${claims.flag}', id({ flag: true }), ['a'])).toEqual(['a']);
    });

    it('fails closed when the claim is missing', async () => {
      expect(await matches('v = ${claims.region} OR true', id({}), ['a', 'b'])).toEqual([]);
    });
  });
});
