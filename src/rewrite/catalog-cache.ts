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
  private readonly listeners = new Set<(database: string, catalog: Catalog, readAt: number) => void>();
  private readonly lastRefresh = new Map<string, number>();
  /** Databases marked stale again while a load was under way or too soon after one: read once more. */
  private readonly again = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly loader?: CatalogLoader,
    private readonly onLoadError: (database: string, error: Error) => void = () => {},
    private readonly now: () => number = Date.now,
    /** Clients can provoke stale-name errors at will: refreshes of one database are spaced at least this far apart. */
    private readonly minRefreshIntervalMs = 1_000,
  ) {}

  /** Whether stale snapshots are re-read in the background (pgward has a login of its own). */
  get refreshes(): boolean {
    return this.loader !== undefined;
  }

  fresh(database: string): Catalog | undefined {
    const entry = this.snapshots.get(database);
    if (!entry || entry.stale || this.now() - entry.loadedAt > this.maxAgeMs) return undefined;
    return entry.catalog;
  }

  /** `readAt`: when the snapshot's read began; anything committed before then is in it. */
  store(database: string, catalog: Catalog, readAt: number = this.now()): void {
    this.snapshots.set(database, { catalog, loadedAt: readAt, stale: false });
    for (const listener of this.listeners) listener(database, catalog, readAt);
  }

  /** Sessions hear of each snapshot read here, with when its read began. */
  onUpdate(listener: (database: string, catalog: Catalog, readAt: number) => void): () => void {
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

  /** Resolves once background refreshes under way (if any) have finished. */
  async settled(database: string): Promise<void> {
    while (this.loading.has(database)) await this.loading.get(database);
  }

  private refresh(database: string): void {
    const loader = this.loader;
    if (!loader) return;
    // A change marked during a load may not be in what that load reads: read once more after it.
    if (this.loading.has(database) || this.timers.has(database)) {
      this.again.add(database);
      return;
    }
    const last = this.lastRefresh.get(database);
    const wait = last === undefined ? 0 : this.minRefreshIntervalMs - (this.now() - last);
    if (wait > 0) {
      this.timers.set(database, setTimeout(() => {
        this.timers.delete(database);
        this.refresh(database);
      }, wait).unref());
      return;
    }
    const readAt = this.now();
    this.lastRefresh.set(database, readAt);
    const load = loader(database)
      .then((catalog) => this.store(database, catalog, readAt))
      .catch((error: Error) => this.onLoadError(database, error))
      .finally(() => {
        this.loading.delete(database);
        if (this.again.delete(database)) this.refresh(database);
      });
    this.loading.set(database, load);
  }
}
