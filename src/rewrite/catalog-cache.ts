import type { Catalog } from './catalog.js';

/** Reads a fresh catalog snapshot of one database on a connection of pgward's own. */
export type CatalogLoader = (database: string) => Promise<Catalog>;

interface Entry {
  catalog: Catalog;
  loadedAt: number;
  stale: boolean;
}

/**
 * Catalog snapshots per upstream database, shared by sessions. A snapshot is
 * reused until it is older than maxAge or marked stale (DDL seen, policies
 * reloaded, a statement failed on a missing relation or column). Then, when a
 * loader is available (pgward has its own service login), a fresh snapshot is
 * read in the background and handed to every live session of that database;
 * otherwise the next restricted session to connect reads one.
 */
export class CatalogCache {
  private readonly snapshots = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<void>>();
  private readonly listeners = new Set<(database: string, catalog: Catalog) => void>();
  private readonly lastRefresh = new Map<string, number>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly loader?: CatalogLoader,
    private readonly onLoadError: (database: string, error: Error) => void = () => {},
    private readonly now: () => number = Date.now,
    /** Clients can provoke stale-name errors at will: refreshes of one database are spaced at least this far apart. */
    private readonly minRefreshIntervalMs = 1_000,
  ) {}

  fresh(database: string): Catalog | undefined {
    const entry = this.snapshots.get(database);
    if (!entry || entry.stale || this.now() - entry.loadedAt > this.maxAgeMs) return undefined;
    return entry.catalog;
  }

  store(database: string, catalog: Catalog): void {
    const previous = this.snapshots.get(database);
    this.snapshots.set(database, { catalog, loadedAt: this.now(), stale: false });
    if (previous?.catalog.version !== catalog.version) {
      for (const listener of this.listeners) listener(database, catalog);
    }
  }

  /** Sessions hear of newer snapshots here. */
  onUpdate(listener: (database: string, catalog: Catalog) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  markStale(database: string): void {
    const entry = this.snapshots.get(database);
    if (entry) entry.stale = true;
    this.refresh(database);
  }

  markAllStale(): void {
    for (const database of this.snapshots.keys()) this.markStale(database);
  }

  /** Resolves once a background refresh under way (if any) has finished. */
  async settled(database: string): Promise<void> {
    await this.loading.get(database);
  }

  private refresh(database: string): void {
    if (!this.loader || this.loading.has(database)) return;
    const last = this.lastRefresh.get(database);
    if (last !== undefined && this.now() - last < this.minRefreshIntervalMs) return;
    this.lastRefresh.set(database, this.now());
    const load = this.loader(database)
      .then((catalog) => this.store(database, catalog))
      .catch((error: Error) => this.onLoadError(database, error))
      .finally(() => this.loading.delete(database));
    this.loading.set(database, load);
  }
}
