/**
 * Rewrite templates for statements that differ only in their literals.
 *
 * Clients of the simple protocol (psql, pgbench -M simple, many ORMs) inline
 * values, so caching rewrites by exact text misses on every new literal. Here
 * a statement's *shape* is its parse tree with each string or number constant
 * reduced to its kind, and one rewrite per shape becomes a template whose
 * slots take the constants of later statements.
 *
 * Why that is sound: the rewriter decides on the tree, and it reads constants
 * only by kind (pushdown types a comparison by it; see pushdown.ts
 * constantType), never by value. Templates are only made for SELECT
 * statements, where no setting, option or name is spelled as a constant. The
 * template is built from two plans with different sentinel values in every
 * slot: both must give the same decision and the same text between the
 * slots, so a value that the decision depends on, or a sentinel that collides
 * with a constant of the policies, yields no template. Last, the template
 * filled with the statement's own constants must equal its direct rewrite.
 * Slots are filled with constants quoted here, in forms that read the same
 * whatever standard_conforming_strings says.
 */
import { randomBytes } from 'node:crypto';
import { parseSync, scanSync } from 'libpg-query';
import type { A_Const, Node, RawStmt } from 'libpg-query';
import { deparseStatement, POSITION_KEYS } from './deparse.js';
import type { RewriteDecision, StatementPlan } from './plan.js';

/** How the rewriter tells constants apart (pushdown.ts constantType): a template holds for one kind per slot. */
type LiteralKind = 'string' | 'integer' | 'bigint' | 'numeric';

/** A statement reduced to its shape, with the constants that fill the slots. */
export interface LiteralShape {
  /** The parse tree without positions, each templated constant replaced by its kind. */
  readonly key: string;
  readonly literals: readonly A_Const[];
  readonly stmts: readonly RawStmt[];
}

/** One rewrite per shape: `segments` interleaved with the constants `slots` name (segments.length = slots.length + 1). */
export interface LiteralTemplate {
  readonly kind: 'forward' | 'rewrite';
  readonly statements: readonly StatementPlan[];
  readonly segments: readonly string[];
  readonly slots: readonly number[];
}

/** PostgreSQL's numeric literal forms (with the minus sign the parser folds in), nothing else. */
const NUMERIC_TEXT = /^-?(?:(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?|0[xXoObB][\da-fA-F_]+)$/;

function kindOf(c: A_Const): LiteralKind | undefined {
  if (c.isnull) return undefined;
  if (c.sval !== undefined) return 'string';
  if (c.ival !== undefined) return 'integer';
  if (c.fval !== undefined) {
    const text = c.fval.fval ?? '';
    if (!NUMERIC_TEXT.test(text)) return undefined;
    return /^\d+$/.test(text) ? 'bigint' : 'numeric';
  }
  return undefined; // booleans and bit strings have too few values to template; they stay in the key
}


/**
 * Larger statements are cached by their text only: building a template costs two extra rewrites,
 * which a client could otherwise make every statement pay by varying the length of an IN list.
 */
const MAX_TEMPLATE_SQL = 16_384;
const MAX_TEMPLATE_LITERALS = 256;

/**
 * The constants that become slots, in a fixed walk order (equal keys give equal orders). Type
 * modifiers (`varchar(n)`) stay in the key: the deparser prints some of them by value.
 */
function collect(node: unknown, out: A_Const[]): void {
  if (Array.isArray(node)) {
    for (const n of node) collect(n, out);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'typmods') continue;
    if (k === 'A_Const' && kindOf(v as A_Const) !== undefined) out.push(v as A_Const);
    else collect(v, out);
  }
}

/**
 * The shape of a statement, or undefined when it gets no template: it does
 * not parse, is not made of plain SELECTs, or has no constant to template.
 */
export function literalShape(sql: string): LiteralShape | undefined {
  if (sql.length > MAX_TEMPLATE_SQL) return undefined;
  try {
    const stmts = parseSync(sql).stmts ?? [];
    if (stmts.length === 0 || !stmts.every((s) => s.stmt && 'SelectStmt' in s.stmt && !s.stmt.SelectStmt.intoClause)) return undefined;
    const literals: A_Const[] = [];
    collect(stmts, literals);
    if (literals.length === 0 || literals.length > MAX_TEMPLATE_LITERALS) return undefined;
    const slots = new Set<unknown>(literals);
    const key = JSON.stringify(stmts, (k: string, v: unknown) => {
      if (POSITION_KEYS.has(k)) return undefined;
      if (k === 'A_Const' && slots.has(v)) return { slot: kindOf(v as A_Const) };
      return v;
    });
    return { key, literals, stmts };
  } catch {
    // Does not parse, or nests too deeply for the walks here: the rewriter decides it on its own.
    return undefined;
  }
}

/** SQL text for a constant, to fill a slot: one self-delimited token, or a parenthesized negative number. */
export function literalText(c: A_Const): string {
  if (c.sval !== undefined) {
    const s = c.sval.sval ?? '';
    const quoted = s.replaceAll("'", "''");
    // With a backslash, the E'' form: it reads the same whatever standard_conforming_strings says.
    return s.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
  }
  const text = c.ival !== undefined ? String(c.ival.ival ?? 0) : (c.fval?.fval ?? '');
  if (!NUMERIC_TEXT.test(text)) throw new Error(`not a numeric constant: ${text}`);
  return text.startsWith('-') ? `(${text})` : text;
}

/** The statement with every slot holding a sentinel of its kind: `${tag}${nonce}_${i}` or a number derived from i. */
function sentinelText(shape: LiteralShape, variant: 0 | 1, nonce: string): { sql: string; sentinels: Map<string, number> } {
  const stmts = structuredClone(shape.stmts) as RawStmt[];
  const literals: A_Const[] = [];
  collect(stmts, literals);
  const sentinels = new Map<string, number>();
  literals.forEach((c, i) => {
    const kind = kindOf(c)!;
    delete c.sval;
    delete c.ival;
    delete c.fval;
    let token: string;
    if (kind === 'string') {
      const value = `pgw${variant ? 'b' : 'a'}${nonce}_${i}`;
      c.sval = { sval: value };
      token = `'${value}'`;
    } else if (kind === 'integer') {
      const value = (variant ? 1_500_000_000 : 1_100_000_000) + i * 7919;
      c.ival = { ival: value };
      token = String(value);
    } else {
      const base = variant ? '9300000000000' : '9100000000000';
      const value = kind === 'bigint' ? `${base}${String(i).padStart(6, '0')}` : `${base}.${String(i).padStart(6, '0')}1`;
      c.fval = { fval: value };
      token = value;
    }
    sentinels.set(token, i);
  });
  const sql = stmts.map((s) => deparseStatement(s.stmt as Node)).join(';\n');
  return { sql, sentinels };
}

/** The rewritten text cut at every sentinel token; undefined when it does not scan. */
function cut(sql: string, sentinels: ReadonlyMap<string, number>): { segments: string[]; slots: number[] } | undefined {
  let tokens;
  try {
    tokens = scanSync(sql).tokens;
  } catch {
    return undefined;
  }
  const bytes = Buffer.from(sql, 'utf8');
  const segments: string[] = [];
  const slots: number[] = [];
  let from = 0;
  for (const t of tokens) {
    if (t.tokenName !== 'SCONST' && t.tokenName !== 'ICONST' && t.tokenName !== 'FCONST') continue;
    // Scanner positions are byte offsets.
    const slot = sentinels.get(bytes.subarray(t.start, t.end).toString('utf8'));
    if (slot === undefined) continue;
    segments.push(bytes.subarray(from, t.start).toString('utf8'));
    slots.push(slot);
    from = t.end;
  }
  segments.push(bytes.subarray(from).toString('utf8'));
  return { segments, slots };
}

/** The decision a template gives for a statement of its shape. */
export function fillTemplate(template: LiteralTemplate, shape: LiteralShape): RewriteDecision {
  if (template.kind === 'forward') return { kind: 'forward', statements: template.statements };
  let text = template.segments[0]!;
  for (let i = 0; i < template.slots.length; i++) text += literalText(shape.literals[template.slots[i]!]!) + template.segments[i + 1]!;
  return { kind: 'rewrite', sql: text, statements: template.statements };
}

function samePlans(a: readonly StatementPlan[], b: readonly StatementPlan[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A template for the shape of `sql`, given its own decision and a planner;
 * undefined when the decision depends on more than the shape.
 */
export function buildTemplate(shape: LiteralShape, sql: string, decision: RewriteDecision, plan: (sql: string) => RewriteDecision): LiteralTemplate | undefined {
  if (decision.kind === 'deny') return undefined;
  try {
    return templateOf(shape, sql, decision, plan);
  } catch {
    return undefined; // a statement the deparser or scanner cannot handle: no template, the decision stands
  }
}

function templateOf(shape: LiteralShape, sql: string, decision: Exclude<RewriteDecision, { kind: 'deny' }>, plan: (sql: string) => RewriteDecision): LiteralTemplate | undefined {
  const nonce = randomBytes(6).toString('hex');
  const variants = ([0, 1] as const).map((v) => {
    const s = sentinelText(shape, v, nonce);
    return { ...s, decision: plan(s.sql) };
  });
  const [a, b] = variants as [(typeof variants)[0], (typeof variants)[0]];
  for (const v of variants) {
    if (v.decision.kind !== decision.kind || !samePlans(v.decision.statements, decision.statements)) return undefined;
  }
  if (decision.kind === 'forward') return { kind: 'forward', statements: decision.statements, segments: [], slots: [] };
  if (a.decision.kind !== 'rewrite' || b.decision.kind !== 'rewrite') return undefined;
  const cutA = cut(a.decision.sql, a.sentinels);
  const cutB = cut(b.decision.sql, b.sentinels);
  if (!cutA || !cutB) return undefined;
  if (cutA.slots.join() !== cutB.slots.join() || cutA.segments.length !== cutB.segments.length) return undefined;
  if (cutA.segments.some((s, i) => s !== cutB.segments[i])) return undefined;
  const template: LiteralTemplate = { kind: 'rewrite', statements: decision.statements, segments: cutA.segments, slots: cutA.slots };
  const filled = fillTemplate(template, shape);
  return filled.kind === 'rewrite' && filled.sql === decision.sql ? template : undefined;
}
