/**
 * Pure policy evaluation for one identity.
 *
 * `createPolicyContext` does the per-identity work once (which subjects match,
 * hence which rules and masks apply); the query functions then answer per
 * table, column and statement. Semantics (see POLICY-FORMAT.md):
 *
 * - rules of all PolicySets are pooled: a matching deny wins, else a matching
 *   allow, else the default, which is `deny` if any PolicySet says so;
 * - row filters of every matching allow rule for the table are AND-ed;
 * - table access comes from `tables` resources; `columns` / `classes` refine
 *   column access (deny them; or, like PostgreSQL column privileges, an allow
 *   on columns alone opens the table for those columns only);
 * - `decrypt` is only ever granted by a rule that names it (`all` and the
 *   default do not include it);
 * - PolicySets with `enforcement: audit` never change what is enforced: each
 *   decision is computed from enforce-mode sets, and when audit-mode sets would
 *   decide differently, `enforcement` is `audit` and `audit` says how.
 */
import { createHash } from 'node:crypto';
import type { Identity } from '../auth/identity.js';
import { rowFilterKey, type PolicyBundle } from './load.js';
import { classPatternMatches, partsMatch, splitQualifiedName } from './names.js';
import { type Action, type EncryptedColumn, type Enforcement, type KeyRing, type MaskSpec, type Rule } from './schema.js';
import { placeholderKey, resolvePlaceholder, type CompiledRowFilter, type PlaceholderValue } from './row-filter.js';
import { appliesTo, matchingSubjects } from './subjects.js';

export type Effect = 'allow' | 'deny';

export interface TableRef {
  readonly schema: string;
  readonly table: string;
}

export interface ColumnRef extends TableRef {
  readonly column: string;
}

/** A row filter to AND into a table reference; render it with renderRowFilter(). */
export interface RowFilter {
  readonly policySet: string;
  readonly rule: string;
  readonly text: string;
  readonly compiled: CompiledRowFilter;
  readonly enforcement: Enforcement;
}

/** SQLSTATE insufficient_privilege, as PostgreSQL reports refused access. */
export const INSUFFICIENT_PRIVILEGE = '42501';

interface Verdict {
  readonly effect: Effect;
  /** The deciding rule: the first matching deny, or the first matching allow; absent when the default decided. */
  readonly rule?: string;
  readonly policySet?: string;
  /** For denials: the rule's message, or a PostgreSQL-style default. */
  readonly message?: string;
  readonly sqlstate?: typeof INSUFFICIENT_PRIVILEGE;
}

export interface AccessVerdict extends Verdict {
  readonly rowFilters: readonly RowFilter[];
  /** The table is open only through column-level allows: unlisted columns are denied. */
  readonly columnsRestricted?: boolean;
}

export interface TableDecision extends AccessVerdict {
  /** `audit` when audit-mode PolicySets would decide differently: log `audit`, enforce the rest. */
  readonly enforcement: Enforcement;
  readonly audit?: AccessVerdict;
}

export interface ColumnDecision extends Verdict {
  readonly enforcement: Enforcement;
  readonly audit?: Verdict;
}

export type MaskSpecificity = 'column' | 'class' | 'wildcard';

export interface MaskVerdict {
  /** The mask to apply; undefined when the column is unmasked (no mask, or `type: none` won). */
  readonly mask?: MaskSpec;
  readonly rule?: string;
  readonly policySet?: string;
  readonly specificity?: MaskSpecificity;
}

export interface MaskDecision extends MaskVerdict {
  readonly enforcement: Enforcement;
  readonly audit?: MaskVerdict;
}

export interface EncryptionInfo extends EncryptedColumn {
  readonly keyRing: string;
  readonly whenNotGranted: KeyRing['spec']['whenNotGranted'];
  readonly dataKeys: string;
}

// ---------------------------------------------------------------------------
// Bundle preparation (once per bundle, shared by every context)

export interface PreparedRule {
  readonly order: number;
  readonly policySet: string;
  readonly enforcement: Enforcement;
  readonly rule: Rule;
  readonly actions: ReadonlySet<Action>;
  readonly tables: readonly (readonly string[])[];
  readonly columns: readonly (readonly string[])[];
  readonly classes: readonly string[];
  readonly rowFilter?: RowFilter;
}

export interface PreparedMask {
  readonly order: number;
  readonly policySet: string;
  readonly enforcement: Enforcement;
  readonly name: string;
  readonly subjects: readonly string[];
  readonly except: readonly string[] | undefined;
  readonly mask: MaskSpec;
  readonly priority: number;
  readonly tables: readonly (readonly string[])[];
  readonly columns: readonly (readonly string[])[];
  readonly classes: readonly string[];
}

interface PreparedBundle {
  readonly rules: readonly PreparedRule[];
  readonly masks: readonly PreparedMask[];
  readonly classifications: readonly { readonly match: readonly string[]; readonly classes: readonly string[] }[];
  readonly encrypted: ReadonlyMap<string, EncryptionInfo>;
  readonly enforceSets: number;
  readonly auditSets: number;
  readonly enforceDefault: Effect;
  readonly allDefault: Effect;
}

const prepared = new WeakMap<PolicyBundle, PreparedBundle>();

function parts(pattern: string): readonly string[] {
  // Schema validation guarantees well-formed names; fall back to a never-matching pattern.
  return splitQualifiedName(pattern) ?? ['\0'];
}

function prepare(bundle: PolicyBundle): PreparedBundle {
  const cached = prepared.get(bundle);
  if (cached) return cached;
  const rules: PreparedRule[] = [];
  const masks: PreparedMask[] = [];
  let enforceSets = 0;
  let auditSets = 0;
  let enforceDeny = false;
  let anyDeny = false;
  for (const set of bundle.policySets) {
    const policySet = set.metadata.name;
    const enforcement = set.spec.enforcement;
    if (enforcement === 'enforce') enforceSets++;
    else auditSets++;
    if (set.spec.defaultAction === 'deny') {
      anyDeny = true;
      if (enforcement === 'enforce') enforceDeny = true;
    }
    for (const rule of set.spec.rules) {
      const compiled = rule.rowFilter === undefined ? undefined : bundle.rowFilters.get(rowFilterKey(policySet, rule.name));
      if (rule.rowFilter !== undefined && compiled === undefined) {
        throw new Error(`row filter of ${policySet}/${rule.name} was not compiled; load policies with loadPolicySources()`);
      }
      rules.push({
        order: rules.length,
        policySet,
        enforcement,
        rule,
        actions: new Set(rule.actions ?? ['all']),
        tables: (rule.resources.tables ?? []).map(parts),
        columns: (rule.resources.columns ?? []).map(parts),
        classes: rule.resources.classes ?? [],
        ...(rule.rowFilter !== undefined && compiled !== undefined
          ? { rowFilter: { policySet, rule: rule.name, text: rule.rowFilter, compiled, enforcement } }
          : {}),
      });
    }
    for (const mask of set.spec.masks) {
      masks.push({
        order: masks.length,
        policySet,
        enforcement,
        name: mask.name,
        subjects: mask.subjects,
        except: mask.except,
        mask: mask.mask,
        priority: mask.mask.priority ?? 0,
        tables: (mask.resources.tables ?? []).map(parts),
        columns: (mask.resources.columns ?? []).map(parts),
        classes: mask.resources.classes ?? [],
      });
    }
  }
  const encrypted = new Map<string, EncryptionInfo>();
  for (const ring of bundle.keyRings) {
    for (const col of ring.spec.encryptedColumns) {
      encrypted.set(parts(col.column).join('\0'), {
        ...col,
        keyRing: ring.metadata.name,
        whenNotGranted: ring.spec.whenNotGranted,
        dataKeys: ring.spec.dataKeys,
      });
    }
  }
  const result: PreparedBundle = {
    rules,
    masks,
    classifications: bundle.classifications.flatMap((c) => c.spec.columns.map((e) => ({ match: parts(e.match), classes: e.classes }))),
    encrypted,
    enforceSets,
    auditSets,
    // With only audit-mode sets nothing is enforced; with no sets at all, fail closed.
    enforceDefault: enforceSets === 0 ? (auditSets > 0 ? 'allow' : 'deny') : enforceDeny ? 'deny' : 'allow',
    allDefault: enforceSets + auditSets === 0 || anyDeny ? 'deny' : 'allow',
  };
  prepared.set(bundle, result);
  return result;
}

// ---------------------------------------------------------------------------
// Context

export interface PolicyContext {
  readonly identity: Identity;
  readonly version: string;
  readonly bundle: PolicyBundle;
  /** For each PolicySet (by name): the names of its subjects this identity matches. */
  readonly subjects: ReadonlyMap<string, ReadonlySet<string>>;
  /** Rules whose subjects (minus except) include this identity, in load order. */
  readonly rules: readonly PreparedRule[];
  /** Masks whose subjects (minus except) include this identity, in load order. */
  readonly masks: readonly PreparedMask[];
}

/** Evaluates which subjects, rules and masks apply to an identity. */
export function createPolicyContext(bundle: PolicyBundle, identity: Identity, version: string): PolicyContext {
  const p = prepare(bundle);
  const subjects = new Map<string, ReadonlySet<string>>();
  for (const set of bundle.policySets) subjects.set(set.metadata.name, matchingSubjects(set.spec.subjects, identity));
  const matched = (policySet: string): ReadonlySet<string> => subjects.get(policySet) ?? new Set();
  return {
    identity,
    version,
    bundle,
    subjects,
    rules: p.rules.filter((r) => appliesTo(r.rule.subjects, r.rule.except, matched(r.policySet))),
    masks: p.masks.filter((m) => appliesTo(m.subjects, m.except, matched(m.policySet))),
  };
}

function actionMatches(rule: PreparedRule, action: Action): boolean {
  if (rule.actions.has(action)) return true;
  // `all` grants every action except decrypt, which is granted only by name;
  // in a deny rule `all` means everything, decrypt included.
  return rule.actions.has('all') && (action !== 'decrypt' || rule.rule.effect === 'deny');
}

function coversTable(patterns: readonly (readonly string[])[], t: TableRef): boolean {
  return patterns.some((p) => partsMatch(p, [t.schema, t.table]));
}

function coversColumn(patterns: readonly (readonly string[])[], c: ColumnRef): boolean {
  return patterns.some((p) => partsMatch(p, [c.schema, c.table, c.column]));
}

function coversClass(patterns: readonly string[], classes: readonly string[]): boolean {
  return patterns.some((p) => classes.some((c) => classPatternMatches(p, c)));
}

function tableName(t: TableRef): string {
  return `${t.schema}.${t.table}`;
}

function denied(rule: PreparedRule | undefined, message: string): Verdict {
  return {
    effect: 'deny',
    ...(rule ? { rule: rule.rule.name, policySet: rule.policySet } : {}),
    message: rule?.rule.message ?? message,
    sqlstate: INSUFFICIENT_PRIVILEGE,
  };
}

function allowed(rule: PreparedRule | undefined): Verdict {
  return { effect: 'allow', ...(rule ? { rule: rule.rule.name, policySet: rule.policySet } : {}) };
}

type Scope = 'enforce' | 'all';

function inScope(scope: Scope): (r: { readonly enforcement: Enforcement }) => boolean {
  return scope === 'all' ? () => true : (r) => r.enforcement === 'enforce';
}

function defaultFor(ctx: PolicyContext, scope: Scope): Effect {
  const p = prepare(ctx.bundle);
  return scope === 'all' ? p.allDefault : p.enforceDefault;
}

function evaluateTable(ctx: PolicyContext, scope: Scope, t: TableRef, action: Action): AccessVerdict {
  const rules = ctx.rules.filter(inScope(scope)).filter((r) => actionMatches(r, action));
  const deny = rules.find((r) => r.rule.effect === 'deny' && coversTable(r.tables, t));
  if (deny) return { ...denied(deny, `permission denied for table ${tableName(t)}`), rowFilters: [] };
  const allows = rules.filter((r) => r.rule.effect === 'allow' && coversTable(r.tables, t));
  if (allows.length > 0) {
    return { ...allowed(allows[0]), rowFilters: allows.flatMap((r) => (r.rowFilter ? [r.rowFilter] : [])) };
  }
  const columnAllow = rules.find((r) => r.rule.effect === 'allow' && r.columns.some((c) => partsMatch(c.slice(0, 2), [t.schema, t.table])));
  if (columnAllow) return { ...allowed(columnAllow), rowFilters: [], columnsRestricted: true };
  if (action === 'decrypt' || defaultFor(ctx, scope) === 'deny') {
    return { ...denied(undefined, `permission denied for table ${tableName(t)}`), rowFilters: [] };
  }
  return { ...allowed(undefined), rowFilters: [] };
}

function sameAccess(a: AccessVerdict, b: AccessVerdict): boolean {
  const filters = (v: AccessVerdict) => v.rowFilters.map((f) => rowFilterKey(f.policySet, f.rule)).join('\n');
  return a.effect === b.effect && filters(a) === filters(b) && Boolean(a.columnsRestricted) === Boolean(b.columnsRestricted);
}

/**
 * May this identity perform `action` on the table, and under which row
 * filters? A matching deny wins; otherwise a matching allow (its row filters,
 * and those of every other matching allow, AND-ed); otherwise the default.
 */
export function tableAccess(ctx: PolicyContext, table: TableRef, action: Action): TableDecision {
  const enforced = evaluateTable(ctx, 'enforce', table, action);
  if (prepare(ctx.bundle).auditSets === 0) return { ...enforced, enforcement: 'enforce' };
  const wouldBe = evaluateTable(ctx, 'all', table, action);
  return sameAccess(enforced, wouldBe) ? { ...enforced, enforcement: 'enforce' } : { ...enforced, enforcement: 'audit', audit: wouldBe };
}

function evaluateColumn(ctx: PolicyContext, scope: Scope, c: ColumnRef, action: Action, classes: readonly string[]): Verdict {
  const columnName = `${c.column} of table ${tableName(c)}`;
  const rules = ctx.rules.filter(inScope(scope)).filter((r) => actionMatches(r, action));
  const table = evaluateTable(ctx, scope, c, action === 'decrypt' ? 'select' : action);
  if (table.effect === 'deny') return table;
  const covers = (r: PreparedRule): boolean => coversColumn(r.columns, c) || coversClass(r.classes, classes);
  const deny = rules.find((r) => r.rule.effect === 'deny' && (covers(r) || coversTable(r.tables, c)));
  if (deny) return denied(deny, `permission denied for column ${columnName}`);
  if (action === 'decrypt') {
    const grant = rules.find((r) => r.rule.effect === 'allow' && (covers(r) || coversTable(r.tables, c)));
    return grant ? allowed(grant) : denied(undefined, `decryption of column ${columnName} is not granted`);
  }
  if (table.columnsRestricted) {
    const grant = rules.find((r) => r.rule.effect === 'allow' && covers(r));
    return grant ? allowed(grant) : denied(undefined, `permission denied for column ${columnName}`);
  }
  return { effect: 'allow', ...(table.rule !== undefined ? { rule: table.rule } : {}), ...(table.policySet !== undefined ? { policySet: table.policySet } : {}) };
}

/**
 * May this identity perform `action` on the column? Denied when the table is
 * denied, when a deny rule covers the column (by name or class), or when the
 * table is open only through column-level allows that do not list it. For
 * `decrypt`, only a rule naming decrypt grants it. `classes` defaults to the
 * column's DataClassification classes.
 */
export function columnAccess(ctx: PolicyContext, column: ColumnRef, action: Action, classes?: readonly string[]): ColumnDecision {
  const cls = classes ?? columnClasses(ctx.bundle, column);
  const enforced = evaluateColumn(ctx, 'enforce', column, action, cls);
  if (prepare(ctx.bundle).auditSets === 0) return { ...enforced, enforcement: 'enforce' };
  const wouldBe = evaluateColumn(ctx, 'all', column, action, cls);
  return enforced.effect === wouldBe.effect ? { ...enforced, enforcement: 'enforce' } : { ...enforced, enforcement: 'audit', audit: wouldBe };
}

/**
 * Statement-level access for actions that name no table (`function`, `misc`,
 * `ddl` on non-table objects): only rules over every table (`*.*`) speak to
 * them; otherwise the default decides.
 */
export function statementAccess(ctx: PolicyContext, action: Action): TableDecision {
  const evaluate = (scope: Scope): AccessVerdict => {
    const rules = ctx.rules.filter(inScope(scope)).filter((r) => actionMatches(r, action) && r.tables.some((p) => p.every((x) => x === '*')));
    const deny = rules.find((r) => r.rule.effect === 'deny');
    if (deny) return { ...denied(deny, `permission denied: ${action} statements are not allowed`), rowFilters: [] };
    const allow = rules.find((r) => r.rule.effect === 'allow');
    if (allow) return { ...allowed(allow), rowFilters: [] };
    return defaultFor(ctx, scope) === 'deny' || action === 'decrypt'
      ? { ...denied(undefined, `permission denied: ${action} statements are not allowed`), rowFilters: [] }
      : { ...allowed(undefined), rowFilters: [] };
  };
  const enforced = evaluate('enforce');
  if (prepare(ctx.bundle).auditSets === 0) return { ...enforced, enforcement: 'enforce' };
  const wouldBe = evaluate('all');
  return sameAccess(enforced, wouldBe) ? { ...enforced, enforcement: 'enforce' } : { ...enforced, enforcement: 'audit', audit: wouldBe };
}

/** The classes DataClassification documents give a column. */
export function columnClasses(bundle: PolicyBundle, column: ColumnRef): readonly string[] {
  const out = new Set<string>();
  for (const entry of prepare(bundle).classifications) {
    if (partsMatch(entry.match, [column.schema, column.table, column.column])) for (const c of entry.classes) out.add(c);
  }
  return [...out];
}

const SPECIFICITY_RANK: Readonly<Record<MaskSpecificity, number>> = { column: 0, class: 1, wildcard: 2 };

function specificity(m: PreparedMask, c: ColumnRef, classes: readonly string[]): MaskSpecificity | undefined {
  const name = [c.schema, c.table, c.column];
  if (m.columns.some((p) => !p.some((x) => x.includes('*')) && partsMatch(p, name))) return 'column';
  if (coversClass(m.classes, classes)) return 'class';
  if (coversColumn(m.columns, c) || coversTable(m.tables, c)) return 'wildcard';
  return undefined;
}

function evaluateMask(ctx: PolicyContext, scope: Scope, c: ColumnRef, classes: readonly string[]): MaskVerdict {
  let best: { m: PreparedMask; s: MaskSpecificity } | undefined;
  for (const m of ctx.masks.filter(inScope(scope))) {
    const s = specificity(m, c, classes);
    if (s === undefined) continue;
    // Most specific first, then lower priority, then load order (first wins).
    if (!best || SPECIFICITY_RANK[s] < SPECIFICITY_RANK[best.s] || (SPECIFICITY_RANK[s] === SPECIFICITY_RANK[best.s] && m.priority < best.m.priority)) {
      best = { m, s };
    }
  }
  if (!best) return {};
  return {
    ...(best.m.mask.type === 'none' ? {} : { mask: best.m.mask }),
    rule: best.m.name,
    policySet: best.m.policySet,
    specificity: best.s,
  };
}

/**
 * The mask this identity sees on a column: column-specific masks beat class
 * masks, which beat wildcard (glob or whole-table) masks; then lower
 * `priority` wins; then the one loaded first. A winning `type: none` leaves
 * the column unmasked.
 */
export function maskFor(ctx: PolicyContext, column: ColumnRef, classesOfColumn?: readonly string[]): MaskDecision {
  const classes = classesOfColumn ?? columnClasses(ctx.bundle, column);
  const enforced = evaluateMask(ctx, 'enforce', column, classes);
  if (prepare(ctx.bundle).auditSets === 0) return { ...enforced, enforcement: 'enforce' };
  const wouldBe = evaluateMask(ctx, 'all', column, classes);
  const same = enforced.rule === wouldBe.rule && enforced.policySet === wouldBe.policySet;
  return same ? { ...enforced, enforcement: 'enforce' } : { ...enforced, enforcement: 'audit', audit: wouldBe };
}

/** The encryption settings of a column, if a KeyRing encrypts it. */
export function encryptionFor(bundle: PolicyBundle, column: ColumnRef): EncryptionInfo | undefined {
  return prepare(bundle).encrypted.get([column.schema, column.table, column.column].join('\0'));
}

/**
 * True only when nothing in the policies can touch this identity's
 * statements, so they may be forwarded without parsing: no encrypted columns
 * exist, no deny rule, row filter or mask (other than `none`) applies to it in
 * any PolicySet (audit ones included, since they need decisions to log), and
 * either the default is allow or an allow rule grants `all` on `*.*`.
 */
export function isUnrestricted(ctx: PolicyContext): boolean {
  const p = prepare(ctx.bundle);
  if (p.encrypted.size > 0) return false;
  if (ctx.rules.some((r) => r.rule.effect === 'deny' || r.rowFilter !== undefined)) return false;
  if (ctx.masks.some((m) => m.mask.type !== 'none')) return false;
  if (p.allDefault === 'allow') return true;
  return ctx.rules.some((r) => r.rule.effect === 'allow' && r.actions.has('all') && r.tables.some((t) => t.every((x) => x === '*')));
}

/**
 * A stable key for plan caches: the policy version, the subjects this
 * identity matches (which decide every rule and mask), and the values of the
 * placeholders in the row filters that apply to it. Identities with equal keys
 * get identical rewrites.
 */
export function contextKey(ctx: PolicyContext): string {
  const subjects = [...ctx.subjects.entries()].map(([set, names]) => [set, [...names].sort()] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const values = new Map<string, PlaceholderValue>();
  for (const r of ctx.rules) {
    for (const ph of r.rowFilter?.compiled.placeholders ?? []) {
      const key = placeholderKey(ph);
      if (!values.has(key)) values.set(key, resolvePlaceholder(ph, ctx.identity));
    }
  }
  const placeholders = [...values.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const canonical = JSON.stringify([ctx.version, subjects, placeholders]);
  return `${ctx.version.slice(0, 16)}:${createHash('sha256').update(canonical).digest('hex')}`;
}

