import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { buildTemplate, fillTemplate, literalShape, type LiteralTemplate } from './literal-template.js';
import type { RewriteDecision } from './plan.js';

/** Everything besides the statement that a rewrite decision depends on. */
export interface PlanScope {
  /** contextKey: the identity attributes the matching policies read, and the policy version. */
  readonly context: string;
  readonly catalog: string;
  readonly searchPath: readonly string[];
  readonly protocol: string;
}

/**
 * Rewrite decisions, so a repeated statement costs a lookup instead of a
 * parse, analysis and deparse. Statements are looked up twice over: by their
 * shape (literal-template.ts), which holds for every statement that differs
 * only in its constants, and by exact text for the rest. The scope is part of
 * every key.
 */
export class PlanCache {
  private readonly entries: LRUCache<string, RewriteDecision>;
  /** Templates by shape; `false` remembers a shape that gets none, so it is not tried again. */
  private readonly templates: LRUCache<string, LiteralTemplate | false>;
  hits = 0;
  misses = 0;
  templateHits = 0;

  constructor(maxEntries: number) {
    // Bounded by bytes as well as entries: one rewritten statement can be megabytes.
    this.entries = new LRUCache({ max: Math.max(1, maxEntries), maxSize: MAX_BYTES, sizeCalculation: decisionBytes });
    this.templates = new LRUCache({ max: Math.max(1, maxEntries), maxSize: MAX_BYTES, sizeCalculation: templateBytes });
  }

  lookup(scope: PlanScope, sql: string, plan: (sql: string) => RewriteDecision): RewriteDecision {
    const key = planKey(scope, sql);
    const cached = this.entries.get(key);
    if (cached) {
      this.hits += 1;
      return cached;
    }
    const shape = literalShape(sql);
    const shapeKey = shape && planKey(scope, shape.key);
    const template = shapeKey === undefined ? undefined : this.templates.get(shapeKey);
    if (shape && template) {
      this.hits += 1;
      this.templateHits += 1;
      return fillTemplate(template, shape);
    }
    this.misses += 1;
    const decision = plan(sql);
    // A shape is tried once: what gets no template is cached by its text.
    if (shape && shapeKey !== undefined && template === undefined) {
      const built = buildTemplate(shape, sql, decision, plan);
      this.templates.set(shapeKey, built ?? false);
      if (built) return decision;
    }
    this.entries.set(key, decision);
    return decision;
  }

  get size(): number {
    return this.entries.size + this.templates.size;
  }
}

/** Each of the two caches holds at most this much statement text. */
const MAX_BYTES = 64 * 1024 * 1024;
/** A fixed cost per entry on top of its text: keys, plans and the cache's own bookkeeping. */
const ENTRY_OVERHEAD = 512;

function decisionBytes(decision: RewriteDecision): number {
  return ENTRY_OVERHEAD + (decision.kind === 'rewrite' ? decision.sql.length : 0);
}

function templateBytes(template: LiteralTemplate | false): number {
  return ENTRY_OVERHEAD + (template ? template.segments.reduce((n, s) => n + s.length, 0) : 0);
}

/** A digest, so that keys cost the same whatever the length of the statement or its shape. */
function planKey(scope: PlanScope, statement: string): string {
  return createHash('sha256')
    .update(`${scope.context}\u0000${scope.catalog}\u0000${scope.searchPath.join(',')}\u0000${scope.protocol}\u0000`)
    .update(statement)
    .digest('base64');
}
