import type { Catalog } from './catalog.js';

/**
 * Catalog snapshots per upstream database, shared by sessions. A snapshot is
 * reused until it is older than maxAge or marked stale (DDL seen, or a
 * statement named a relation the snapshot lacks); the next restricted session
 * to connect then reads a fresh one.
 */
export class CatalogCache {
  private readonly snapshots = new Map<string, { catalog: Catalog; loadedAt: number; stale: boolean }>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  fresh(database: string): Catalog | undefined {
    const entry = this.snapshots.get(database);
    if (!entry || entry.stale || this.now() - entry.loadedAt > this.maxAgeMs) return undefined;
    return entry.catalog;
  }

  store(database: string, catalog: Catalog): void {
    this.snapshots.set(database, { catalog, loadedAt: this.now(), stale: false });
  }

  markStale(database: string): void {
    const entry = this.snapshots.get(database);
    if (entry) entry.stale = true;
  }
}
