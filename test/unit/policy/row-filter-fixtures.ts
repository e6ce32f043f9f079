import type { Identity } from '../../../src/auth/identity.js';
import { compileRowFilter, type CompiledRowFilter } from '../../../src/policy/row-filter.js';

/** An identity with claims of every JSON type, for placeholder tests. */
export const alice: Identity = {
  user: 'alice',
  groups: ['analyst', 'eu-team'],
  claims: { region: 'eu', level: 3, ratio: 1.5, big: 1e21, active: false, org: { unit: 'sales', tags: ['a', 'b'] } },
  source: 'oidc',
};

/** A row filter that must compile (the parser must be loaded). */
export function compiled(text: string): CompiledRowFilter {
  const result = compileRowFilter(text);
  if (!result.ok) throw new Error(`${result.message} at ${result.offset}`);
  return result.filter;
}
