import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../../src/rewrite/catalog.js';
import { CatalogCache } from '../../../src/rewrite/catalog-cache.js';

const snapshot = (version: string): Catalog => ({ version }) as unknown as Catalog;

describe('CatalogCache', () => {
  it('serves a snapshot until it ages out or is marked stale', () => {
    let now = 0;
    const cache = new CatalogCache(1000, undefined, undefined, () => now);
    cache.store('demo', snapshot('v1'));
    expect(cache.fresh('demo')?.version).toBe('v1');
    now = 1500;
    expect(cache.fresh('demo')).toBeUndefined();
    cache.store('demo', snapshot('v2'));
    cache.markStale('demo');
    expect(cache.fresh('demo')).toBeUndefined();
  });

  it('refreshes a stale snapshot in the background once, and tells listeners of every snapshot read', async () => {
    const loads: string[] = [];
    const cache = new CatalogCache(60_000, async (database) => {
      loads.push(database);
      return snapshot(`v${loads.length + 1}`);
    });
    const updates: string[] = [];
    cache.onUpdate((database, catalog) => updates.push(`${database}:${catalog.version}`));
    cache.store('demo', snapshot('v1'));
    cache.markStale('demo');
    cache.markStale('demo');
    await cache.settled('demo');
    expect(loads).toEqual(['demo']);
    expect(cache.fresh('demo')?.version).toBe('v2');
    expect(updates).toEqual(['demo:v1', 'demo:v2']);
  });

  it('keeps the old snapshot marked stale when a refresh fails', async () => {
    const errors: string[] = [];
    const cache = new CatalogCache(60_000, async () => Promise.reject(new Error('no route')), (db, e) => errors.push(`${db}: ${e.message}`));
    cache.store('demo', snapshot('v1'));
    cache.markStale('demo');
    await cache.settled('demo');
    expect(errors).toEqual(['demo: no route']);
    expect(cache.fresh('demo')).toBeUndefined();
  });

  it('reads once more when marked stale during a load, and spaces reads out', async () => {
    let now = 0;
    let release: (() => void) | undefined;
    const reads: number[] = [];
    const cache = new CatalogCache(
      60_000,
      (database) => {
        reads.push(now);
        return new Promise((resolve) => {
          release = () => resolve(snapshot(`${database}@${now}`));
        });
      },
      undefined,
      () => now,
      0,
    );
    const seen: Array<[string, number]> = [];
    cache.onUpdate((_db, catalog, readAt) => seen.push([catalog.version, readAt]));
    cache.markStale('demo');
    now = 5;
    cache.markStale('demo'); // a change during the first read
    release!();
    await new Promise((resolve) => setTimeout(resolve, 0));
    release!();
    await cache.settled('demo');
    expect(reads).toEqual([0, 5]);
    expect(seen.map(([, readAt]) => readAt)).toEqual([0, 5]);
  });
});
