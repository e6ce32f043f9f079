/**
 * What the policies do to one relation for one identity: may it be read (or
 * written), which rows (row filters), which columns are refused, masked or
 * encrypted, and the SQL of the subquery that stands in for a protected
 * reference:
 *
 *   SELECT <col or mask(col)> AS <name>, ... FROM [ONLY] schema.table AS <internal>
 *   WHERE (<filter>) AND (<filter>) OFFSET 0
 *
 * Partitions and inheritance children queried directly also get their
 * ancestors' policies: access is granted by the nearest levels with rules of
 * their own (a child without rules is governed by its parent), any explicit
 * deny at any level refuses, and row filters, column denies, masks and
 * encryption of every level apply together.
 */
import type { Node } from 'libpg-query';
import { QuoteUtils } from 'pgsql-deparser';
import type { Identity } from '../auth/identity.js';
import {
  columnAccess,
  encryptionFor,
  maskFor,
  tableAccess,
  type PolicyContext,
  type RowFilter,
  type TableDecision,
} from '../policy/decide.js';
import type { PolicyBundle } from '../policy/load.js';
import type { Action, MaskSpec } from '../policy/schema.js';
import { isBlockedRelation, SYSTEM_SCHEMAS } from './blocked.js';
import { ancestors, type Catalog, type CatalogColumn, type CatalogRelation } from './catalog.js';
import { deparseExpression } from './deparse.js';
import { maskSql, type ColumnType } from './mask-sql.js';
import { renderRowFilter } from './placeholders.js';
import { privilege, RewriteSqlState, refuse, type Denial } from './refusal.js';

export interface PolicyInput {
  readonly policy: PolicyContext;
  readonly bundle: PolicyBundle;
  readonly identity: Identity;
  readonly catalog: Catalog;
  readonly searchPath: readonly string[];
}

export interface ColumnPolicy {
  readonly column: CatalogColumn;
  /** Set when any reference to the column must be refused. */
  readonly denied?: Denial;
  /** The mask rule(s) applied, joined with `+` when ancestors add theirs. */
  readonly maskRule?: string;
  /** SQL replacing the column inside the subquery (absent: the column itself). */
  readonly maskSql?: string;
  readonly encrypted: boolean;
}

export interface Protection {
  readonly relation: CatalogRelation;
  /** By catalog column name, in attnum order. */
  readonly columns: ReadonlyMap<string, ColumnPolicy>;
  readonly hasDenied: boolean;
  /** Rendered row filters (SQL over the unqualified or internally qualified columns). */
  readonly filters: readonly { readonly rule: string; readonly sql: string; readonly failClosed?: string }[];
  /** True when the reference must become a subquery. */
  readonly protected: boolean;
  /** System relations are left alone (metadata), apart from the blocked list. */
  readonly system: boolean;
}

const INNER = '__pgward_inner__';

function tableName(rel: { schema: string; name: string }): string {
  return `${rel.schema}.${rel.name}`;
}

function refusal(verdict: TableDecision): never {
  return privilege(verdict.message ?? 'permission denied', verdict.rule);
}

/** True when an applicable allow rule names the relation without globs (views and foreign tables need that). */
function namedExplicitly(ctx: PolicyContext, rel: CatalogRelation): boolean {
  const exact = (p: readonly string[]): boolean => p.length >= 2 && p[0] === rel.schema && p[1] === rel.name && !p.slice(0, 2).some((x) => x.includes('*'));
  return ctx.rules.some((r) => r.rule.effect === 'allow' && (r.tables.some(exact) || r.columns.some(exact)));
}

const KIND_WORDS: Readonly<Record<CatalogRelation['kind'], string>> = {
  table: 'table',
  partitioned: 'table',
  view: 'view',
  matview: 'materialized view',
  foreign: 'foreign table',
  other: 'relation',
};

export interface ChainAccess {
  /** The levels whose rules decide (the relation, or the ancestors that have rules of their own). */
  readonly applying: readonly CatalogRelation[];
  readonly levels: readonly CatalogRelation[];
  /** Row filters of the applying levels, each with the level whose rule it is. */
  readonly filters: readonly { readonly filter: RowFilter; readonly owner: CatalogRelation }[];
}

/**
 * Table access for an action along the inheritance chain. Refuses (throws)
 * when any level has an explicit deny, or when no level grants and the
 * relation's own default denies.
 */
export function chainAccess(input: PolicyInput, rel: CatalogRelation, action: Action): ChainAccess {
  const ctx = input.policy;
  if (rel.kind !== 'table' && rel.kind !== 'partitioned' && !namedExplicitly(ctx, rel)) {
    privilege(`${KIND_WORDS[rel.kind]} ${tableName(rel)} is not available to restricted identities unless a policy rule names it`);
  }
  const levels = [rel, ...ancestors(input.catalog, rel)];
  const verdicts = levels.map((l) => tableAccess(ctx, { schema: l.schema, table: l.name }, action));
  const explicitDeny = verdicts.find((v) => v.effect === 'deny' && v.rule !== undefined);
  if (explicitDeny) refusal(explicitDeny);
  const explicit = levels.flatMap((l, i) => (verdicts[i]?.effect === 'allow' && verdicts[i]?.rule !== undefined ? [{ l, v: verdicts[i] as TableDecision }] : []));
  if (explicit.length === 0) {
    const own = verdicts[0] as TableDecision;
    if (own.effect === 'deny') refusal(own);
    return { applying: [rel], levels, filters: [] };
  }
  const seen = new Set<string>();
  const filters: { filter: RowFilter; owner: CatalogRelation }[] = [];
  for (const { l, v } of explicit) {
    for (const f of v.rowFilters) {
      const key = `${f.policySet}/${f.rule}`;
      if (!seen.has(key)) {
        seen.add(key);
        filters.push({ filter: f, owner: l });
      }
    }
  }
  return { applying: explicit.map((e) => e.l), levels, filters };
}

/** The column's denial for `action` at any applying level, if any. */
export function columnDenial(input: PolicyInput, access: ChainAccess, column: string, action: Action): Denial | undefined {
  for (const level of access.applying) {
    if (!level.columns.some((c) => c.name === column)) continue;
    const d = columnAccess(input.policy, { schema: level.schema, table: level.name, column }, action);
    if (d.effect === 'deny') {
      return {
        sqlstate: RewriteSqlState.InsufficientPrivilege,
        message: d.message ?? `permission denied for column ${column} of table ${tableName(level)}`,
        ...(d.rule !== undefined ? { rule: d.rule } : {}),
      };
    }
  }
  return undefined;
}

function columnType(c: CatalogColumn): ColumnType {
  return { name: c.typeName, ...(c.typeSchema !== 'pg_catalog' ? { schema: c.typeSchema } : {}), ...(c.typeIsArray ? { array: true } : {}) };
}

function substitute(node: unknown, replacement: Node): unknown {
  if (Array.isArray(node)) return node.map((n) => substitute(n, replacement));
  if (typeof node !== 'object' || node === null) return node;
  const record = node as Record<string, unknown>;
  const ref = record['ColumnRef'] as { fields?: { String?: { sval?: string } }[] } | undefined;
  if (ref && ref.fields?.length === 1 && ref.fields[0]?.String?.sval === INNER) return structuredClone(replacement);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) out[k] = substitute(v, replacement);
  return out;
}

interface MaskChoice {
  readonly mask: MaskSpec;
  readonly rule: string;
  readonly policySet: string | undefined;
}

/** The masks of a column along the chain, nearest first, each rule once. */
function masksOf(input: PolicyInput, levels: readonly CatalogRelation[], column: string): MaskChoice[] {
  const out: MaskChoice[] = [];
  const seen = new Set<string>();
  for (const level of levels) {
    if (!level.columns.some((c) => c.name === column)) continue;
    const m = maskFor(input.policy, { schema: level.schema, table: level.name, column });
    if (!m.mask || m.rule === undefined) continue;
    const key = `${m.policySet ?? ''}/${m.rule}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ mask: m.mask, rule: m.rule, policySet: m.policySet });
  }
  return out;
}

/** The SQL of the masks applied in turn (nearest level first) to `<internal>.<column>`. */
function maskExpression(rel: CatalogRelation, column: CatalogColumn, masks: readonly MaskChoice[], internal: string): string {
  let expr: Node | undefined;
  for (const m of masks) {
    const result = maskSql(m.mask, expr ? [INNER] : [internal, column.name], columnType(column));
    if (!result.ok) {
      privilege(`policy mask ${m.rule} does not fit column ${tableName(rel)}.${column.name} (${column.type}): ${result.error}`, m.rule);
    }
    expr = expr ? (substitute(result.ast, expr) as Node) : result.ast;
  }
  return deparseExpression(expr as Node);
}

/** Renames `owner.col` / `schema.owner.col` references of an ancestor's filter to the internal alias. */
function requalify(node: unknown, owner: CatalogRelation, internal: string): unknown {
  if (Array.isArray(node)) return node.map((n) => requalify(n, owner, internal));
  if (typeof node !== 'object' || node === null) return node;
  const record = node as Record<string, unknown>;
  const ref = record['ColumnRef'] as { fields?: { String?: { sval?: string } }[] } | undefined;
  if (ref?.fields) {
    const names = ref.fields.map((f) => f.String?.sval);
    if (names.length === 2 && names[0] === owner.name) {
      return { ColumnRef: { ...ref, fields: [{ String: { sval: internal } }, ...ref.fields.slice(1)] } };
    }
    if (names.length === 3 && names[0] === owner.schema && names[1] === owner.name) {
      return { ColumnRef: { ...ref, fields: [{ String: { sval: internal } }, ...ref.fields.slice(2)] } };
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) out[k] = requalify(v, owner, internal);
  return out;
}

/**
 * Everything the select policies do to a relation for this identity.
 * Throws a Refusal when the relation may not be read at all.
 */
export function readProtection(input: PolicyInput, rel: CatalogRelation): Protection {
  if (SYSTEM_SCHEMAS.has(rel.schema) || isBlockedRelation(rel.schema, rel.name)) {
    if (isBlockedRelation(rel.schema, rel.name)) {
      privilege(`${tableName(rel)} is not readable by restricted identities: it reveals data values or other sessions' statements`);
    }
    // Metadata stays readable; only an explicit deny rule closes it.
    const verdict = tableAccess(input.policy, { schema: rel.schema, table: rel.name }, 'select');
    if (verdict.effect === 'deny' && verdict.rule !== undefined) refusal(verdict);
    const columns = new Map(rel.columns.map((c) => [c.name, { column: c, encrypted: false }] as const));
    return { relation: rel, columns, hasDenied: false, filters: [], protected: false, system: true };
  }
  const access = chainAccess(input, rel, 'select');
  const internal = rel.name;
  const columns = new Map<string, ColumnPolicy>();
  let hasDenied = false;
  let anyMaskOrEncrypted = false;
  for (const column of rel.columns) {
    const denied = columnDenial(input, access, column.name, 'select');
    const encrypted = access.levels.some((l) => encryptionFor(input.bundle, { schema: l.schema, table: l.name, column: column.name }) !== undefined);
    const masks = denied ? [] : masksOf(input, access.levels, column.name);
    const maskRule = masks.length > 0 ? masks.map((m) => m.rule).join('+') : undefined;
    // Ciphertext is never masked in SQL: the result stage decrypts, then masks per policy.
    const sql = masks.length > 0 && !encrypted ? maskExpression(rel, column, masks, internal) : undefined;
    if (denied) hasDenied = true;
    if (masks.length > 0 || encrypted) anyMaskOrEncrypted = true;
    columns.set(column.name, {
      column,
      ...(denied ? { denied } : {}),
      ...(maskRule !== undefined ? { maskRule } : {}),
      ...(sql !== undefined ? { maskSql: sql } : {}),
      encrypted,
    });
  }
  const filters = access.filters.map(({ filter, owner }) => {
    const rendered = renderRowFilter(filter.compiled, input.identity);
    // An ancestor's filter may qualify columns with the ancestor's name; inside the subquery that is the internal alias.
    const sql = owner.oid !== rel.oid && rendered.failClosed === undefined ? deparseExpression(requalify(rendered.ast, owner, internal) as Node) : rendered.sql;
    return { rule: filter.rule, sql, ...(rendered.failClosed !== undefined ? { failClosed: rendered.failClosed } : {}) };
  });
  return {
    relation: rel,
    columns,
    hasDenied,
    filters,
    protected: hasDenied || anyMaskOrEncrypted || filters.length > 0,
    system: false,
  };
}

/**
 * May this identity write (`action`) to the relation, unchanged? Writes with
 * anything to enforce on the target are a later feature: refused with 0A000.
 * `reads`: the statement also reads the target's rows (WHERE, RETURNING,
 * ON CONFLICT, MERGE), so its select policies must be clear too.
 */
export function checkWriteTarget(input: PolicyInput, rel: CatalogRelation, actions: readonly Action[], reads: boolean, command: string): void {
  const notYet = (why: string): never =>
    refuse(RewriteSqlState.FeatureNotSupported, `${command} on ${tableName(rel)} is not supported yet for restricted identities: ${why}`);
  for (const action of actions) {
    const access = chainAccess(input, rel, action);
    if (access.filters.length > 0) notYet(`a row filter applies to ${action}`);
    for (const column of rel.columns) {
      if (columnDenial(input, access, column.name, action)) notYet(`column ${column.name} is denied`);
    }
  }
  const levels = [rel, ...ancestors(input.catalog, rel)];
  for (const column of rel.columns) {
    if (masksOf(input, levels, column.name).length > 0) notYet(`column ${column.name} is masked`);
    if (levels.some((l) => encryptionFor(input.bundle, { schema: l.schema, table: l.name, column: column.name }))) notYet(`column ${column.name} is encrypted`);
  }
  if (reads) {
    const read = readProtection(input, rel);
    if (read.protected) notYet('it reads rows or columns the policies protect');
  }
}

const q = (name: string): string => QuoteUtils.quoteIdentifier(name);

/**
 * SQL of the subquery standing in for a protected reference. `names` are the
 * visible column names (alias column lists applied), by catalog position.
 */
export function protectedSubquerySql(p: Protection, options: { only: boolean; names: readonly string[] }): string {
  const rel = p.relation;
  const internal = rel.name;
  const items: string[] = [];
  rel.columns.forEach((c, i) => {
    const policy = p.columns.get(c.name);
    if (policy?.denied) return;
    const expr = policy?.maskSql ?? `${q(internal)}.${q(c.name)}`;
    items.push(`${expr} AS ${q(options.names[i] ?? c.name)}`);
  });
  const where = p.filters.map((f) => `(${f.failClosed !== undefined ? 'false' : f.sql})`).join(' AND ');
  return (
    `SELECT ${items.join(', ')} FROM ${options.only ? 'ONLY ' : ''}${q(rel.schema)}.${q(rel.name)} AS ${q(internal)}` +
    `${where ? ` WHERE ${where}` : ''} OFFSET 0`
  );
}
