/**
 * Renders row filters for an identity: every `${user.name}`, `${user.groups}`
 * and `${claims.a.b}` placeholder (a ParamRef in the compiled filter, see
 * policy/row-filter.ts) becomes a typed constant node in the parse tree, so
 * user data never passes through SQL text on its way into the statement:
 *
 *   string          → 'value'::pg_catalog.text
 *   number          → value::pg_catalog.numeric
 *   boolean         → true / false
 *   list            → ARRAY['a', 'b']::pg_catalog.text[]
 *   missing claim   → the whole filter becomes `false` (fail closed)
 */
import type { Node, TypeName } from 'libpg-query';
import type { Identity } from '../auth/identity.js';
import { deparseExpression } from './deparse.js';
import { compileRowFilter, resolvePlaceholder, type CompiledRowFilter, type PlaceholderValue } from '../policy/row-filter.js';

export { deparseExpression } from './deparse.js';
export {
  compileRowFilter,
  loadSqlParser,
  parsePlaceholder,
  resolvePlaceholder,
  stripLocations,
  type CompiledRowFilter,
  type CompileResult,
  type Placeholder,
  type PlaceholderValue,
} from '../policy/row-filter.js';

export interface RenderedRowFilter {
  /** SQL text of the rendered expression (informational: the tree is what gets spliced). */
  readonly sql: string;
  readonly ast: Node;
  /** Set when a placeholder had no usable value and the filter became `false`. */
  readonly failClosed?: string;
}

// ---------------------------------------------------------------------------
// Literal nodes, shaped exactly as libpg_query's parser would emit them
// (protobuf JSON omits zero values) so a deparse/re-parse compares equal.

function qualifiedType(name: string, array = false): TypeName {
  const typeName: TypeName = {
    names: [{ String: { sval: 'pg_catalog' } }, { String: { sval: name } }],
    typemod: -1,
  };
  if (array) typeName.arrayBounds = [{ Integer: { ival: -1 } }];
  return typeName;
}

function stringConst(value: string): Node {
  return { A_Const: { sval: { sval: value } } };
}

function numberConst(value: number): Node {
  // The grammar makes an integer constant only for int4 values, except that
  // -2147483648 arrives as a float (negation is applied to 2147483648).
  if (Number.isInteger(value) && Math.abs(value) <= 2147483647) {
    return { A_Const: { ival: value === 0 ? {} : { ival: value } } };
  }
  return { A_Const: { fval: { fval: String(value) } } };
}

function falseNode(): Node {
  return { A_Const: { boolval: {} } };
}

/** The constant node for a resolved placeholder value. */
export function literalNode(value: Exclude<PlaceholderValue, { type: 'missing' }>): Node {
  switch (value.type) {
    case 'text':
      return { TypeCast: { arg: stringConst(value.value), typeName: qualifiedType('text') } };
    case 'numeric':
      return { TypeCast: { arg: numberConst(value.value), typeName: qualifiedType('numeric') } };
    case 'boolean':
      return value.value ? { A_Const: { boolval: { boolval: true } } } : falseNode();
    case 'textArray': {
      const array = value.value.length === 0 ? {} : { elements: value.value.map(stringConst) };
      return { TypeCast: { arg: { A_ArrayExpr: array }, typeName: qualifiedType('text', true) } };
    }
  }
}

/**
 * Renders a row filter for an identity: the filter tree with every placeholder
 * replaced by a typed constant. Any placeholder without a usable value (missing
 * claim, object claim, NUL byte) turns the whole filter into `false`.
 */
export function renderRowFilter(filter: CompiledRowFilter | string, identity: Identity): RenderedRowFilter {
  let compiled: CompiledRowFilter;
  if (typeof filter === 'string') {
    const result = compileRowFilter(filter);
    if (!result.ok) throw new Error(`invalid row filter: ${result.message}`);
    compiled = result.filter;
  } else {
    compiled = filter;
  }
  const literals: Node[] = [];
  for (const p of compiled.placeholders) {
    const value = resolvePlaceholder(p, identity);
    if (value.type === 'missing') return { sql: 'false', ast: falseNode(), failClosed: value.reason };
    literals.push(literalNode(value));
  }
  const ast = substituteParams(compiled.ast, literals) as Node;
  return { sql: deparseExpression(ast), ast };
}

function substituteParams(node: unknown, literals: readonly Node[]): unknown {
  if (Array.isArray(node)) return node.map((n) => substituteParams(n, literals));
  if (typeof node !== 'object' || node === null) return node;
  const record = node as Record<string, unknown>;
  const param = record['ParamRef'] as { number?: number } | undefined;
  if (param !== undefined && Object.keys(record).length === 1) {
    const literal = literals[(param.number ?? 0) - 1];
    if (!literal) throw new Error(`row filter references unknown parameter $${param.number}`);
    return structuredClone(literal);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) out[k] = substituteParams(v, literals);
  return out;
}

