import { LRUCache } from 'lru-cache';
import type { RewriteDecision } from './plan.js';

/**
 * Rewrite decisions by SQL text and policy context, so a repeated statement
 * costs a lookup instead of a parse, analysis and deparse. The key holds
 * everything a decision depends on: the identity attributes the matching
 * policies read and the policy version (contextKey), the catalog version, the
 * pinned search_path and the protocol.
 */
export class PlanCache {
  private readonly entries: LRUCache<string, RewriteDecision>;
  hits = 0;
  misses = 0;

  constructor(maxEntries: number) {
    this.entries = new LRUCache({ max: Math.max(1, maxEntries) });
  }

  lookup(key: string, plan: () => RewriteDecision): RewriteDecision {
    const cached = this.entries.get(key);
    if (cached) {
      this.hits += 1;
      return cached;
    }
    this.misses += 1;
    const decision = plan();
    this.entries.set(key, decision);
    return decision;
  }

  get size(): number {
    return this.entries.size;
  }
}

export function planKey(parts: { context: string; catalog: string; searchPath: readonly string[]; protocol: string; sql: string }): string {
  return `${parts.context}\u0000${parts.catalog}\u0000${parts.searchPath.join(',')}\u0000${parts.protocol}\u0000${parts.sql}`;
}
