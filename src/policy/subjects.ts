/**
 * Evaluates subject selectors against a verified identity.
 */
import type { Identity } from '../auth/identity.js';
import type { ClaimValue, Selector } from './schema.js';

/** Result of a claim lookup: `found: false` when any step of the path is absent. */
export type ClaimLookup = { readonly found: true; readonly value: unknown } | { readonly found: false };

const NOT_FOUND: ClaimLookup = { found: false };

/**
 * Looks up a dotted claim path (`org.region`). A top-level claim whose name
 * contains the whole path wins over traversal, so URL-style claim names that
 * contain dots stay reachable. Only own properties are followed: a path such
 * as `constructor` must not reach Object.prototype.
 */
export function lookupClaim(claims: Readonly<Record<string, unknown>>, path: string): ClaimLookup {
  if (Object.hasOwn(claims, path)) return claimFound(claims[path]);
  let current: unknown = claims;
  for (const key of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return NOT_FOUND;
    if (!Object.hasOwn(current, key)) return NOT_FOUND;
    current = (current as Record<string, unknown>)[key];
  }
  return claimFound(current);
}

// A JSON null claim carries no value; treating it as absent keeps row filters failing closed.
function claimFound(value: unknown): ClaimLookup {
  return value === undefined || value === null ? NOT_FOUND : { found: true, value };
}

function claimMatches(value: unknown, allowed: readonly ClaimValue[]): boolean {
  if (Array.isArray(value)) return value.some((v) => claimMatches(v, allowed));
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return false;
  return allowed.includes(value);
}

/** True when the identity satisfies the selector. */
export function selectorMatches(selector: Selector, identity: Identity): boolean {
  if ('group' in selector) return identity.groups.includes(selector.group);
  if ('user' in selector) return identity.user === selector.user;
  if ('claim' in selector) {
    const found = lookupClaim(identity.claims, selector.claim.path);
    return found.found && claimMatches(found.value, selector.claim.in);
  }
  if ('anyOf' in selector) return selector.anyOf.some((s) => selectorMatches(s, identity));
  return selector.allOf.every((s) => selectorMatches(s, identity));
}

/** Names of the subjects (of one PolicySet) the identity matches, in definition order. */
export function matchingSubjects(
  subjects: Readonly<Record<string, Selector>>,
  identity: Identity,
): ReadonlySet<string> {
  const matched = new Set<string>();
  for (const [name, selector] of Object.entries(subjects)) {
    if (selectorMatches(selector, identity)) matched.add(name);
  }
  return matched;
}

/**
 * Whether a rule or mask with these `subjects` / `except` lists applies, given
 * the subject names the identity matched. `*` matches everyone.
 */
export function appliesTo(
  subjects: readonly string[],
  except: readonly string[] | undefined,
  matched: ReadonlySet<string>,
): boolean {
  const has = (name: string): boolean => name === '*' || matched.has(name);
  return subjects.some(has) && !(except ?? []).some(has);
}
