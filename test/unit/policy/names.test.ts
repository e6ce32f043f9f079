import { describe, expect, it } from 'vitest';
import { classPatternMatches, globPartMatches, partsMatch, splitQualifiedName } from '../../../src/policy/names.js';

describe('splitQualifiedName', () => {
  it('splits dotted names', () => {
    expect(splitQualifiedName('public.customers')).toEqual(['public', 'customers']);
    expect(splitQualifiedName('public.customers.ssn')).toEqual(['public', 'customers', 'ssn']);
    expect(splitQualifiedName('*.*.date_of_birth')).toEqual(['*', '*', 'date_of_birth']);
    expect(splitQualifiedName('solo')).toEqual(['solo']);
  });

  it('reads quoted parts', () => {
    expect(splitQualifiedName('"my.schema".t')).toEqual(['my.schema', 't']);
    expect(splitQualifiedName('s."Odd ""Name"""')).toEqual(['s', 'Odd "Name"']);
  });

  it('rejects malformed names', () => {
    for (const bad of ['', '.', 'a.', '.a', 'a..b', 'a b.c', '"a', '"".b', 'a"b.c', '"a"x.b']) {
      expect(splitQualifiedName(bad), bad).toBeUndefined();
    }
  });
});

describe('globPartMatches', () => {
  it('matches exactly without stars', () => {
    expect(globPartMatches('customers', 'customers')).toBe(true);
    expect(globPartMatches('customers', 'Customers')).toBe(false);
  });

  it('treats * as any run of characters', () => {
    expect(globPartMatches('*', '')).toBe(true);
    expect(globPartMatches('*', 'anything')).toBe(true);
    expect(globPartMatches('pii_*', 'pii_ssn')).toBe(true);
    expect(globPartMatches('pii_*', 'xpii_ssn')).toBe(false);
    expect(globPartMatches('*_enc', 'ssn_enc')).toBe(true);
    expect(globPartMatches('a*b*c', 'abc')).toBe(true);
    expect(globPartMatches('a*b*c', 'axxbyyc')).toBe(true);
    expect(globPartMatches('a*b*c', 'acb')).toBe(false);
    expect(globPartMatches('ab*ba', 'aba')).toBe(false);
    expect(globPartMatches('a.b*', 'a.bc')).toBe(true);
    expect(globPartMatches('a.b*', 'aXbc')).toBe(false);
  });

  it('partsMatch compares part by part and needs equal length', () => {
    expect(partsMatch(['*', '*'], ['public', 'customers'])).toBe(true);
    expect(partsMatch(['*', '*'], ['public', 'customers', 'ssn'])).toBe(false);
  });
});

describe('classPatternMatches', () => {
  it('globs within a part only', () => {
    expect(classPatternMatches('pii.ssn', 'pii.ssn')).toBe(true);
    expect(classPatternMatches('pii.*', 'pii.ssn')).toBe(true);
    expect(classPatternMatches('pii.*', 'pii.a.b')).toBe(false);
    expect(classPatternMatches('*', 'pii.ssn')).toBe(false);
    expect(classPatternMatches('*.*', 'pii.ssn')).toBe(true);
    expect(classPatternMatches('pci.*', 'pii.ssn')).toBe(false);
  });
});
