/**
 * Name resolution and protection of query trees, in place.
 *
 * Walks a statement the way PostgreSQL's parse analysis does — query levels,
 * FROM items with their visibility rules (joins, aliases, LATERAL), CTE
 * scopes, sublinks — and, for a restricted identity:
 * - resolves every relation reference against the catalog snapshot,
 *   schema-qualifies it, and replaces protected ones with their filtered,
 *   masked subquery (protect.ts);
 * - resolves every column reference to the FROM item it names, refusing
 *   denied columns (directly, through `*`, `t.*` or whole-row references) and
 *   system columns of protected tables; where a bare name cannot be resolved
 *   with certainty, every place it could resolve to is checked;
 * - checks functions and operators against the catalog.
 * It also works out each query's output columns and where they come from
 * (provenance), which later stages read instead of guessing from names.
 *
 * A second mode, `trusted`, resolves policy-authored SQL (row filters inside
 * the generated subquery): no policies apply, but every relation is
 * schema-qualified (so a client's CTE cannot stand in for a table a filter
 * reads) and every column must resolve inside the subquery (so a filter can
 * never bind to a column of the client's query).
 */
import { parseSync } from 'libpg-query';
import type {
  A_Expr,
  ColumnRef,
  CommonTableExpr,
  CopyStmt,
  DeleteStmt,
  FuncCall,
  InsertStmt,
  JoinExpr,
  MergeStmt,
  Node,
  OnConflictClause,
  RangeFunction,
  RangeSubselect,
  RangeTableFunc,
  RangeTableSample,
  RangeVar,
  ReturningClause,
  SelectStmt,
  SortBy,
  SubLink,
  UpdateStmt,
  WithClause,
} from 'libpg-query';
import { QuoteUtils } from 'pgsql-deparser';
import { statementAccess } from '../policy/decide.js';
import type { Action } from '../policy/schema.js';
import { hasSideEffects, isBlockedFunction } from './blocked.js';
import { mayBeCheckedDomain, resolveFunction, resolveOperator, resolveRelation, type CatalogRelation } from './catalog.js';
import { stripPositions } from './deparse.js';
import { checkWriteTarget, protectedSubquerySql, readProtection, type PolicyInput, type Protection } from './protect.js';
import { dropFence, pushDownConditions, type LeakproofCheck, type PushdownColumn, type PushdownTarget } from './pushdown.js';
import { privilege, quoted, refuse, Refusal, RewriteSqlState, unsupported, type Denial } from './refusal.js';

export type ColumnSource =
  | {
      readonly kind: 'column';
      readonly schema: string;
      readonly table: string;
      readonly column: string;
      /** The mask rule applied, if any. */
      readonly masked: string | undefined;
      readonly encrypted: boolean;
    }
  | { readonly kind: 'computed' };

export interface OutputColumn {
  readonly name: string;
  readonly source: ColumnSource;
}

export interface TableUse {
  readonly schema: string;
  readonly table: string;
  readonly protected: boolean;
}

const COMPUTED: ColumnSource = { kind: 'computed' };

/** Columns every table has besides its own (PostgreSQL's system attributes). */
const SYSTEM_COLUMNS: ReadonlySet<string> = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid', 'oid']);

interface Col {
  readonly name: string;
  readonly source: ColumnSource;
  readonly denied?: Denial;
}

interface RelInfo {
  readonly relation: CatalogRelation;
  readonly protection: Protection;
  /** Written with an alias: then `schema.table.col` does not reach it. */
  readonly aliased: boolean;
}

/** One entry of a query level's namespace (PostgreSQL's ParseNamespaceItem). */
interface Item {
  readonly refname: string | undefined;
  relVisible: boolean;
  colsVisible: boolean;
  /** undefined: not known (functions returning records, ...). */
  readonly columns: readonly Col[] | undefined;
  readonly rel?: RelInfo;
  /** For joins: the items inside. */
  readonly members: readonly Item[];
  /** The first denied column anywhere under this item: `*` and whole-row references to it are refused. */
  readonly deniedInside: Denial | undefined;
}

interface Level {
  readonly items: Item[];
  readonly parent: Level | undefined;
  /** Protected references at this level that harmless WHERE conditions may be copied into. */
  pushdown?: PushdownTarget[];
}

interface CteInfo {
  columns: readonly Col[] | undefined;
}

interface CteScope {
  readonly names: Map<string, CteInfo>;
  readonly parent: CteScope | undefined;
}

export type Mode = 'policy' | 'trusted';

type Found =
  | { readonly kind: 'column'; readonly item: Item; readonly col: Col }
  | { readonly kind: 'system'; readonly item: Item; readonly name: string }
  | { readonly kind: 'wholerow'; readonly item: Item }
  | { readonly kind: 'star'; readonly items: readonly Item[] };

interface Resolution {
  /** Where PostgreSQL will certainly resolve the reference, when that is known. */
  readonly certain: Found | undefined;
  /** Every place it could resolve to (certain included). */
  readonly possible: readonly Found[];
}

type Output = readonly Col[] | undefined;

// ---------------------------------------------------------------------------
// Small tree helpers

function sval(node: Node | undefined): string | undefined {
  return node && 'String' in node ? node.String.sval : undefined;
}

function names(nodes: readonly Node[] | undefined): string[] {
  return (nodes ?? []).map((n) => sval(n) ?? '');
}

function nodeType(node: Node): string {
  return Object.keys(node)[0] ?? '';
}

function isStar(node: Node | undefined): boolean {
  return node !== undefined && 'A_Star' in node;
}

function qualifiedName(parts: readonly string[]): string {
  return parts.map((p) => QuoteUtils.quoteIdentifier(p)).join('.');
}

function renamed(columns: Output, aliases: readonly Node[] | undefined): Output {
  if (!columns || !aliases || aliases.length === 0) return columns;
  return columns.map((c, i) => (i < aliases.length ? { ...c, name: sval(aliases[i]) ?? c.name } : c));
}

// Statement and FROM node types that never appear inside an expression tree.
const NOT_EXPRESSIONS: ReadonlySet<string> = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'RangeVar',
  'RangeSubselect',
  'RangeFunction',
  'RangeTableFunc',
  'RangeTableSample',
  'JoinExpr',
  'JsonTable',
  'RawStmt',
]);

/** Expression syntax that older servers read as a call of the function of this name. */
const FUNCTION_SYNTAX: Readonly<Record<string, string>> = {
  JsonScalarExpr: 'json_scalar',
  JsonSerializeExpr: 'json_serialize',
  JsonParseExpr: 'json',
  JsonObjectConstructor: 'json_object',
  JsonArrayConstructor: 'json_array',
  JsonObjectAgg: 'json_objectagg',
  JsonArrayAgg: 'json_arrayagg',
  MergeSupportFunc: 'merge_action',
};

const JSON_FUNC_NAMES: Readonly<Record<string, string>> = {
  JSON_EXISTS_OP: 'json_exists',
  JSON_QUERY_OP: 'json_query',
  JSON_VALUE_OP: 'json_value',
};

// ---------------------------------------------------------------------------
// Output column names (PostgreSQL's FigureColname)

const SVF_NAMES: Readonly<Record<string, string>> = {
  SVFOP_USER: 'user',
};

function figure(node: Node | undefined, sublinks: WeakMap<object, Output>): [string | undefined, number] {
  if (!node) return [undefined, 0];
  const type = nodeType(node);
  const data = (node as unknown as Record<string, Record<string, unknown>>)[type] ?? {};
  switch (type) {
    case 'ColumnRef': {
      const fields = (data['fields'] as Node[] | undefined) ?? [];
      const last = sval(fields[fields.length - 1]);
      return last !== undefined ? [last, 2] : [undefined, 0];
    }
    case 'A_Indirection': {
      const ind = (data['indirection'] as Node[] | undefined) ?? [];
      for (let i = ind.length - 1; i >= 0; i--) {
        const s = sval(ind[i]);
        if (s !== undefined) return [s, 2];
        // A subscript after the last field name: PostgreSQL uses the field before it.
      }
      return figure(data['arg'] as Node | undefined, sublinks);
    }
    case 'FuncCall': {
      const fn = names(data['funcname'] as Node[] | undefined);
      return [fn[fn.length - 1], 2];
    }
    case 'A_Expr':
      return data['kind'] === 'AEXPR_NULLIF' ? ['nullif', 2] : [undefined, 0];
    case 'TypeCast': {
      const inner = figure(data['arg'] as Node | undefined, sublinks);
      if (inner[1] > 1) return inner;
      const tn = names(((data['typeName'] as { names?: Node[] } | undefined)?.names) ?? []);
      return tn.length > 0 ? [tn[tn.length - 1], 1] : inner;
    }
    case 'CollateClause':
      return figure(data['arg'] as Node | undefined, sublinks);
    case 'GroupingFunc':
      return ['grouping', 2];
    case 'MergeSupportFunc':
      return ['merge_action', 2];
    case 'SubLink': {
      const kind = data['subLinkType'];
      if (kind === 'EXISTS_SUBLINK') return ['exists', 2];
      if (kind === 'ARRAY_SUBLINK') return ['array', 2];
      if (kind === 'EXPR_SUBLINK') {
        const out = sublinks.get(data);
        const first = out?.[0]?.name;
        return first !== undefined ? [first, 2] : [undefined, 0];
      }
      return [undefined, 0];
    }
    case 'CaseExpr': {
      const inner = figure(data['defresult'] as Node | undefined, sublinks);
      return inner[1] > 1 ? inner : ['case', 1];
    }
    case 'A_ArrayExpr':
      return ['array', 2];
    case 'RowExpr':
      return ['row', 2];
    case 'CoalesceExpr':
      return ['coalesce', 2];
    case 'MinMaxExpr':
      return [data['op'] === 'IS_GREATEST' ? 'greatest' : 'least', 2];
    case 'SQLValueFunction': {
      const op = String(data['op'] ?? '');
      return [SVF_NAMES[op] ?? op.replace(/^SVFOP_/, '').replace(/_N$/, '').toLowerCase(), 2];
    }
    case 'XmlExpr': {
      const op = String(data['op'] ?? '');
      return op === 'IS_DOCUMENT' ? [undefined, 0] : [op.replace(/^IS_/, '').toLowerCase(), 2];
    }
    case 'XmlSerialize':
      return ['xmlserialize', 2];
    case 'JsonParseExpr':
      return ['json', 2];
    case 'JsonScalarExpr':
      return ['json_scalar', 2];
    case 'JsonSerializeExpr':
      return ['json_serialize', 2];
    case 'JsonObjectConstructor':
      return ['json_object', 2];
    case 'JsonArrayConstructor':
    case 'JsonArrayQueryConstructor':
      return ['json_array', 2];
    case 'JsonObjectAgg':
      return ['json_objectagg', 2];
    case 'JsonArrayAgg':
      return ['json_arrayagg', 2];
    case 'JsonFuncExpr': {
      const op = String(data['op'] ?? '');
      const known: Record<string, string> = { JSON_EXISTS_OP: 'json_exists', JSON_QUERY_OP: 'json_query', JSON_VALUE_OP: 'json_value' };
      return known[op] !== undefined ? [known[op], 2] : [undefined, 0];
    }
    default:
      return [undefined, 0];
  }
}

// ---------------------------------------------------------------------------

export interface AnalyzerOptions {
  readonly input: PolicyInput;
  readonly mode: Mode;
}

/**
 * What an analysis works out per relation (its protection, or why it may not
 * be read, and its generated subqueries) depends only on the policy context,
 * identity, catalog snapshot and search_path: kept across planRewrite calls
 * while those objects live, so a statement seen for the first time does not
 * rebuild the masks of tables other statements already used.
 */
interface SharedWork {
  readonly protections: Map<number, Protection | Denial>;
  readonly subqueries: Map<string, Node>;
}

const sharedWork = new WeakMap<object, WeakMap<object, Map<string, SharedWork>>>();

function sharedFor(input: PolicyInput, mode: Mode): SharedWork {
  const fresh = (): SharedWork => ({ protections: new Map(), subqueries: new Map() });
  // Only when the inputs agree with the context they were made for; otherwise work per analysis.
  if (input.policy.identity !== input.identity || input.policy.bundle !== input.bundle) return fresh();
  let byCatalog = sharedWork.get(input.policy);
  if (!byCatalog) sharedWork.set(input.policy, (byCatalog = new WeakMap()));
  let byPath = byCatalog.get(input.catalog);
  if (!byPath) byCatalog.set(input.catalog, (byPath = new Map()));
  const key = `${mode}\0${input.searchPath.join('\0')}`;
  let work = byPath.get(key);
  if (!work) byPath.set(key, (work = fresh()));
  return work;
}

/**
 * One analysis: per planRewrite call (policy mode), sharing protections and
 * generated subqueries between the statements of a Query message.
 */
export class Analyzer {
  readonly input: PolicyInput;
  readonly mode: Mode;
  /** Relations referenced by the statement being analyzed, by oid. */
  tables = new Map<number, TableUse>();
  private readonly protections: Map<number, Protection | Denial>;
  private readonly subqueries: Map<string, Node>;
  private readonly sublinkOutputs = new WeakMap<object, Output>();
  /** How many query levels deep the analysis is: 1 at a statement's top-level query. */
  private queryDepth = 0;
  private trustedAnalyzer: Analyzer | undefined;

  constructor(options: AnalyzerOptions) {
    this.input = options.input;
    this.mode = options.mode;
    const shared = sharedFor(options.input, options.mode);
    this.protections = shared.protections;
    this.subqueries = shared.subqueries;
  }

  private readonly leakproof: LeakproofCheck = (operator, left, right) =>
    this.input.catalog.leakproofOperators?.has(`${operator}|${left}|${right}`) ?? false;

  /** Starts a new statement: its table list starts empty. */
  beginStatement(): void {
    this.tables = new Map();
  }

  // -------------------------------------------------------------------------
  // Queries

  /** Any query that returns rows: SELECT / VALUES / set operation, or INSERT/UPDATE/DELETE/MERGE (their RETURNING). */
  query(node: Node | undefined, outer: Level | undefined, ctes: CteScope | undefined, onLeftArm?: (out: Output) => void): Output {
    if (!node) return undefined;
    if ('SelectStmt' in node) return this.select(node.SelectStmt, outer, ctes, onLeftArm);
    if ('InsertStmt' in node) return this.insert(node.InsertStmt, outer, ctes);
    if ('UpdateStmt' in node) return this.update(node.UpdateStmt, outer, ctes);
    if ('DeleteStmt' in node) return this.delete(node.DeleteStmt, outer, ctes);
    if ('MergeStmt' in node) return this.merge(node.MergeStmt, outer, ctes);
    return unsupported(`${nodeType(node)} is not supported here for restricted identities`);
  }

  select(s: SelectStmt, outer: Level | undefined, ctes: CteScope | undefined, onLeftArm?: (out: Output) => void): Output {
    return this.level(() => this.selectLevel(s, outer, ctes, onLeftArm));
  }

  /** Runs the analysis of one query level (SELECT, INSERT, UPDATE, DELETE, MERGE), counting the depth. */
  private level<T>(analyze: () => T): T {
    this.queryDepth += 1;
    try {
      return analyze();
    } finally {
      this.queryDepth -= 1;
    }
  }

  private selectLevel(s: SelectStmt, outer: Level | undefined, ctes: CteScope | undefined, onLeftArm?: (out: Output) => void): Output {
    const scope = s.withClause ? this.with(s.withClause, outer, ctes) : ctes;
    if (s.op !== undefined && s.op !== 'SETOP_NONE') {
      const left = s.larg ? this.select(s.larg, outer, scope) : undefined;
      onLeftArm?.(left);
      const right = s.rarg ? this.select(s.rarg, outer, scope) : undefined;
      const out = mergeSetOutputs(left, right);
      // ORDER BY of a set operation names its output columns; anything else only sees outer levels.
      const empty: Level = { items: [], parent: outer };
      for (const sort of s.sortClause ?? []) this.sortItem(sort, empty, scope, out);
      this.expr(s.limitCount, empty, scope);
      this.expr(s.limitOffset, empty, scope);
      return out;
    }
    const level: Level = { items: [], parent: outer };
    if (s.valuesLists) {
      for (const row of s.valuesLists) this.expr(row, level, scope);
      const width = s.valuesLists[0] && 'List' in s.valuesLists[0] ? (s.valuesLists[0].List.items?.length ?? 0) : 0;
      const out = Array.from({ length: width }, (_, i) => ({ name: `column${i + 1}`, source: COMPUTED }));
      for (const sort of s.sortClause ?? []) this.sortItem(sort, level, scope, out);
      this.expr(s.limitCount, level, scope);
      this.expr(s.limitOffset, level, scope);
      return out;
    }
    if (s.fromClause) s.fromClause = s.fromClause.map((item) => this.fromItem(item, level, scope).node);
    const out = this.targets(s.targetList ?? [], level, scope);
    this.expr(s.whereClause, level, scope);
    if (level.pushdown) {
      const sole = level.items.length === 1 && level.items[0]?.rel !== undefined && level.pushdown.length === 1 ? level.pushdown[0] : undefined;
      const everyConditionInside = pushDownConditions(s.whereClause, level.pushdown, sole, this.leakproof);
      // Only the statement's own top level: a query around this one (a subquery, an inlined CTE,
      // a set operation) could have the planner push its conditions, leaky ones too, through the
      // flattened subquery and below the row filter.
      if (sole && everyConditionInside && !s.havingClause && this.queryDepth === 1) dropFence(sole);
    }
    this.expr(s.groupClause, level, scope);
    this.expr(s.havingClause, level, scope);
    this.expr(s.windowClause, level, scope);
    // DISTINCT ON and ORDER BY may name output columns (SQL92 rule) before input columns.
    for (const d of s.distinctClause ?? []) {
      if (Object.keys(d).length > 0) this.sortItem(d, level, scope, out, s.targetList);
    }
    for (const sort of s.sortClause ?? []) this.sortItem(sort, level, scope, out, s.targetList);
    this.expr(s.limitCount, level, scope);
    this.expr(s.limitOffset, level, scope);
    // lockingClause names FROM items, not relations: nothing to resolve.
    return out;
  }

  private sortItem(node: Node, level: Level, ctes: CteScope | undefined, out: Output, targets?: readonly Node[]): void {
    const sort: SortBy | undefined = 'SortBy' in node ? node.SortBy : undefined;
    const expr = sort ? sort.node : node;
    if (sort?.useOp) this.operator(names(sort.useOp));
    if (expr && 'ColumnRef' in expr) {
      const fields = expr.ColumnRef.fields ?? [];
      const name = fields.length === 1 ? sval(fields[0]) : undefined;
      const outputNames = new Set<string>();
      for (const c of out ?? []) outputNames.add(c.name);
      for (const t of targets ?? []) {
        const rt = 'ResTarget' in t ? t.ResTarget : undefined;
        if (rt?.name !== undefined) outputNames.add(rt.name);
      }
      if (name !== undefined && outputNames.has(name)) return;
    }
    this.expr(expr, level, ctes);
  }

  /** The target list: checks every expression and works out the output columns. */
  private targets(list: readonly Node[], level: Level, ctes: CteScope | undefined): Output {
    const out: Col[] = [];
    let known = true;
    for (const t of list) {
      const rt = 'ResTarget' in t ? t.ResTarget : undefined;
      const val = rt?.val;
      if (!rt || !val) continue;
      if ('ColumnRef' in val) {
        const fields = val.ColumnRef.fields ?? [];
        const resolution = this.columnRef(val.ColumnRef, level);
        if (isStar(fields[fields.length - 1])) {
          const star = resolution.certain;
          if (star?.kind === 'star') {
            for (const item of star.items) {
              if (item.columns) out.push(...item.columns.map((c) => ({ name: c.name, source: c.source })));
              else known = false;
            }
          } else {
            known = false;
          }
          continue;
        }
        const found = resolution.certain;
        const source = found?.kind === 'column' ? found.col.source : COMPUTED;
        out.push({ name: rt.name ?? sval(fields[fields.length - 1]) ?? '?column?', source });
        continue;
      }
      this.expr(val, level, ctes);
      out.push({ name: rt.name ?? figure(val, this.sublinkOutputs)[0] ?? '?column?', source: COMPUTED });
    }
    return known ? out : undefined;
  }

  private with(w: WithClause, outer: Level | undefined, ctes: CteScope | undefined): CteScope {
    const scope: CteScope = { names: new Map(), parent: ctes };
    const list = (w.ctes ?? []).flatMap((c) => ('CommonTableExpr' in c ? [c.CommonTableExpr] : []));
    // A recursive WITH makes every name visible to every member; otherwise each sees the ones before it.
    if (w.recursive) for (const c of list) scope.names.set(c.ctename ?? '', { columns: undefined });
    for (const cte of list) this.cte(cte, outer, scope, Boolean(w.recursive));
    return scope;
  }

  private cte(cte: CommonTableExpr, outer: Level | undefined, scope: CteScope, recursive: boolean): void {
    const name = cte.ctename ?? '';
    const info: CteInfo = scope.names.get(name) ?? { columns: undefined };
    const withExtras = (out: Output): Output => {
      const cols = renamed(out, cte.aliascolnames);
      if (!cols) return cols;
      const extra: Col[] = [];
      if (cte.search_clause?.search_seq_column) extra.push({ name: cte.search_clause.search_seq_column, source: COMPUTED });
      if (cte.cycle_clause?.cycle_mark_column) extra.push({ name: cte.cycle_clause.cycle_mark_column, source: COMPUTED });
      if (cte.cycle_clause?.cycle_path_column) extra.push({ name: cte.cycle_clause.cycle_path_column, source: COMPUTED });
      return [...cols, ...extra];
    };
    const out = this.query(cte.ctequery, outer, scope, recursive ? (left) => (info.columns = withExtras(left)) : undefined);
    info.columns = withExtras(out);
    scope.names.set(name, info);
  }

  // -------------------------------------------------------------------------
  // FROM items

  private fromItem(node: Node, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    if ('RangeVar' in node) return this.rangeVar(node, node.RangeVar, level, ctes);
    if ('RangeSubselect' in node) return this.rangeSubselect(node, node.RangeSubselect, level, ctes);
    if ('JoinExpr' in node) return this.join(node, node.JoinExpr, level, ctes);
    if ('RangeFunction' in node) return this.rangeFunction(node, node.RangeFunction, level, ctes);
    if ('RangeTableFunc' in node) return this.rangeTableFunc(node, node.RangeTableFunc, level, ctes);
    if ('RangeTableSample' in node) return this.rangeTableSample(node, node.RangeTableSample, level, ctes);
    if ('JsonTable' in node) {
      this.syntaxFunction('json_table');
      const jt = node.JsonTable;
      // Every expression inside (context item, PASSING, column defaults) may refer to earlier FROM items.
      this.expr([jt.context_item, jt.passing, jt.columns, jt.on_error], level, ctes);
      return this.addItem(level, node, { refname: jt.alias?.aliasname, relVisible: jt.alias !== undefined, colsVisible: true, columns: undefined, members: [], deniedInside: undefined });
    }
    return unsupported(`${nodeType(node)} in FROM is not supported for restricted identities`);
  }

  private addItem(level: Level, node: Node, item: Item): { node: Node; top: Item; all: Item[] } {
    level.items.push(item);
    return { node, top: item, all: [item] };
  }

  private lookupCte(ctes: CteScope | undefined, name: string): CteInfo | undefined {
    for (let s = ctes; s; s = s.parent) {
      const found = s.names.get(name);
      if (found) return found;
    }
    return undefined;
  }

  /** Resolves a relation name or refuses, as PostgreSQL words it. */
  resolve(rv: RangeVar): CatalogRelation {
    const parts = [rv.catalogname, rv.schemaname, rv.relname].filter((p): p is string => p !== undefined);
    const rel = resolveRelation(this.input.catalog, parts, this.input.searchPath);
    if (!rel) {
      if (parts.length === 3 && parts[0] !== this.input.catalog.database) {
        unsupported(`cross-database references are not supported: ${qualifiedName(parts)}`);
      }
      refuse(RewriteSqlState.UndefinedTable, `relation ${quoted(parts.join('.'))} does not exist`);
    }
    return rel;
  }

  /** The policies of a relation for reads (cached per analysis); trusted mode sees the plain relation. */
  protection(rel: CatalogRelation): Protection {
    let p = this.protections.get(rel.oid);
    if (!p) {
      try {
        p = this.mode === 'trusted' ? plainProtection(rel) : readProtection(this.input, rel);
      } catch (err) {
        if (!(err instanceof Refusal)) throw err;
        p = err.denial;
      }
      this.protections.set(rel.oid, p);
    }
    if (!('relation' in p)) throw new Refusal(p);
    return p;
  }

  private note(rel: CatalogRelation, isProtected: boolean): void {
    const prev = this.tables.get(rel.oid);
    this.tables.set(rel.oid, { schema: rel.schema, table: rel.name, protected: isProtected || Boolean(prev?.protected) });
  }

  /** A plain (unprotected) item for a relation, e.g. the target of a write. */
  private relationItem(rel: CatalogRelation, p: Protection, alias: RangeVar['alias']): Item {
    const aliases = alias?.colnames ?? [];
    if (aliases.length > rel.columns.length) {
      refuse(
        RewriteSqlState.InvalidColumnReference,
        `table ${quoted(alias?.aliasname ?? rel.name)} has ${rel.columns.length} columns available but ${aliases.length} columns specified`,
      );
    }
    let deniedInside: Denial | undefined;
    const columns = rel.columns.map((c, i): Col => {
      const policy = p.columns.get(c.name);
      if (policy?.denied && !deniedInside) deniedInside = policy.denied;
      return {
        name: sval(aliases[i]) ?? c.name,
        source: { kind: 'column', schema: rel.schema, table: rel.name, column: c.name, masked: policy?.maskRule, encrypted: policy?.encrypted ?? false },
        ...(policy?.denied ? { denied: policy.denied } : {}),
      };
    });
    return {
      refname: alias?.aliasname ?? rel.name,
      relVisible: true,
      colsVisible: true,
      columns,
      rel: { relation: rel, protection: p, aliased: alias?.aliasname !== undefined },
      members: [],
      deniedInside,
    };
  }

  private rangeVar(node: Node, rv: RangeVar, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    if (rv.schemaname === undefined && rv.catalogname === undefined) {
      const cte = this.lookupCte(ctes, rv.relname ?? '');
      if (cte) {
        return this.addItem(level, node, {
          refname: rv.alias?.aliasname ?? rv.relname,
          relVisible: true,
          colsVisible: true,
          columns: renamed(cte.columns, rv.alias?.colnames),
          members: [],
          deniedInside: undefined,
        });
      }
    }
    const rel = this.resolve(rv);
    const p = this.protection(rel);
    const item = this.relationItem(rel, p, rv.alias);
    this.note(rel, p.protected);
    if (!p.protected) {
      rv.schemaname = rel.schema;
      delete rv.catalogname;
      return this.addItem(level, node, item);
    }
    const visible = (item.columns ?? []).map((c) => c.name);
    const subquery = this.protectedSubquery(p, rv.inh !== true, visible);
    const replacement: Node = { RangeSubselect: { subquery, alias: { aliasname: item.refname ?? rel.name } } };
    (level.pushdown ??= []).push(pushdownTarget(item.refname ?? rel.name, (subquery as { SelectStmt: SelectStmt }).SelectStmt, p, visible));
    return this.addItem(level, replacement, item);
  }

  /** The subquery standing in for a protected relation, its row filters resolved in trusted mode. */
  private protectedSubquery(p: Protection, only: boolean, visible: readonly string[]): Node {
    const key = `${p.relation.oid}\0${only ? 1 : 0}\0${visible.join('\0')}`;
    let sub = this.subqueries.get(key);
    if (!sub) {
      const sql = protectedSubquerySql(p, { only, names: visible });
      const parsed = parseSync(`SELECT * FROM (${sql}) AS pgward_protected`);
      const stmt = parsed.stmts?.[0]?.stmt;
      const from = stmt && 'SelectStmt' in stmt ? stmt.SelectStmt.fromClause?.[0] : undefined;
      const built = from && 'RangeSubselect' in from ? from.RangeSubselect.subquery : undefined;
      if (!built || !('SelectStmt' in built)) throw new Error('protected subquery did not parse as a SELECT');
      sub = stripPositions(built);
      const select = (sub as { SelectStmt: SelectStmt }).SelectStmt;
      try {
        this.trusted().select(select, undefined, undefined);
      } catch (err) {
        if (err instanceof Refusal) {
          privilege(`the policies for ${p.relation.schema}.${p.relation.name} cannot be applied: ${err.denial.message}`);
        }
        throw err;
      }
      this.subqueries.set(key, sub);
    }
    return structuredClone(sub);
  }

  private trusted(): Analyzer {
    this.trustedAnalyzer ??= new Analyzer({ input: this.input, mode: 'trusted' });
    return this.trustedAnalyzer;
  }

  private rangeSubselect(node: Node, rs: RangeSubselect, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    // Without LATERAL the subquery cannot see this level's items (PostgreSQL skips them).
    const out = this.query(rs.subquery, rs.lateral ? level : level.parent, ctes);
    return this.addItem(level, node, {
      refname: rs.alias?.aliasname,
      relVisible: rs.alias !== undefined,
      colsVisible: true,
      columns: renamed(out, rs.alias?.colnames),
      members: [],
      deniedInside: undefined,
    });
  }

  private rangeFunction(node: Node, rf: RangeFunction, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    // Functions in FROM may always refer to earlier FROM items.
    let columns: Col[] | undefined = [];
    for (const entry of rf.functions ?? []) {
      const pair = 'List' in entry ? (entry.List.items ?? []) : [entry];
      this.expr(pair[0], level, ctes);
      const defs = (pair[1] && 'List' in pair[1] ? pair[1].List.items : undefined) ?? [];
      if (defs.length > 0 && columns) {
        columns.push(...defs.map((d) => ({ name: ('ColumnDef' in d ? d.ColumnDef.colname : undefined) ?? '?column?', source: COMPUTED })));
      } else {
        columns = undefined;
      }
    }
    if (rf.coldeflist && rf.coldeflist.length > 0) {
      columns = rf.coldeflist.map((d) => ({ name: ('ColumnDef' in d ? d.ColumnDef.colname : undefined) ?? '?column?', source: COMPUTED }));
    }
    if (columns && rf.ordinality) columns.push({ name: 'ordinality', source: COMPUTED });
    return this.addItem(level, node, {
      refname: rf.alias?.aliasname ?? undefined,
      relVisible: true,
      colsVisible: true,
      columns: renamed(columns, rf.alias?.colnames),
      members: [],
      deniedInside: undefined,
    });
  }

  private rangeTableFunc(node: Node, tf: RangeTableFunc, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    this.expr(tf.docexpr, level, ctes);
    this.expr(tf.rowexpr, level, ctes);
    this.expr(tf.namespaces, level, ctes);
    const columns: Col[] = [];
    for (const c of tf.columns ?? []) {
      if (!('RangeTableFuncCol' in c)) continue;
      this.expr(c.RangeTableFuncCol.colexpr, level, ctes);
      this.expr(c.RangeTableFuncCol.coldefexpr, level, ctes);
      columns.push({ name: c.RangeTableFuncCol.colname ?? '?column?', source: COMPUTED });
    }
    return this.addItem(level, node, {
      refname: tf.alias?.aliasname,
      relVisible: tf.alias !== undefined,
      colsVisible: true,
      columns: renamed(columns, tf.alias?.colnames),
      members: [],
      deniedInside: undefined,
    });
  }

  private rangeTableSample(node: Node, ts: RangeTableSample, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    this.function(names(ts.method));
    this.expr(ts.args, level, ctes);
    this.expr(ts.repeatable, level, ctes);
    const inner = ts.relation;
    if (!inner || !('RangeVar' in inner)) return unsupported('TABLESAMPLE applies to tables only');
    const result = this.rangeVar(inner, inner.RangeVar, level, ctes);
    if (result.node !== inner) {
      unsupported(`TABLESAMPLE on ${result.top.refname ?? 'a protected table'} is not supported for restricted identities: policies apply to its rows`);
    }
    return { node, top: result.top, all: result.all };
  }

  private join(node: Node, j: JoinExpr, level: Level, ctes: CteScope | undefined): { node: Node; top: Item; all: Item[] } {
    if (!j.larg || !j.rarg) return unsupported('malformed JOIN');
    const left = this.fromItem(j.larg, level, ctes);
    j.larg = left.node;
    const right = this.fromItem(j.rarg, level, ctes);
    j.rarg = right.node;
    const L = left.top.columns;
    const R = right.top.columns;
    const deniedInside = left.top.deniedInside ?? right.top.deniedInside;

    let common: string[] | undefined;
    if (j.isNatural) common = L && R ? L.filter((c) => R.some((r) => r.name === c.name)).map((c) => c.name) : undefined;
    else common = names(j.usingClause);
    const merged: Col[] = [];
    if (common === undefined) {
      // NATURAL over a side whose columns are unknown: cannot tell whether a denied column is joined on.
      if (deniedInside) throw new Refusal(deniedInside);
    } else {
      for (const name of common) {
        const lc = L?.find((c) => c.name === name);
        const rc = R?.find((c) => c.name === name);
        for (const [side, col] of [[left.top, lc], [right.top, rc]] as const) {
          if (col?.denied) throw new Refusal(col.denied);
          if (!col && !side.columns && side.deniedInside) throw new Refusal(side.deniedInside);
        }
        const source = j.jointype === 'JOIN_FULL' ? COMPUTED : j.jointype === 'JOIN_RIGHT' ? (rc?.source ?? COMPUTED) : (lc?.source ?? COMPUTED);
        merged.push({ name, source });
      }
    }
    if (j.quals) {
      // ON sees the two sides (and outer levels), not earlier items of the FROM list.
      this.expr(j.quals, { items: [...left.all, ...right.all], parent: level.parent }, ctes);
    }
    const members = [...left.all, ...right.all];
    for (const m of members) {
      m.colsVisible = false;
      if (j.alias) m.relVisible = false;
    }
    const inUsing = new Set(common ?? []);
    const columns =
      common !== undefined && L && R ? [...merged, ...L.filter((c) => !inUsing.has(c.name)), ...R.filter((c) => !inUsing.has(c.name))] : undefined;
    const top: Item = {
      refname: j.alias?.aliasname,
      relVisible: j.alias !== undefined,
      colsVisible: true,
      columns: renamed(columns, j.alias?.colnames),
      members,
      deniedInside,
    };
    level.items.push(top);
    const all = [...members, top];
    if (j.join_using_alias) {
      const usingItem: Item = { refname: j.join_using_alias.aliasname, relVisible: true, colsVisible: false, columns: merged, members: [], deniedInside: undefined };
      level.items.push(usingItem);
      all.push(usingItem);
    }
    return { node, top, all };
  }

  // -------------------------------------------------------------------------
  // Column references

  private findRef(level: Level | undefined, name: string): Item[] {
    for (let l = level; l; l = l.parent) {
      const hits = l.items.filter((i) => i.relVisible && i.refname === name);
      if (hits.length > 0) return hits;
    }
    return [];
  }

  private findQualified(level: Level | undefined, schema: string, table: string): Item[] {
    for (let l = level; l; l = l.parent) {
      const hits = l.items.filter((i) => i.relVisible && i.rel && !i.rel.aliased && i.rel.relation.schema === schema && i.rel.relation.name === table);
      if (hits.length > 0) return hits;
    }
    return [];
  }

  /** A bare column name: current level first, then outward, as PostgreSQL's colNameToVar. */
  private lookupColumn(level: Level, name: string): { certain: Found | undefined; possible: Found[] } {
    const possible: Found[] = [];
    let unsure = false;
    for (let l: Level | undefined = level; l; l = l.parent) {
      const here: Found[] = [];
      let unknown = false;
      for (const item of l.items) {
        if (!item.colsVisible) continue;
        if (!item.columns) {
          unknown = true;
          continue;
        }
        const matches = item.columns.filter((c) => c.name === name);
        for (const col of matches) here.push({ kind: 'column', item, col });
        if (matches.length === 0 && SYSTEM_COLUMNS.has(name)) {
          if (item.rel) here.push({ kind: 'system', item, name });
          // Fail closed: a join's members' system columns.
          for (const m of item.members) if (m.rel?.protection.protected) possible.push({ kind: 'system', item: m, name });
        }
      }
      possible.push(...here);
      if (here.length > 0) {
        return { certain: here.length === 1 && !unknown && !unsure ? here[0] : undefined, possible };
      }
      if (unknown) unsure = true;
    }
    return { certain: undefined, possible };
  }

  private columnOf(item: Item, name: string): Found[] {
    if (name === '*') return [{ kind: 'star', items: [item] }];
    const cols = item.columns?.filter((c) => c.name === name) ?? [];
    if (cols.length > 0) return cols.map((col) => ({ kind: 'column' as const, item, col }));
    if (item.rel && SYSTEM_COLUMNS.has(name)) return [{ kind: 'system', item, name }];
    return [];
  }

  /** Resolves, checks (refusing what the policies forbid) and, for protected tables, rewrites a column reference. */
  columnRef(ref: ColumnRef, level: Level): Resolution {
    const fields = ref.fields ?? [];
    const parts = fields.map((f) => (isStar(f) ? '*' : (sval(f) ?? '')));
    let resolution: Resolution;
    if (parts.length === 1) {
      const name = parts[0] as string;
      if (name === '*') {
        const items = level.items.filter((i) => i.colsVisible);
        const star: Found = { kind: 'star', items };
        resolution = { certain: star, possible: [star] };
      } else {
        const col = this.lookupColumn(level, name);
        if (col.certain) {
          resolution = col;
        } else {
          // Not (certainly) a column: PostgreSQL then tries a whole-row reference to a FROM item of that name.
          const rows = this.findRef(level, name).map((item): Found => ({ kind: 'wholerow', item }));
          resolution = { certain: col.possible.length === 0 && rows.length === 1 && rows[0] ? rows[0] : undefined, possible: [...col.possible, ...rows] };
        }
      }
    } else if (parts.length === 2) {
      const [a, b] = parts as [string, string];
      const items = this.findRef(level, a);
      if (items.length > 0) {
        const found = items.flatMap((i) => this.columnOf(i, b));
        // `a.f` with no column f is PostgreSQL's function-style call f(a): a whole-row use of a.
        const callable = found.length === 0 && b !== '*' && resolveFunction(this.input.catalog, [b], this.input.searchPath).kind !== 'unknown';
        const fallback = callable ? items.map((item): Found => ({ kind: 'wholerow', item })) : [];
        if (callable) this.function([b]);
        resolution = { certain: found.length === 1 && items.length === 1 ? found[0] : undefined, possible: [...found, ...fallback] };
      } else {
        // `a.b` as field b of a composite column a.
        const col = this.lookupColumn(level, a);
        resolution = { certain: undefined, possible: col.possible };
      }
    } else if (parts.length === 3 || parts.length === 4) {
      if (parts.length === 4 && parts[0] !== this.input.catalog.database) {
        return unsupported(`cross-database references are not supported: ${qualifiedName(parts)}`);
      }
      const [x, y, z] = parts.slice(-3) as [string, string, string];
      const qualified = this.findQualified(level, x, y);
      if (qualified.length > 0) {
        const found = qualified.flatMap((i) => this.columnOf(i, z));
        resolution = { certain: found.length === 1 ? found[0] : undefined, possible: found };
        const target = qualified[0] as Item;
        if (this.mode === 'policy' && target.rel?.protection.protected) {
          // The table became a subquery aliased with its name: `schema.table.col` → `table.col`.
          const nearest = this.findRef(level, y);
          if (nearest.length !== 1 || nearest[0] !== target) {
            unsupported(`the qualified reference ${qualifiedName(parts.filter((p) => p !== '*'))} cannot be rewritten unambiguously; use a table alias`);
          }
          ref.fields = fields.slice(-2);
          ref.fields[0] = { String: { sval: y } };
        }
      } else {
        // `a.b.c`: table a, composite column b, field c.
        const items = this.findRef(level, x);
        const found = items.flatMap((i) => this.columnOf(i, y));
        resolution = { certain: undefined, possible: found };
      }
    } else {
      return refuse(RewriteSqlState.SyntaxError, `improper qualified name (too many dotted names): ${parts.join('.')}`);
    }
    for (const f of resolution.possible) this.check(f);
    if (this.mode === 'trusted' && resolution.possible.length === 0) {
      privilege(`column ${quoted(parts.join('.'))} does not exist in the relation the policy applies to`);
    }
    return resolution;
  }

  private check(found: Found): void {
    switch (found.kind) {
      case 'column':
        if (found.col.denied) throw new Refusal(found.col.denied);
        return;
      case 'system':
        if (this.mode === 'policy' && found.item.rel?.protection.protected) {
          const rel = found.item.rel.relation;
          privilege(`system column ${found.name} of ${rel.schema}.${rel.name} cannot be referenced: the table is protected by policy`);
        }
        return;
      case 'wholerow':
        if (found.item.deniedInside) throw new Refusal(found.item.deniedInside);
        return;
      case 'star':
        for (const item of found.items) if (item.deniedInside) throw new Refusal(item.deniedInside);
        return;
    }
  }

  // -------------------------------------------------------------------------
  // Expressions

  expr(node: unknown, level: Level, ctes: CteScope | undefined): void {
    if (node === undefined || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) this.expr(n, level, ctes);
      return;
    }
    const record = node as Record<string, unknown>;
    const keys = Object.keys(record);
    const type = keys.length === 1 ? (keys[0] as string) : '';
    if (!/^[A-Z]/.test(type)) {
      for (const v of Object.values(record)) this.expr(v, level, ctes);
      return;
    }
    const n = node as Node;
    if ('ColumnRef' in n) {
      this.columnRef(n.ColumnRef, level);
      return;
    }
    if ('SubLink' in n) {
      const sl: SubLink = n.SubLink;
      this.expr(sl.testexpr, level, ctes);
      if (sl.operName) this.operator(names(sl.operName));
      this.sublinkOutputs.set(sl, this.query(sl.subselect, level, ctes));
      return;
    }
    if ('FuncCall' in n) {
      const fc: FuncCall = n.FuncCall;
      this.function(names(fc.funcname));
      this.expr(fc.args, level, ctes);
      this.expr(fc.agg_order, level, ctes);
      this.expr(fc.agg_filter, level, ctes);
      this.expr(fc.over, level, ctes);
      return;
    }
    if ('A_Expr' in n) {
      this.operatorExpr(n.A_Expr);
      this.expr(n.A_Expr.lexpr, level, ctes);
      this.expr(n.A_Expr.rexpr, level, ctes);
      return;
    }
    if ('TypeCast' in n) {
      // The type name holds names and constant modifiers only; a checked domain runs its CHECK expressions.
      this.castType(names(n.TypeCast.typeName?.names));
      this.expr(n.TypeCast.arg, level, ctes);
      return;
    }
    if ('SortBy' in n) {
      if (n.SortBy.useOp) this.operator(names(n.SortBy.useOp));
      this.expr(n.SortBy.node, level, ctes);
      return;
    }
    if ('JsonArrayQueryConstructor' in n) {
      this.syntaxFunction('json_array');
      this.query(n.JsonArrayQueryConstructor.query, level, ctes);
      return;
    }
    const syntax = 'JsonFuncExpr' in n ? JSON_FUNC_NAMES[String(n.JsonFuncExpr.op)] : FUNCTION_SYNTAX[type];
    if (syntax !== undefined) this.syntaxFunction(syntax);
    if (NOT_EXPRESSIONS.has(type)) unsupported(`${type} inside an expression is not supported for restricted identities`);
    this.expr(record[type], level, ctes);
  }

  function(parts: readonly string[]): void {
    if (this.mode === 'trusted') return;
    const name = parts[parts.length - 1] ?? '';
    if (isBlockedFunction(name)) {
      privilege(`function ${qualifiedName(parts)} is not available to restricted identities: it runs SQL or reads data outside the statement's policies`);
    }
    const res = resolveFunction(this.input.catalog, parts, this.input.searchPath);
    if (res.kind === 'unknown') refuse(RewriteSqlState.UndefinedFunction, `function ${qualifiedName(parts)} does not exist`);
    if (res.kind !== 'user' && hasSideEffects(name)) {
      const access = statementAccess(this.input.policy, 'misc');
      if (access.effect === 'deny') {
        privilege(`function ${qualifiedName(parts)} changes state outside the statement (sequences, locks, notifications or the server) and needs the misc action`, access.rule);
      }
    }
    if (res.kind === 'user') {
      const access = statementAccess(this.input.policy, 'function');
      if (access.effect === 'deny') {
        privilege(`function ${qualifiedName([res.schema, res.name])} is not a built-in function: ${access.message ?? 'permission denied'}`, access.rule);
      }
    }
  }

  /**
   * Syntax that PostgreSQL 16 and later read as SQL/JSON constructs (and 17 as merge_action()) is a
   * plain function call to an older server, resolved on the search_path: there a function of that
   * name outside pg_catalog would run, so it is checked like one.
   */
  private syntaxFunction(name: string): void {
    if (this.mode === 'trusted') return;
    const res = resolveFunction(this.input.catalog, [name], this.input.searchPath);
    if (res.kind !== 'user') return;
    const access = statementAccess(this.input.policy, 'function');
    if (access.effect === 'deny') {
      privilege(`${name.toUpperCase()} may call function ${qualifiedName([res.schema, res.name])} on this server, which is not a built-in function: ${access.message ?? 'permission denied'}`, access.rule);
    }
  }

  private castType(parts: readonly string[]): void {
    if (this.mode === 'trusted' || parts.length === 0 || !mayBeCheckedDomain(this.input.catalog, parts, this.input.searchPath)) return;
    const access = statementAccess(this.input.policy, 'function');
    if (access.effect === 'deny') {
      privilege(`a cast to ${qualifiedName(parts)} runs the domain's CHECK constraints, which may call any function: ${access.message ?? 'permission denied'}`, access.rule);
    }
  }

  operator(parts: readonly string[]): void {
    if (this.mode === 'trusted' || parts.length === 0) return;
    const res = resolveOperator(this.input.catalog, parts, this.input.searchPath);
    if (res === 'unknown') refuse(RewriteSqlState.UndefinedFunction, `operator does not exist: ${parts.join('.')}`);
    if (res === 'user') {
      const access = statementAccess(this.input.policy, 'function');
      if (access.effect === 'deny') {
        privilege(`operator ${parts.join('.')} may run a user-defined function: ${access.message ?? 'permission denied'}`, access.rule);
      }
    }
  }

  private operatorExpr(e: A_Expr): void {
    switch (e.kind) {
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
      case 'AEXPR_NOT_BETWEEN_SYM':
        this.operator(['>=']);
        this.operator(['<=']);
        return;
      default:
        this.operator(names(e.name));
    }
  }

  // -------------------------------------------------------------------------
  // Writes

  /** The target of a write: resolved, checked, qualified, as a namespace item. */
  private writeTarget(rv: RangeVar | undefined, actions: readonly Action[], reads: boolean, command: string): Item {
    if (!rv) return unsupported(`${command} without a target`);
    const rel = this.resolve(rv);
    if (this.mode === 'policy') checkWriteTarget(this.input, rel, actions, reads, command);
    rv.schemaname = rel.schema;
    delete rv.catalogname;
    this.note(rel, false);
    return this.relationItem(rel, plainProtection(rel), rv.alias);
  }

  private returning(rc: ReturningClause | undefined, target: Item, level: Level, ctes: CteScope | undefined): Output {
    if (!rc) return [];
    let oldName = 'old';
    let newName = 'new';
    for (const o of rc.options ?? []) {
      if (!('ReturningOption' in o)) continue;
      if (o.ReturningOption.option === 'RETURNING_OPTION_OLD') oldName = o.ReturningOption.value ?? oldName;
      else newName = o.ReturningOption.value ?? newName;
    }
    const rows = (refname: string): Item => ({ refname, relVisible: true, colsVisible: false, columns: target.columns, members: [], deniedInside: target.deniedInside });
    const scope: Level = { items: [...level.items, rows(oldName), rows(newName)], parent: level.parent };
    return this.targets(rc.exprs ?? [], scope, ctes);
  }

  insert(s: InsertStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    return this.level(() => this.insertLevel(s, outer, ctes));
  }

  private insertLevel(s: InsertStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    const scope = s.withClause ? this.with(s.withClause, outer, ctes) : ctes;
    const conflict: OnConflictClause | undefined = s.onConflictClause;
    const upsert = conflict?.action === 'ONCONFLICT_UPDATE';
    const target = this.writeTarget(s.relation, upsert ? ['insert', 'update'] : ['insert'], upsert || s.returningClause !== undefined, 'INSERT');
    // The source query cannot see the target.
    this.query(s.selectStmt, outer, scope);
    const level: Level = { items: [target], parent: outer };
    if (conflict) {
      const excluded: Item = { ...target, refname: 'excluded', members: [] };
      const onConflict: Level = { items: [target, excluded], parent: outer };
      this.expr(conflict.infer, onConflict, scope);
      this.expr(conflict.targetList, onConflict, scope);
      this.expr(conflict.whereClause, onConflict, scope);
    }
    return this.returning(s.returningClause, target, level, scope);
  }

  update(s: UpdateStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    return this.level(() => this.updateLevel(s, outer, ctes));
  }

  private updateLevel(s: UpdateStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    const scope = s.withClause ? this.with(s.withClause, outer, ctes) : ctes;
    const target = this.writeTarget(s.relation, ['update'], true, 'UPDATE');
    const level: Level = { items: [target], parent: outer };
    if (s.fromClause) s.fromClause = s.fromClause.map((item) => this.fromItem(item, level, scope).node);
    this.expr(s.targetList, level, scope);
    this.expr(s.whereClause, level, scope);
    return this.returning(s.returningClause, target, level, scope);
  }

  delete(s: DeleteStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    return this.level(() => this.deleteLevel(s, outer, ctes));
  }

  private deleteLevel(s: DeleteStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    const scope = s.withClause ? this.with(s.withClause, outer, ctes) : ctes;
    const target = this.writeTarget(s.relation, ['delete'], true, 'DELETE');
    const level: Level = { items: [target], parent: outer };
    if (s.usingClause) s.usingClause = s.usingClause.map((item) => this.fromItem(item, level, scope).node);
    this.expr(s.whereClause, level, scope);
    return this.returning(s.returningClause, target, level, scope);
  }

  merge(s: MergeStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    return this.level(() => this.mergeLevel(s, outer, ctes));
  }

  private mergeLevel(s: MergeStmt, outer: Level | undefined, ctes: CteScope | undefined): Output {
    const scope = s.withClause ? this.with(s.withClause, outer, ctes) : ctes;
    const actions = new Set<Action>();
    for (const w of s.mergeWhenClauses ?? []) {
      if (!('MergeWhenClause' in w)) continue;
      const cmd = w.MergeWhenClause.commandType;
      if (cmd === 'CMD_UPDATE') actions.add('update');
      else if (cmd === 'CMD_INSERT') actions.add('insert');
      else if (cmd === 'CMD_DELETE') actions.add('delete');
    }
    const target = this.writeTarget(s.relation, [...actions], true, 'MERGE');
    const level: Level = { items: [target], parent: outer };
    if (s.sourceRelation) s.sourceRelation = this.fromItem(s.sourceRelation, level, scope).node;
    this.expr(s.joinCondition, level, scope);
    this.expr(s.mergeWhenClauses, level, scope);
    return this.returning(s.returningClause, target, level, scope);
  }

  /** COPY ... FROM STDIN: the target must be clear of policies; its WHERE sees the incoming row. */
  copyFrom(c: CopyStmt): void {
    const target = this.writeTarget(c.relation, ['copy_from'], false, 'COPY FROM');
    this.expr(c.whereClause, { items: [target], parent: undefined }, undefined);
  }

  /** Expressions outside any query (EXECUTE parameters). */
  freeExpressions(node: unknown): void {
    this.expr(node, { items: [], parent: undefined }, undefined);
  }
}

/** A relation as it is, with no policy applied. */
function plainProtection(rel: CatalogRelation): Protection {
  return {
    relation: rel,
    columns: new Map(rel.columns.map((c) => [c.name, { column: c, encrypted: false }] as const)),
    hasDenied: false,
    filters: [],
    protected: false,
    system: false,
  };
}

function mergeSetOutputs(left: Output, right: Output): Output {
  if (!left) return undefined;
  return left.map((c, i) => {
    const r = right?.[i];
    const same =
      r !== undefined &&
      c.source.kind === 'column' &&
      r.source.kind === 'column' &&
      c.source.schema === r.source.schema &&
      c.source.table === r.source.table &&
      c.source.column === r.source.column &&
      c.source.masked === r.source.masked &&
      c.source.encrypted === r.source.encrypted;
    return { name: c.name, source: same ? c.source : COMPUTED };
  });
}

/** Output columns as the plan reports them. */
export function outputColumns(out: Output): OutputColumn[] {
  return (out ?? []).map((c) => ({ name: c.name, source: c.source }));
}

/** What the conditions of a level may be copied into, for one protected reference. */
function pushdownTarget(alias: string, select: SelectStmt, p: Protection, visible: readonly string[]): PushdownTarget {
  const columns = new Map<string, PushdownColumn>();
  p.relation.columns.forEach((c, i) => {
    const policy = p.columns.get(c.name);
    columns.set(visible[i] ?? c.name, {
      innerName: c.name,
      raw: policy?.denied === undefined && policy?.maskSql === undefined,
      typeName: c.typeSchema === 'pg_catalog' && !c.typeIsArray ? c.typeName : undefined,
    });
  });
  return { alias, select, innerAlias: p.relation.name, columns };
}
