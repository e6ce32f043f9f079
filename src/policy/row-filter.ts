/**
 * Row filters as policy data: `${user.name}`, `${user.groups}` and
 * `${claims.a.b}` placeholders, validated at load time.
 *
 * Compiling turns each placeholder into a PostgreSQL parameter reference
 * `$n`, parses the text with the real PostgreSQL grammar and keeps the WHERE
 * expression as a tree. rewrite/placeholders.ts later swaps each ParamRef for
 * a typed constant of one identity, so user data never passes through SQL
 * text. The parser must be loaded (`await loadSqlParser()`) before compiling.
 */
import { loadModule, parseSync, scanSync } from 'libpg-query';
import type { Node } from 'libpg-query';
import type { Identity } from '../auth/identity.js';
import { lookupClaim } from './subjects.js';

/** Loads the WebAssembly PostgreSQL parser; idempotent. */
export async function loadSqlParser(): Promise<void> {
  await loadModule();
}

export type Placeholder =
  | { readonly kind: 'userName'; readonly text: string }
  | { readonly kind: 'userGroups'; readonly text: string }
  | { readonly kind: 'claim'; readonly text: string; readonly path: string };

/** A validated row filter: the WHERE expression with `$n` standing for `placeholders[n-1]`. */
export interface CompiledRowFilter {
  readonly text: string;
  readonly ast: Node;
  readonly placeholders: readonly Placeholder[];
}

export type CompileResult =
  | { readonly ok: true; readonly filter: CompiledRowFilter }
  | { readonly ok: false; readonly message: string; /** 0-based offset into the filter text. */ readonly offset: number };

/** The value a placeholder takes for one identity. */
export type PlaceholderValue =
  | { readonly type: 'text'; readonly value: string }
  | { readonly type: 'numeric'; readonly value: number }
  | { readonly type: 'boolean'; readonly value: boolean }
  | { readonly type: 'textArray'; readonly value: readonly string[] }
  | { readonly type: 'missing'; readonly reason: string };

const PLACEHOLDER = /\$\{([^}]*)\}/g;
const CLAIM_SEGMENT = /^[A-Za-z0-9_:/-]+$/;
// Prefix the filter is parsed behind; offsets in errors are shifted back by its length.
const WRAPPER = 'SELECT 1 WHERE ';
// SelectStmt keys a bare `SELECT 1 WHERE <expr>` produces; anything else was smuggled in.
const ALLOWED_SELECT_KEYS = new Set(['targetList', 'whereClause', 'limitOption', 'op']);

/** Parses the inside of `${...}`; returns an error message for unknown roots. */
export function parsePlaceholder(inner: string): Placeholder | string {
  const text = `\${${inner}}`;
  const name = inner.trim();
  if (name === 'user.name') return { kind: 'userName', text };
  if (name === 'user.groups') return { kind: 'userGroups', text };
  if (name.startsWith('claims.')) {
    const path = name.slice('claims.'.length);
    if (path.split('.').every((s) => CLAIM_SEGMENT.test(s))) return { kind: 'claim', text, path };
    return `invalid claim path in placeholder ${text}`;
  }
  return `unknown placeholder ${text}: use \${user.name}, \${user.groups} or \${claims.<path>}`;
}

/** `user.name`, `user.groups` or `claims.<path>`: one key per distinct placeholder. */
export function placeholderKey(p: Placeholder): string {
  return p.kind === 'claim' ? `claims.${p.path}` : p.kind;
}

interface Occurrence {
  readonly start: number;
  readonly end: number;
  readonly param: number;
}

/**
 * Validates a row filter and turns it into a tree with ParamRefs. Rejects:
 * unknown placeholders, placeholders inside quotes or comments (they would
 * not be substituted), hand-written `$n` parameters, `;`, and anything that is
 * not a single expression (ORDER BY, UNION, ... appended to the WHERE).
 */
export function compileRowFilter(text: string): CompileResult {
  if (text.includes('\0')) return fail('row filter contains a NUL character', text.indexOf('\0'));

  const placeholders: Placeholder[] = [];
  const numbers = new Map<string, number>();
  const occurrences: Occurrence[] = [];
  for (const m of text.matchAll(PLACEHOLDER)) {
    const parsed = parsePlaceholder(m[1] ?? '');
    if (typeof parsed === 'string') return fail(parsed, m.index);
    const key = placeholderKey(parsed);
    let param = numbers.get(key);
    if (param === undefined) {
      placeholders.push(parsed);
      param = placeholders.length;
      numbers.set(key, param);
    }
    occurrences.push({ start: m.index, end: m.index + m[0].length, param });
  }
  const stray = /\$\{/.exec(text.replace(PLACEHOLDER, (s) => ' '.repeat(s.length)));
  if (stray) return fail('unterminated placeholder: missing "}"', stray.index);

  // Rewrite to `$n`, remembering where each replacement landed so the scanner
  // can tell whether it is code or inside a literal or comment.
  let sql = '';
  let last = 0;
  const shifts: { readonly newStart: number; readonly origStart: number; readonly delta: number }[] = [];
  const paramAt = new Map<number, Occurrence>();
  for (const occ of occurrences) {
    sql += text.slice(last, occ.start);
    const ref = `$${occ.param}`;
    paramAt.set(sql.length, occ);
    shifts.push({ newStart: sql.length, origStart: occ.start, delta: occ.end - occ.start - ref.length });
    sql += ref;
    last = occ.end;
  }
  sql += text.slice(last);
  const toOriginal = (offset: number): number => {
    let delta = 0;
    for (const s of shifts) {
      if (s.newStart >= offset) break;
      delta += s.delta;
    }
    return Math.max(0, Math.min(text.length, offset + delta));
  };

  let tokens;
  try {
    tokens = scanSync(sql).tokens;
  } catch (err) {
    return fail(`row filter is not valid SQL: ${errorMessage(err)}`, 0);
  }
  const seen = new Set<number>();
  for (const token of tokens) {
    if (token.tokenName === 'PARAM') {
      if (!paramAt.has(token.start)) {
        return fail('row filters cannot use $n parameters; use ${user.name}, ${user.groups} or ${claims.<path>}', toOriginal(token.start));
      }
      seen.add(token.start);
    } else if (token.text === ';' && token.tokenName === 'ASCII_59') {
      return fail('row filters are one expression: ";" is not allowed', toOriginal(token.start));
    }
  }
  for (const [at, occ] of paramAt) {
    if (!seen.has(at)) {
      return fail(
        `placeholder ${text.slice(occ.start, occ.end)} is inside quotes or a comment and would not be substituted; write it as an expression, e.g. col = \${user.name}`,
        occ.start,
      );
    }
  }

  let parsed;
  try {
    parsed = parseSync(WRAPPER + sql);
  } catch (err) {
    const cursor = cursorOf(err);
    return fail(`row filter is not a valid SQL expression: ${errorMessage(err)}`, toOriginal(Math.max(0, cursor - WRAPPER.length)));
  }
  const stmts = parsed.stmts ?? [];
  const select = stmts.length === 1 ? stmts[0]?.stmt : undefined;
  if (!select || !('SelectStmt' in select)) return fail('row filter must be a single boolean expression', 0);
  const stmt = select.SelectStmt;
  if (stmt.op !== 'SETOP_NONE' || Object.keys(stmt).some((k) => !ALLOWED_SELECT_KEYS.has(k)) || !stmt.whereClause) {
    return fail('row filter must be a single boolean expression (no ORDER BY, GROUP BY, LIMIT, UNION, ...)', 0);
  }
  const where = stripLocations(stmt.whereClause);
  if ('A_Const' in where && where.A_Const.boolval === undefined) {
    return fail('row filter must be a boolean expression, not a constant', 0);
  }
  return { ok: true, filter: { text, ast: where, placeholders } };
}

function fail(message: string, offset: number): CompileResult {
  return { ok: false, message, offset };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function cursorOf(err: unknown): number {
  const details = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
  // The WebAssembly build reports a 0-based offset (unlike PostgreSQL's 1-based `position`).
  return typeof details?.cursorPosition === 'number' ? details.cursorPosition : 0;
}

/** The value of one placeholder for an identity. */
export function resolvePlaceholder(p: Placeholder, identity: Identity): PlaceholderValue {
  switch (p.kind) {
    case 'userName':
      return textValue(identity.user, 'user.name');
    case 'userGroups':
      return listValue(identity.groups, 'user.groups');
    case 'claim': {
      const found = lookupClaim(identity.claims, p.path);
      if (!found.found) return { type: 'missing', reason: `claim ${p.path} is missing` };
      const v = found.value;
      if (typeof v === 'string') return textValue(v, `claim ${p.path}`);
      if (typeof v === 'number') {
        return Number.isFinite(v) ? { type: 'numeric', value: v } : { type: 'missing', reason: `claim ${p.path} is not a finite number` };
      }
      if (typeof v === 'boolean') return { type: 'boolean', value: v };
      if (Array.isArray(v)) return listValue(v, `claim ${p.path}`);
      return { type: 'missing', reason: `claim ${p.path} is an object, not a value` };
    }
  }
}

function textValue(value: string, what: string): PlaceholderValue {
  // PostgreSQL text cannot hold NUL; refusing here beats a server error later.
  if (value.includes('\0')) return { type: 'missing', reason: `${what} contains a NUL character` };
  return { type: 'text', value };
}

function listValue(values: readonly unknown[], what: string): PlaceholderValue {
  const out: string[] = [];
  for (const v of values) {
    if (typeof v === 'string') {
      if (v.includes('\0')) return { type: 'missing', reason: `${what} contains a NUL character` };
      out.push(v);
    } else if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') {
      out.push(String(v));
    } else {
      return { type: 'missing', reason: `${what} holds a value that is not a string, number or boolean` };
    }
  }
  return { type: 'textArray', value: out };
}

/** A copy of a parse tree without source positions, which mean nothing once spliced elsewhere. */
export function stripLocations<T>(node: T): T {
  if (Array.isArray(node)) return node.map((n: unknown) => stripLocations(n)) as T;
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'location' || k === 'list_start' || k === 'list_end' || k === 'stmt_location' || k === 'stmt_len') continue;
    out[k] = stripLocations(v);
  }
  return out as T;
}
