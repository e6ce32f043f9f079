/**
 * Tree → SQL text for rewritten statements, and the positions-free form of a
 * tree used to compare what was built with what the text parses back to.
 *
 * pgsql-deparser is good but not trusted (STYLE.md): every rewritten
 * statement is parsed again and compared with the tree it came from, and the
 * known differences are corrected here, in a Deparser subclass. Note that
 * `Deparser.deparse` is static and ignores subclasses: always
 * `new QualifiedCastDeparser(tree).deparseQuery()`.
 */
import type { Node } from 'libpg-query';
import { Deparser } from 'pgsql-deparser';

type DeparseContext = Parameters<Deparser['TypeCast']>[1];

/**
 * pgsql-deparser prints `x::pg_catalog.text` as `x::text`, which re-parses as
 * an unqualified (search_path-resolved) type. Casts to pg_catalog types are
 * printed in CAST(... AS pg_catalog.t) form instead, so the text re-parses to
 * the same tree.
 */
export class QualifiedCastDeparser extends Deparser {
  override TypeCast(node: Parameters<Deparser['TypeCast']>[0], context: DeparseContext): string {
    const names = node.typeName?.names ?? [];
    const first = names[0];
    if (names.length === 2 && first && 'String' in first && first.String.sval === 'pg_catalog' && node.arg && node.typeName) {
      return `CAST(${this.visit(node.arg, context)} AS ${this.TypeName(node.typeName, context)})`;
    }
    return super.TypeCast(node, context);
  }
}

/** SQL text for an expression tree, on one line. */
export function deparseExpression(node: Node): string {
  return new QualifiedCastDeparser(node, { pretty: false }).deparseQuery();
}

/** SQL text for one statement tree (a RawStmt's `stmt`), on one line, without a trailing semicolon. */
export function deparseStatement(node: Node): string {
  return new QualifiedCastDeparser(node, { pretty: false }).deparseQuery().replace(/;\s*$/, '');
}

// Source positions: they differ between any two texts of the same statement.
export const POSITION_KEYS: ReadonlySet<string> = new Set(['location', 'stmt_location', 'stmt_len', 'list_start', 'list_end', 'rexpr_list_start', 'rexpr_list_end', 'name_location']);

/**
 * A copy of a parse tree without source positions (every position key the
 * PostgreSQL 18 tree has, unlike row-filter.ts's stripLocations, which
 * predates `rexpr_list_start` and friends).
 */
export function stripPositions<T>(node: T): T {
  if (Array.isArray(node)) return node.map((n: unknown) => stripPositions(n)) as T;
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (POSITION_KEYS.has(k)) continue;
    out[k] = stripPositions(v);
  }
  return out as T;
}

/** Deep equality of two parse trees, ignoring key order (and keys holding undefined). */
export function sameTree(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameTree(x, b[i]));
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(rb, k) && sameTree(ra[k], rb[k]));
}
