/**
 * Masks as SQL: for a mask and a column (reference and type), the expression
 * that replaces the column inside the protected subquery.
 *
 * Rules the expressions follow:
 * - only schema-qualified pg_catalog functions, operators (`OPERATOR(pg_catalog.||)`)
 *   and types, so a client-controlled search_path cannot substitute its own;
 * - the result has the column's type (cast back when the function returns
 *   another type), so a masked column keeps its name, position and type;
 * - NULL stays NULL;
 * - text masks work per character by code point (translate, and regexes over
 *   explicit code-point ranges), never by locale character classes: under the
 *   C collation `[[:alpha:]]` does not match `é`, and a mask must not leak
 *   what a locale fails to classify. ASCII letters and digits are masked by
 *   kind; every non-ASCII character counts as maskable and becomes `x` / the
 *   mask character; ASCII punctuation, spaces and control characters are the
 *   kept "separators".
 *
 * The parser must be loaded (`loadSqlParser()` in placeholders.ts) before use.
 */
import { parseSync } from 'libpg-query';
import type { Node } from 'libpg-query';
import { QuoteUtils } from 'pgsql-deparser';
import type { MaskSpec } from '../policy/schema.js';
import { stripLocations } from '../policy/row-filter.js';

/** A column type as the catalog names it (pg_type.typname and its schema). */
export interface ColumnType {
  readonly name: string;
  /** Defaults to pg_catalog. */
  readonly schema?: string;
  readonly array?: boolean;
}

export type TypeCategory = 'text' | 'numeric' | 'boolean' | 'datetime' | 'other';

export type MaskSqlResult =
  | { readonly ok: true; readonly sql: string; readonly ast: Node }
  | { readonly ok: false; readonly error: string };

// SQL spellings that the grammar maps to pg_catalog type names.
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  integer: 'int4',
  int: 'int4',
  smallint: 'int2',
  bigint: 'int8',
  real: 'float4',
  'double precision': 'float8',
  float: 'float8',
  decimal: 'numeric',
  dec: 'numeric',
  boolean: 'bool',
  'character varying': 'varchar',
  character: 'bpchar',
  'timestamp with time zone': 'timestamptz',
  'timestamp without time zone': 'timestamp',
  'time with time zone': 'timetz',
  'time without time zone': 'time',
};

const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'name']);
const NUMERIC_TYPES = new Set(['int2', 'int4', 'int8', 'numeric', 'float4', 'float8', 'money', 'oid']);
const INTEGER_TYPES = new Set(['int2', 'int4', 'int8', 'oid']);
const DATETIME_TYPES = new Set(['date', 'timestamp', 'timestamptz']);

/**
 * Reads a type as a catalog or a person writes it: `varchar`, `character
 * varying(20)`, `int4`, `integer`, `timestamp(3) with time zone`, `text[]`,
 * `_text` (the catalog name of text[]), `public.citext`. Type modifiers are
 * dropped: masks keep the type, not its length limit. As in SQL, unquoted
 * `char` is bpchar; write `"char"` (or pass `{ name: 'char' }`, the catalog
 * name) for the one-byte type.
 */
export function parseColumnType(text: string): ColumnType {
  let t = text.trim().replace(/\s*\([^)]*\)/g, '').replace(/\s+/g, ' ');
  let array = false;
  while (t.endsWith('[]')) {
    array = true;
    t = t.slice(0, -2).trim();
  }
  let schema: string | undefined;
  const dot = t.indexOf('.');
  if (dot > 0 && !t.startsWith('"')) {
    schema = t.slice(0, dot);
    t = t.slice(dot + 1);
  }
  let name = t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t.toLowerCase();
  if (schema === undefined || schema === 'pg_catalog') {
    // Written unquoted, `char` / `char(n)` is SQL's character(n); only `"char"` is the one-byte type.
    name = t === 'char' || t === 'CHAR' ? 'bpchar' : (TYPE_ALIASES[name] ?? name);
    if (!array && name.length > 1 && name.startsWith('_')) {
      array = true;
      name = name.slice(1);
    }
  }
  return { name, ...(schema !== undefined && schema !== 'pg_catalog' ? { schema } : {}), ...(array ? { array } : {}) };
}

function normalizeType(type: ColumnType | string): ColumnType {
  if (typeof type === 'string') return parseColumnType(type);
  if (type.schema !== undefined && type.schema !== 'pg_catalog') return type;
  const name = TYPE_ALIASES[type.name] ?? type.name;
  return { name, ...(type.array ? { array: true } : {}) };
}

/** The mask-relevant kind of a type. citext counts as text in whatever schema it lives. */
export function typeCategory(type: ColumnType | string): TypeCategory {
  const t = normalizeType(type);
  if (t.array) return 'other';
  const builtin = t.schema === undefined || t.schema === 'pg_catalog';
  if (t.name === 'citext' || (builtin && TEXT_TYPES.has(t.name))) return 'text';
  if (!builtin) return 'other';
  if (NUMERIC_TYPES.has(t.name)) return 'numeric';
  if (t.name === 'bool') return 'boolean';
  if (DATETIME_TYPES.has(t.name)) return 'datetime';
  return 'other';
}

/** `pg_catalog.varchar`, `pg_catalog."char"`, `public.citext`, `pg_catalog.text[]`. */
export function typeSql(type: ColumnType | string): string {
  const t = normalizeType(type);
  const schema = t.schema ?? 'pg_catalog';
  return `${QuoteUtils.quoteIdentifier(schema)}.${QuoteUtils.quoteIdentifierAfterDot(t.name)}${t.array ? '[]' : ''}`;
}

/** A string constant; E'' form when it holds backslashes, so standard_conforming_strings does not matter. */
export function sqlString(value: string): string {
  if (value.includes('\0')) throw new Error('SQL strings cannot contain NUL');
  const quoted = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}

/** `"t"."col"`-style reference with each part quoted only when needed. */
export function columnRefSql(column: readonly string[]): string {
  if (column.length === 0) throw new Error('empty column reference');
  return QuoteUtils.quoteDottedName([...column]);
}

// Character classes by code point. NUL cannot occur in text.
const SEPARATOR = '[\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]';
const MASKABLE = '[^\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]';
const NON_ASCII = '[^\\x01-\\x7f]';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const FULL_FROM = UPPER + LOWER + DIGITS;
const FULL_TO = 'X'.repeat(UPPER.length) + 'x'.repeat(LOWER.length) + '0'.repeat(DIGITS.length);

/** The text of a value of a text-family column, as pg_catalog.text. */
function asText(ref: string, type: ColumnType): string {
  return type.name === 'text' && type.schema === undefined ? ref : `${ref}::pg_catalog.text`;
}

/** Casts a pg_catalog.text expression back to the column's type (nothing for text). */
function castBack(expr: string, type: ColumnType): string {
  return type.name === 'text' && type.schema === undefined && !type.array ? expr : `(${expr})::${typeSql(type)}`;
}

function fullText(text: string): string {
  return `pg_catalog.regexp_replace(pg_catalog.translate(${text}, '${FULL_FROM}', '${FULL_TO}'), ${sqlString(NON_ASCII)}, 'x', 'g')`;
}

/** The regex for `partial`: a maskable character with enough maskable ones before and after it. */
export function partialPattern(showFirst: number, showLast: number): string {
  const before = showFirst > 0 ? `(?<=(?:${MASKABLE}${SEPARATOR}*){${showFirst}})` : '';
  const after = showLast > 0 ? `(?=(?:${SEPARATOR}*${MASKABLE}){${showLast}})` : '';
  return `${before}${MASKABLE}${after}`;
}

function requireCategory(mask: MaskSpec, type: ColumnType, allowed: readonly TypeCategory[], what: string): string | undefined {
  const category = typeCategory(type);
  return allowed.includes(category) ? undefined : `${mask.type} masks apply to ${what} columns, not ${typeSql(type)}`;
}

const NUMERIC_LITERAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function constantError(value: string | number | boolean, type: ColumnType): string | undefined {
  const category = typeCategory(type);
  const shown = JSON.stringify(value);
  if (typeof value === 'string' && value.includes('\0')) return 'constant mask values cannot contain NUL';
  switch (category) {
    case 'text':
      return undefined;
    case 'numeric': {
      const text = typeof value === 'number' ? String(value) : value;
      if (typeof value === 'boolean' || !NUMERIC_LITERAL.test(String(text)) || (typeof value === 'number' && !Number.isFinite(value))) {
        return `constant ${shown} is not a number, but the column is ${typeSql(type)}`;
      }
      if (INTEGER_TYPES.has(type.name) && !/^[+-]?\d+$/.test(String(text))) {
        return `constant ${shown} is not an integer, but the column is ${typeSql(type)}`;
      }
      return undefined;
    }
    case 'boolean':
      return typeof value === 'boolean' || value === 'true' || value === 'false'
        ? undefined
        : `constant ${shown} is not a boolean, but the column is ${typeSql(type)}`;
    default:
      return typeof value === 'string' ? undefined : `constant ${shown} must be written as a string for a ${typeSql(type)} column`;
  }
}

/** Why the mask cannot apply to a column of this type, or undefined when it fits. */
export function maskTypeError(mask: MaskSpec, columnType: ColumnType | string): string | undefined {
  const type = normalizeType(columnType);
  switch (mask.type) {
    case 'none':
    case 'null':
    case 'full':
      return undefined;
    case 'partial':
      return requireCategory(mask, type, ['text'], 'text');
    case 'emailDomain':
      return requireCategory(mask, type, ['text'], 'text');
    case 'hash':
      return requireCategory(mask, type, ['text'], 'text');
    case 'regex':
      return requireCategory(mask, type, ['text'], 'text');
    case 'dateYear':
      return requireCategory(mask, type, ['datetime'], 'date or timestamp');
    case 'constant':
      return constantError(mask.value, type);
  }
}

/** SQL text of the mask expression for `ref`, a rendered column reference. Assumes the mask fits. */
function maskText(mask: MaskSpec, ref: string, type: ColumnType): string {
  const text = typeCategory(type) === 'text';
  switch (mask.type) {
    case 'none':
      return ref;
    case 'null':
      return `NULL::${typeSql(type)}`;
    case 'full':
      return text ? castBack(fullText(asText(ref, type)), type) : `NULL::${typeSql(type)}`;
    case 'partial': {
      const pattern = partialPattern(mask.showFirst ?? 0, mask.showLast ?? 0);
      // In a regexp_replace replacement only the backslash is special.
      const replacement = (mask.char ?? 'X').replaceAll('\\', '\\\\');
      return castBack(`pg_catalog.regexp_replace(${asText(ref, type)}, ${sqlString(pattern)}, ${sqlString(replacement)}, 'g')`, type);
    }
    case 'emailDomain': {
      const v = asText(ref, type);
      // Everything after the last '@' is the domain; split_part on the reversed value finds it without a regex.
      const domain = `pg_catalog.reverse(pg_catalog.split_part(pg_catalog.reverse(${v}), '@', 1))`;
      return castBack(
        `CASE WHEN pg_catalog.strpos(${v}, '@') OPERATOR(pg_catalog.>) 0 THEN 'xxxxx@' OPERATOR(pg_catalog.||) ${domain} ELSE ${fullText(v)} END`,
        type,
      );
    }
    case 'hash':
      return castBack(
        `pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(${sqlString(mask.salt)} OPERATOR(pg_catalog.||) ${asText(ref, type)}, 'UTF8')), 'hex')`,
        type,
      );
    case 'constant':
      return `CASE WHEN ${ref} IS NULL THEN NULL ELSE ${sqlString(String(mask.value))}::${typeSql(type)} END`;
    case 'dateYear':
      return type.name === 'date'
        ? `pg_catalog.date_trunc('year', ${ref}::pg_catalog.timestamp)::pg_catalog.date`
        : `pg_catalog.date_trunc('year', ${ref})`;
    case 'regex':
      return castBack(
        `pg_catalog.regexp_replace(${asText(ref, type)}, ${sqlString(mask.pattern)}, ${sqlString(mask.replace)}, ${sqlString(mask.flags ?? 'g')})`,
        type,
      );
  }
}

/**
 * The masked expression for a column: SQL text and the parsed expression node
 * (locations stripped) to splice into a rewritten statement. `column` is the
 * reference as name parts, e.g. `['c', 'ssn']`; `type` is the column's type.
 * Returns an error value when the mask does not fit the type.
 */
export function maskSql(mask: MaskSpec, column: readonly string[], columnType: ColumnType | string): MaskSqlResult {
  const type = normalizeType(columnType);
  const error = maskTypeError(mask, type);
  if (error !== undefined) return { ok: false, error };
  let sql: string;
  try {
    sql = maskText(mask, columnRefSql(column), type);
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  let parsed;
  try {
    parsed = parseSync(`SELECT ${sql}`);
  } catch (err) {
    return { ok: false, error: `mask expression does not parse: ${err instanceof Error ? err.message : String(err)}` };
  }
  const stmt = parsed.stmts?.[0]?.stmt;
  const target = stmt && 'SelectStmt' in stmt ? stmt.SelectStmt.targetList?.[0] : undefined;
  const val = target && 'ResTarget' in target ? target.ResTarget.val : undefined;
  if (parsed.stmts?.length !== 1 || !val) return { ok: false, error: 'mask expression is not a single expression' };
  return { ok: true, sql, ast: stripLocations(val) };
}
