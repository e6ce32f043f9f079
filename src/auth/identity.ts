/**
 * Who is connecting, as decided by the auth stage. Later stages (policy,
 * rewrite, audit) read this and nothing else about authentication.
 */
export interface Identity {
  /** The PostgreSQL-facing user name this session acts as. */
  user: string;
  groups: readonly string[];
  /** Full verified token payload for OIDC; empty for passthrough. */
  claims: Readonly<Record<string, unknown>>;
  source: 'oidc' | 'passthrough';
  issuer?: string;
  subject?: string;
  /** Token `exp`, epoch seconds. */
  expiresAt?: number;
}

const EMPTY_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});
const NO_GROUPS: readonly string[] = Object.freeze([]);

/**
 * Identity for `auth.mode: passthrough`: pgward vouches for nothing, the
 * upstream server authenticates the startup user itself.
 */
export function passthroughIdentity(startupUser: string): Identity {
  return Object.freeze({
    user: startupUser,
    groups: NO_GROUPS,
    claims: EMPTY_CLAIMS,
    source: 'passthrough' as const,
  });
}

/**
 * When a session authenticated with this identity must end, in epoch
 * seconds, or undefined for "never". The session owns the timer; this only
 * does the arithmetic so every caller agrees on it.
 */
export function sessionDeadline(
  identity: Identity,
  options: { connectedAt: number; terminateAtExpiry: boolean; maxSessionLifetimeSeconds?: number | undefined },
): number | undefined {
  let deadline: number | undefined;
  if (options.terminateAtExpiry && identity.expiresAt !== undefined) deadline = identity.expiresAt;
  if (options.maxSessionLifetimeSeconds !== undefined) {
    const cap = options.connectedAt + options.maxSessionLifetimeSeconds;
    deadline = deadline === undefined ? cap : Math.min(deadline, cap);
  }
  return deadline;
}
