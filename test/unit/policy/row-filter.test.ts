import { beforeAll, describe, expect, it } from 'vitest';
import { alice, compiled } from './row-filter-fixtures.js';
import type { Identity } from '../../../src/auth/identity.js';
import { compileRowFilter, loadSqlParser, parsePlaceholder, placeholderKey, resolvePlaceholder } from '../../../src/policy/row-filter.js';

beforeAll(async () => {
  await loadSqlParser();
});


describe('parsePlaceholder', () => {
  it('knows the three roots', () => {
    expect(parsePlaceholder('user.name')).toMatchObject({ kind: 'userName' });
    expect(parsePlaceholder('user.groups')).toMatchObject({ kind: 'userGroups' });
    expect(parsePlaceholder('claims.org.unit')).toMatchObject({ kind: 'claim', path: 'org.unit' });
    expect(parsePlaceholder(' claims.region ')).toMatchObject({ kind: 'claim', path: 'region' });
  });

  it('keys placeholders by what they read', () => {
    expect(['user.name', 'user.groups', 'claims.org.unit'].map((p) => placeholderKey(parsePlaceholder(p) as never))).toEqual(['userName', 'userGroups', 'claims.org.unit']);
  });

  it('rejects unknown roots and malformed paths', () => {
    expect(parsePlaceholder('user.email')).toMatch(/unknown placeholder/);
    expect(parsePlaceholder('user')).toMatch(/unknown placeholder/);
    expect(parsePlaceholder('env.HOME')).toMatch(/unknown placeholder/);
    expect(parsePlaceholder('claims.')).toMatch(/invalid claim path/);
    expect(parsePlaceholder('claims.a..b')).toMatch(/invalid claim path/);
    expect(parsePlaceholder("claims.a'b")).toMatch(/invalid claim path/);
  });
});

describe('compileRowFilter', () => {
  it('replaces placeholders with parameter references, one number per distinct placeholder', () => {
    const f = compiled('region = ${claims.region} OR owner = ${user.name} OR backup = ${claims.region}');
    expect(f.placeholders.map((p) => p.kind)).toEqual(['claim', 'userName']);
    expect(JSON.stringify(f.ast)).toContain('"ParamRef":{"number":1}');
    expect(JSON.stringify(f.ast)).toContain('"ParamRef":{"number":2}');
    expect(JSON.stringify(f.ast)).not.toContain('location');
  });

  it('accepts filters without placeholders, subqueries and boolean constants', () => {
    expect(compileRowFilter('deleted_at IS NULL').ok).toBe(true);
    expect(compileRowFilter('region IN (SELECT r FROM public.allowed WHERE u = ${user.name})').ok).toBe(true);
    expect(compileRowFilter('true').ok).toBe(true);
    expect(compileRowFilter("note = 'a;b'").ok).toBe(true);
    expect(compileRowFilter('${user.name} = ANY (owners)').ok).toBe(true);
  });

  it('rejects statement separators', () => {
    const r = compileRowFilter('region = ${claims.region}; DROP TABLE customers');
    expect(r).toMatchObject({ ok: false, message: expect.stringMatching(/";" is not allowed/) });
    expect(r.ok || r.offset).toBe('region = ${claims.region}'.length);
    expect(compileRowFilter('true;')).toMatchObject({ ok: false });
  });

  it('rejects clauses appended after the expression', () => {
    for (const text of ['true ORDER BY 1', 'true GROUP BY 1', 'true LIMIT 1', 'true UNION SELECT 1', 'true FOR UPDATE', 'true HAVING true', 'true WINDOW w AS ()']) {
      expect(compileRowFilter(text), text).toMatchObject({ ok: false });
    }
  });

  it('rejects syntax errors with an offset into the filter', () => {
    const r = compileRowFilter('region = = ${claims.region}');
    expect(r).toMatchObject({ ok: false, message: expect.stringMatching(/not a valid SQL expression/) });
    expect(r.ok || r.offset).toBe(9);
    expect(compileRowFilter('region = (')).toMatchObject({ ok: false });
    expect(compileRowFilter('')).toMatchObject({ ok: false });
  });

  it('maps error offsets back through replaced placeholders', () => {
    const text = 'owner = ${user.name} AND AND x';
    const r = compileRowFilter(text);
    expect(r.ok).toBe(false);
    expect(r.ok || r.offset).toBe(text.indexOf('AND x'));
  });

  it('rejects non-boolean constants', () => {
    expect(compileRowFilter('1')).toMatchObject({ ok: false });
    expect(compileRowFilter("'yes'")).toMatchObject({ ok: false });
  });

  it('rejects unknown placeholders, hand-written parameters and unterminated placeholders', () => {
    expect(compileRowFilter('a = ${user.email}')).toMatchObject({ ok: false, offset: 4 });
    expect(compileRowFilter('a = $1')).toMatchObject({ ok: false, message: expect.stringMatching(/\$n parameters/) });
    expect(compileRowFilter('a = ${claims.region')).toMatchObject({ ok: false, message: expect.stringMatching(/unterminated/) });
  });

  it('rejects placeholders inside quotes or comments', () => {
    expect(compileRowFilter("name LIKE '${user.name}%'")).toMatchObject({ ok: false, offset: 11 });
    expect(compileRowFilter('"${user.name}" = 1')).toMatchObject({ ok: false });
    expect(compileRowFilter('true /* ${user.name} */')).toMatchObject({ ok: false });
    expect(compileRowFilter('a = $$${user.name}$$')).toMatchObject({ ok: false });
  });

  it('rejects NUL characters', () => {
    expect(compileRowFilter('a = 1\0')).toMatchObject({ ok: false });
  });
});

describe('resolvePlaceholder', () => {
  const claim = (path: string) => ({ kind: 'claim', text: `\${claims.${path}}`, path }) as const;

  it('types values from the identity', () => {
    expect(resolvePlaceholder({ kind: 'userName', text: '' }, alice)).toEqual({ type: 'text', value: 'alice' });
    expect(resolvePlaceholder({ kind: 'userGroups', text: '' }, alice)).toEqual({ type: 'textArray', value: ['analyst', 'eu-team'] });
    expect(resolvePlaceholder(claim('region'), alice)).toEqual({ type: 'text', value: 'eu' });
    expect(resolvePlaceholder(claim('level'), alice)).toEqual({ type: 'numeric', value: 3 });
    expect(resolvePlaceholder(claim('active'), alice)).toEqual({ type: 'boolean', value: false });
    expect(resolvePlaceholder(claim('org.unit'), alice)).toEqual({ type: 'text', value: 'sales' });
    expect(resolvePlaceholder(claim('org.tags'), alice)).toEqual({ type: 'textArray', value: ['a', 'b'] });
  });

  it('reports missing, null, object and unsafe values', () => {
    const id: Identity = { ...alice, claims: { n: null, o: { a: 1 }, nul: 'a\0b', mixed: ['a', { b: 1 }], list: [1, true, 'x'] } };
    expect(resolvePlaceholder(claim('absent'), id).type).toBe('missing');
    expect(resolvePlaceholder(claim('n'), id).type).toBe('missing');
    expect(resolvePlaceholder(claim('o'), id).type).toBe('missing');
    expect(resolvePlaceholder(claim('nul'), id).type).toBe('missing');
    expect(resolvePlaceholder(claim('mixed'), id).type).toBe('missing');
    expect(resolvePlaceholder(claim('list'), id)).toEqual({ type: 'textArray', value: ['1', 'true', 'x'] });
    expect(resolvePlaceholder(claim('constructor'), id).type).toBe('missing');
    expect(resolvePlaceholder(claim('o.__proto__'), id).type).toBe('missing');
  });
});

