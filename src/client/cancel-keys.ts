import { randomBytes } from 'node:crypto';

/** What pgward needs to cancel a query on the upstream backend that serves a client. */
export interface CancelTarget {
  processId: number;
  upstreamSecretKey: Buffer;
}

/**
 * Issues the BackendKeyData secrets pgward hands to clients. The process ID is
 * the upstream's own (so pg_backend_pid() and pg_stat_activity agree with what
 * the client was told), but the secret is pgward's: the upstream's real key never
 * leaves pgward, and a CancelRequest is honoured only with the pair we issued.
 */
export class CancelKeys {
  private readonly targets = new Map<string, CancelTarget>();

  issue(target: CancelTarget): { secretKey: Buffer; release: () => void } {
    let secretKey: Buffer;
    let key: string;
    do {
      secretKey = randomBytes(4);
      key = entryKey(target.processId, secretKey);
    } while (this.targets.has(key));
    this.targets.set(key, target);
    return { secretKey, release: () => this.targets.delete(key) };
  }

  /** The target of a cancel request, or undefined for keys pgward never issued (ignored, as PostgreSQL does). */
  lookup(processId: number, secretKey: Buffer): CancelTarget | undefined {
    return this.targets.get(entryKey(processId, secretKey));
  }

  get size(): number {
    return this.targets.size;
  }
}

const entryKey = (processId: number, secretKey: Buffer): string => `${processId}:${secretKey.toString('hex')}`;
