import { describe, expect, it } from 'vitest';
import { passthroughIdentity, type Identity } from '../../../src/auth/identity.js';
import type { Selector } from '../../../src/policy/schema.js';
import { appliesTo, lookupClaim, matchingSubjects, selectorMatches } from '../../../src/policy/subjects.js';

const alice: Identity = {
  user: 'alice',
  groups: ['analyst', 'support'],
  claims: {
    region: 'eu',
    level: 3,
    admin: false,
    roles: ['reader', 'auditor'],
    org: { unit: 'sales', cost: { center: 42 } },
    'https://example.com/tier': 'gold',
    nothing: null,
  },
  source: 'oidc',
};

describe('lookupClaim', () => {
  it('follows dotted paths through objects', () => {
    expect(lookupClaim(alice.claims, 'region')).toEqual({ found: true, value: 'eu' });
    expect(lookupClaim(alice.claims, 'org.unit')).toEqual({ found: true, value: 'sales' });
    expect(lookupClaim(alice.claims, 'org.cost.center')).toEqual({ found: true, value: 42 });
  });

  it('prefers a top-level claim whose name is the whole path', () => {
    expect(lookupClaim(alice.claims, 'https://example.com/tier')).toEqual({ found: true, value: 'gold' });
    expect(lookupClaim({ 'a.b': 1, a: { b: 2 } }, 'a.b')).toEqual({ found: true, value: 1 });
  });

  it('reports absent, null and non-object steps as not found', () => {
    expect(lookupClaim(alice.claims, 'missing').found).toBe(false);
    expect(lookupClaim(alice.claims, 'nothing').found).toBe(false);
    expect(lookupClaim(alice.claims, 'region.x').found).toBe(false);
    expect(lookupClaim(alice.claims, 'roles.0').found).toBe(false);
  });

  it('never reaches the prototype chain', () => {
    expect(lookupClaim(alice.claims, 'constructor').found).toBe(false);
    expect(lookupClaim(alice.claims, 'toString').found).toBe(false);
    expect(lookupClaim(alice.claims, '__proto__').found).toBe(false);
    expect(lookupClaim(alice.claims, 'org.hasOwnProperty').found).toBe(false);
  });
});

describe('selectorMatches', () => {
  const cases: [Selector, boolean][] = [
    [{ group: 'analyst' }, true],
    [{ group: 'Analyst' }, false],
    [{ user: 'alice' }, true],
    [{ user: 'bob' }, false],
    [{ claim: { path: 'region', in: ['eu', 'uk'] } }, true],
    [{ claim: { path: 'region', in: ['us'] } }, false],
    [{ claim: { path: 'level', in: [3] } }, true],
    [{ claim: { path: 'level', in: ['3'] } }, false],
    [{ claim: { path: 'admin', in: [false] } }, true],
    [{ claim: { path: 'roles', in: ['auditor'] } }, true],
    [{ claim: { path: 'roles', in: ['writer'] } }, false],
    [{ claim: { path: 'org.unit', in: ['sales'] } }, true],
    [{ claim: { path: 'org', in: ['sales'] } }, false],
    [{ claim: { path: 'missing', in: ['x'] } }, false],
    [{ anyOf: [{ group: 'dba' }, { user: 'alice' }] }, true],
    [{ anyOf: [{ group: 'dba' }, { user: 'bob' }] }, false],
    [{ allOf: [{ group: 'support' }, { claim: { path: 'region', in: ['eu'] } }] }, true],
    [{ allOf: [{ group: 'support' }, { claim: { path: 'region', in: ['us'] } }] }, false],
    [{ allOf: [{ anyOf: [{ group: 'x' }, { group: 'analyst' }] }, { user: 'alice' }] }, true],
  ];

  it.each(cases)('%j → %s', (selector, expected) => {
    expect(selectorMatches(selector, alice)).toBe(expected);
  });

  it('passthrough identities only match by user', () => {
    const bob = passthroughIdentity('bob');
    expect(selectorMatches({ user: 'bob' }, bob)).toBe(true);
    expect(selectorMatches({ group: 'analyst' }, bob)).toBe(false);
    expect(selectorMatches({ claim: { path: 'region', in: ['eu'] } }, bob)).toBe(false);
  });
});

describe('matchingSubjects and appliesTo', () => {
  const subjects: Record<string, Selector> = {
    analysts: { group: 'analyst' },
    admins: { anyOf: [{ group: 'dba' }, { user: 'root' }] },
    eu: { claim: { path: 'region', in: ['eu'] } },
  };

  it('lists the matching subject names', () => {
    expect([...matchingSubjects(subjects, alice)]).toEqual(['analysts', 'eu']);
    expect([...matchingSubjects(subjects, passthroughIdentity('root'))]).toEqual(['admins']);
  });

  it('applies * and except', () => {
    const matched = matchingSubjects(subjects, alice);
    expect(appliesTo(['*'], undefined, matched)).toBe(true);
    expect(appliesTo(['*'], ['admins'], matched)).toBe(true);
    expect(appliesTo(['*'], ['eu'], matched)).toBe(false);
    expect(appliesTo(['admins'], undefined, matched)).toBe(false);
    expect(appliesTo(['admins', 'analysts'], [], matched)).toBe(true);
    expect(appliesTo(['analysts'], ['*'], matched)).toBe(false);
  });
});
