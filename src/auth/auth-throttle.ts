import { isIPv4, isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';
import type { ThrottleConfig } from './oidc-config.js';

export interface AuthThrottleOptions extends ThrottleConfig {
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Bound on tracked keys, so address spraying cannot grow memory without limit. */
  maxKeys?: number;
}

export type ThrottleDecision =
  | { allowed: true }
  | { allowed: false; key: string; retryAfterSeconds: number };

interface Entry {
  /** Failure times (ms), oldest first, at most maxFailures long. */
  failures: number[];
  lockedUntil: number;
}

/**
 * Failed-authentication counter over a sliding window, keyed by opaque
 * strings (see throttleKeys). Once a key collects maxFailures failures within
 * windowSeconds it is refused for lockoutSeconds, and for as long as the
 * window still holds maxFailures failures. Refused attempts are not counted,
 * so a locked-out client regains access on schedule.
 *
 * Keying by user name lets anyone lock a known user out for lockoutSeconds;
 * that is the accepted price of slowing guessing against one account.
 */
export class AuthThrottle {
  private readonly cfg: ThrottleConfig;
  private readonly now: () => number;
  private readonly entries: LRUCache<string, Entry>;

  constructor(options: AuthThrottleOptions) {
    this.cfg = { maxFailures: options.maxFailures, windowSeconds: options.windowSeconds, lockoutSeconds: options.lockoutSeconds };
    this.now = options.now ?? Date.now;
    this.entries = new LRUCache<string, Entry>({ max: options.maxKeys ?? 100_000 });
  }

  check(keys: readonly string[]): ThrottleDecision {
    const now = this.now();
    let worst: { key: string; until: number } | undefined;
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      const until = this.blockedUntil(entry, now);
      if (until > now && (!worst || until > worst.until)) worst = { key, until };
    }
    if (!worst) return { allowed: true };
    return { allowed: false, key: worst.key, retryAfterSeconds: Math.ceil((worst.until - now) / 1000) };
  }

  recordFailure(keys: readonly string[]): void {
    const now = this.now();
    for (const key of keys) {
      const entry = this.entries.get(key) ?? { failures: [], lockedUntil: 0 };
      this.prune(entry, now);
      entry.failures.push(now);
      if (entry.failures.length > this.cfg.maxFailures) entry.failures.shift();
      if (entry.failures.length >= this.cfg.maxFailures) {
        entry.lockedUntil = Math.max(entry.lockedUntil, now + this.cfg.lockoutSeconds * 1000);
      }
      this.entries.set(key, entry);
    }
  }

  /** Forget a key, e.g. after an operator unlocks it. */
  reset(key: string): void {
    this.entries.delete(key);
  }

  /** Number of keys currently tracked. */
  get size(): number {
    return this.entries.size;
  }

  private prune(entry: Entry, now: number): void {
    const horizon = now - this.cfg.windowSeconds * 1000;
    while (entry.failures.length > 0 && entry.failures[0]! <= horizon) entry.failures.shift();
  }

  private blockedUntil(entry: Entry, now: number): number {
    this.prune(entry, now);
    let until = entry.lockedUntil;
    if (entry.failures.length >= this.cfg.maxFailures) {
      // Still over the limit inside the window: blocked until the oldest ages out.
      until = Math.max(until, entry.failures[0]! + this.cfg.windowSeconds * 1000);
    }
    return until;
  }
}

/** Throttle keys for one attempt: per client address and per requested user. */
export function throttleKeys(input: { remoteAddress?: string | undefined; user?: string | undefined }): string[] {
  const keys: string[] = [];
  if (input.remoteAddress) keys.push(`addr:${normalizeAddress(input.remoteAddress)}`);
  if (input.user) keys.push(`user:${input.user}`);
  return keys;
}

/**
 * `::ffff:10.0.0.1` and `10.0.0.1` are the same client; an IPv6 client
 * usually controls a whole /64, so that prefix is the unit.
 */
function normalizeAddress(address: string): string {
  if (isIPv4(address)) return address;
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  const bare = address.split('%')[0]!;
  if (!isIPv6(bare)) return address.toLowerCase();
  const [head = '', tail] = bare.toLowerCase().split('::');
  const headParts = head ? head.split(':') : [];
  // A dotted IPv4 tail (RFC 4291 §2.2 form 3) occupies two groups.
  const tailParts = tail ? tail.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : [];
  const groups = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
