import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PolicyStore } from '../../src/policy/store.js';

/** Writes `text` as the only policy file of `dir` and resolves once the store has told its listeners. */
export async function replacePolicies(store: PolicyStore, dir: string, text: string): Promise<void> {
  const changed = new Promise<void>((resolve) => {
    const off = store.onChange(() => {
      off();
      resolve();
    });
  });
  writeFileSync(join(dir, 'policies.yaml'), text);
  await store.reload();
  await changed;
}
