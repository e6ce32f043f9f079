import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { PolicyLoadError, PolicyStore, type PolicySnapshot } from '../../../src/policy/store.js';

const DEMO = join(import.meta.dirname, '../../../policies/demo.yaml');

function policyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgward-policies-'));
  copyFileSync(DEMO, join(dir, 'demo.yaml'));
  return dir;
}

function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', (line) => lines.push(line)), lines };
}

describe('PolicyStore', () => {
  it('refuses to open an invalid directory, naming file and line', async () => {
    const dir = policyDir();
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: pgward.dev/v1\nkind: PolicySet\nmetadata: { name: x }\nspec:\n  defaultAction: maybe\n');
    const error = await PolicyStore.open(dir, capturingLogger().log).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PolicyLoadError);
    expect((error as Error).message).toMatch(/bad\.yaml:5:\d+: /);
  });

  it('keeps the last good policies when a reload fails, and takes a fixed file', async () => {
    const dir = policyDir();
    const { log, lines } = capturingLogger();
    const store = await PolicyStore.open(dir, log);
    const first = store.current.version;
    const seen: PolicySnapshot[] = [];
    store.onChange((snapshot) => seen.push(snapshot));

    writeFileSync(join(dir, 'broken.yaml'), 'kind: [unclosed\n');
    expect(await store.reload()).toBe(false);
    expect(store.current.version).toBe(first);
    expect(lines.some((l) => l.includes('keeping the last good policies') && l.includes('broken.yaml'))).toBe(true);

    writeFileSync(
      join(dir, 'broken.yaml'),
      'apiVersion: pgward.dev/v1\nkind: DataClassification\nmetadata: { name: extra }\nspec:\n  columns:\n    - { match: public.orders.amount, classes: [finance.amount] }\n',
    );
    expect(await store.reload()).toBe(true);
    expect(store.current.version).not.toBe(first);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.bundle.classifications.map((c) => c.metadata.name)).toContain('extra');
  });

  it('reloads by itself when a file changes', async () => {
    const dir = policyDir();
    const store = await PolicyStore.open(dir, capturingLogger().log);
    const changed = new Promise<PolicySnapshot>((resolve) => store.onChange(resolve));
    store.watch(50);
    writeFileSync(
      join(dir, 'more.yaml'),
      'apiVersion: pgward.dev/v1\nkind: DataClassification\nmetadata: { name: more }\nspec:\n  columns:\n    - { match: public.orders.status, classes: [ops.status] }\n',
    );
    const snapshot = await changed;
    expect(snapshot.bundle.classifications.map((c) => c.metadata.name)).toContain('more');
    store.close();
  });
});
