import type { Node, SelectStmt } from 'libpg-query';

/**
 * Copies provably harmless conditions of a query level into the protected
 * subqueries it reads, so an indexed lookup stays an index scan.
 *
 * Protected subqueries end in OFFSET 0, which keeps the planner from pushing
 * outer conditions below the row filter (a leaky condition could otherwise
 * see hidden rows). That also stops `WHERE id = $1` from using an index. Like
 * PostgreSQL's security-barrier views, pgward copies a condition inside only
 * when it cannot leak: it compares a raw (unmasked) column with a constant or
 * parameter through an operator PostgreSQL marks leakproof, or tests the
 * column IS NOT NULL. The outer condition stays where it was, so results are
 * unchanged; every copied condition is strict (NULL fails it), which keeps
 * outer joins' null-extended rows as they were.
 */

export interface PushdownColumn {
  /** The column's name inside the subquery (the catalog name). */
  readonly innerName: string;
  /** Unmasked and not denied: its raw value is what the outer query sees. */
  readonly raw: boolean;
  /** pg_catalog type name, or undefined for types outside pg_catalog and arrays. */
  readonly typeName: string | undefined;
}

export interface PushdownTarget {
  /** The name the outer query uses for the protected reference. */
  readonly alias: string;
  /** The protected subquery itself. */
  readonly select: SelectStmt;
  /** The alias of the relation inside the subquery. */
  readonly innerAlias: string;
  /** By the name the outer query sees. */
  readonly columns: ReadonlyMap<string, PushdownColumn>;
}

/** Whether `left op right` (pg_catalog type names) runs a leakproof function. */
export type LeakproofCheck = (operator: string, left: string, right: string) => boolean;

const COMPARISONS = new Set(['=', '<>', '!=', '<', '<=', '>', '>=']);

/** Types whose operators live on another type (binary-coercible). */
const OPERATOR_TYPE: Readonly<Record<string, string>> = { varchar: 'text' };

/**
 * @param where the level's WHERE clause (not modified)
 * @param targets the protected references at this level
 * @param soleItem the one FROM item of the level when there is exactly one, for unqualified names
 * @returns whether the WHERE clause had conditions and every one was copied inside
 */
export function pushDownConditions(
  where: Node | undefined,
  targets: readonly PushdownTarget[],
  soleItem: PushdownTarget | undefined,
  leakproof: LeakproofCheck,
): boolean {
  if (!where) return false;
  let all = true;
  for (const condition of conjuncts(where)) {
    const placed = targets.length > 0 ? placeable(condition, targets, soleItem, leakproof) : undefined;
    if (placed) addCondition(placed.target.select, placed.inner);
    else all = false;
  }
  return all;
}

/**
 * The OFFSET 0 fence only matters when some condition the planner could move
 * below the row filter might leak. A level that reads one protected reference
 * and nothing else, whose every WHERE condition was proven leakproof (and
 * copied inside), and that has no HAVING (the planner turns aggregate-free
 * HAVING conditions into WHERE ones), can let the planner flatten the
 * subquery: it then plans like the original statement. That is the shape of
 * point lookups (`WHERE id = $1`), where the fence's extra planning shows most.
 */
export function dropFence(target: PushdownTarget): void {
  delete target.select.limitOffset;
  // As the parser writes a SELECT without LIMIT or OFFSET, so the re-parse check agrees.
  target.select.limitOption = 'LIMIT_OPTION_DEFAULT';
}

function conjuncts(node: Node): Node[] {
  if ('BoolExpr' in node && node.BoolExpr.boolop === 'AND_EXPR') return (node.BoolExpr.args ?? []).flatMap(conjuncts);
  return [node];
}

interface Placed {
  target: PushdownTarget;
  inner: Node;
}

function placeable(condition: Node, targets: readonly PushdownTarget[], sole: PushdownTarget | undefined, leakproof: LeakproofCheck): Placed | undefined {
  if ('NullTest' in condition) {
    const test = condition.NullTest;
    if (test.nulltesttype !== 'IS_NOT_NULL' || !test.arg) return undefined;
    const column = columnOf(test.arg, targets, sole);
    if (!column) return undefined;
    return { target: column.target, inner: { NullTest: { ...test, arg: innerRef(column) } } };
  }
  if (!('A_Expr' in condition)) return undefined;
  const expr = condition.A_Expr;
  const operator = operatorName(expr.name);
  if (expr.kind === 'AEXPR_OP' && operator !== undefined && COMPARISONS.has(operator) && expr.lexpr && expr.rexpr) {
    const left = columnOf(expr.lexpr, targets, sole);
    const right = columnOf(expr.rexpr, targets, sole);
    if (left && !right) {
      const constant = constantType(expr.rexpr, left.column.typeName!);
      if (!constant || !leakproof(operator, operatorType(left.column.typeName!), operatorType(constant))) return undefined;
      return { target: left.target, inner: { A_Expr: { ...expr, lexpr: innerRef(left) } } };
    }
    if (right && !left) {
      const constant = constantType(expr.lexpr, right.column.typeName!);
      if (!constant || !leakproof(operator, operatorType(constant), operatorType(right.column.typeName!))) return undefined;
      return { target: right.target, inner: { A_Expr: { ...expr, rexpr: innerRef(right) } } };
    }
    return undefined;
  }
  if ((expr.kind === 'AEXPR_IN' || expr.kind === 'AEXPR_BETWEEN') && expr.lexpr && expr.rexpr && 'List' in expr.rexpr) {
    const column = columnOf(expr.lexpr, targets, sole);
    if (!column) return undefined;
    // x IN (...) compares with the named operator; BETWEEN uses >= and <=.
    const operators = expr.kind === 'AEXPR_IN' ? (operator === '=' ? ['='] : []) : ['>=', '<='];
    if (operators.length === 0) return undefined;
    const own = operatorType(column.column.typeName!);
    for (const item of expr.rexpr.List.items ?? []) {
      const constant = constantType(item, column.column.typeName!);
      if (!constant || !operators.every((op) => leakproof(op, own, operatorType(constant)))) return undefined;
    }
    return { target: column.target, inner: { A_Expr: { ...expr, lexpr: innerRef(column) } } };
  }
  return undefined;
}

interface ColumnUse {
  target: PushdownTarget;
  column: PushdownColumn;
}

/** The raw, pg_catalog-typed column of a protected reference that `node` names, if it names one for sure. */
function columnOf(node: Node, targets: readonly PushdownTarget[], sole: PushdownTarget | undefined): ColumnUse | undefined {
  if (!('ColumnRef' in node)) return undefined;
  const fields = node.ColumnRef.fields ?? [];
  const names = fields.map((f) => ('String' in f ? f.String.sval : undefined));
  if (names.some((n) => n === undefined)) return undefined;
  let target: PushdownTarget | undefined;
  let name: string | undefined;
  if (names.length === 1) {
    target = sole;
    name = names[0];
  } else if (names.length === 2) {
    target = targets.find((t) => t.alias === names[0]);
    name = names[1];
  }
  const column = target && name !== undefined ? target.columns.get(name) : undefined;
  if (!target || !column || !column.raw || column.typeName === undefined) return undefined;
  return { target, column };
}

/** The type a constant takes next to a column of `columnType`, or undefined when it is not a plain constant. */
function constantType(node: Node, columnType: string): string | undefined {
  if ('ParamRef' in node) return columnType;
  if ('A_Const' in node) {
    const constant = node.A_Const;
    if (constant.isnull) return undefined;
    if (constant.ival !== undefined) return 'int4';
    if (constant.fval !== undefined) return /^\d+$/.test(constant.fval.fval ?? '') ? 'int8' : 'numeric';
    if (constant.sval !== undefined) return columnType; // an untyped literal takes the column's type
    if (constant.boolval !== undefined) return 'bool';
    return undefined;
  }
  if ('TypeCast' in node) {
    const cast = node.TypeCast;
    if (!cast.arg || !('A_Const' in cast.arg || 'ParamRef' in cast.arg) || cast.typeName?.arrayBounds) return undefined;
    const parts = (cast.typeName?.names ?? []).map((n) => ('String' in n ? n.String.sval : undefined));
    if (parts.length === 2 && parts[0] === 'pg_catalog') return parts[1];
    return parts.length === 1 ? parts[0] : undefined;
  }
  return undefined;
}

function operatorName(name: readonly Node[] | undefined): string | undefined {
  const parts = (name ?? []).map((n) => ('String' in n ? n.String.sval : undefined));
  if (parts.length === 1) return parts[0];
  if (parts.length === 2 && parts[0] === 'pg_catalog') return parts[1];
  return undefined;
}

const operatorType = (type: string): string => OPERATOR_TYPE[type] ?? type;

function innerRef(use: ColumnUse): Node {
  return { ColumnRef: { fields: [{ String: { sval: use.target.innerAlias } }, { String: { sval: use.column.innerName } }] } };
}

function addCondition(select: SelectStmt, condition: Node): void {
  const existing = select.whereClause;
  select.whereClause = existing ? { BoolExpr: { boolop: 'AND_EXPR', args: [...conjuncts(existing), structuredClone(condition)] } } : structuredClone(condition);
}
