import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../log.js';
import { loadPolicyDirectory, type PolicyBundle, type PolicyError } from './load.js';

/** The policies in force: a validated bundle and its content hash. */
export interface PolicySnapshot {
  readonly bundle: PolicyBundle;
  readonly version: string;
}

export class PolicyLoadError extends Error {
  constructor(readonly errors: readonly PolicyError[]) {
    super(errors.map(formatPolicyError).join('\n'));
  }
}

export function formatPolicyError(error: PolicyError): string {
  return `${error.file}:${error.line}:${error.column}: ${error.message}`;
}

/**
 * Loads the policy directory and keeps the last good set: a reload that fails
 * validation is logged with file, line and reason, and changes nothing.
 * Reloads happen on file changes (debounced) and on request (SIGHUP).
 */
export class PolicyStore {
  private snapshot: PolicySnapshot;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(snapshot: PolicySnapshot) => void>();
  private reloading: Promise<boolean> | undefined;

  private constructor(
    readonly dir: string,
    initial: PolicySnapshot,
    private readonly log: Logger,
  ) {
    this.snapshot = initial;
  }

  /** Loads the directory once; invalid policies at startup are an error (nothing to fall back to). */
  static async open(dir: string, log: Logger): Promise<PolicyStore> {
    const result = await loadPolicyDirectory(dir);
    if (!result.ok) throw new PolicyLoadError(result.errors);
    log.info('policies loaded', { dir, version: result.version, files: result.policies.files.length });
    return new PolicyStore(dir, { bundle: result.policies, version: result.version }, log);
  }

  get current(): PolicySnapshot {
    return this.snapshot;
  }

  /** Called with each new snapshot after a successful reload that changed something. */
  onChange(listener: (snapshot: PolicySnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reloads now; resolves true when a new version took effect. Concurrent calls share one load. */
  reload(): Promise<boolean> {
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /** Watches the directory and reloads shortly after files settle. */
  watch(debounceMs = 200): void {
    if (this.watcher) return;
    this.watcher = watch(this.dir, () => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload(), debounceMs);
    });
    this.watcher.on('error', (error) => this.log.warn('policy directory watch failed', { dir: this.dir, error: error.message }));
  }

  close(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private async load(): Promise<boolean> {
    const result = await loadPolicyDirectory(this.dir);
    if (!result.ok) {
      this.log.error('policy reload failed; keeping the last good policies', {
        dir: this.dir,
        version: this.snapshot.version,
        errors: result.errors.map(formatPolicyError),
      });
      return false;
    }
    if (result.version === this.snapshot.version) return false;
    this.snapshot = { bundle: result.policies, version: result.version };
    this.log.info('policies reloaded', { dir: this.dir, version: result.version });
    for (const listener of this.listeners) listener(this.snapshot);
    return true;
  }
}
