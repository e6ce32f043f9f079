import { describe, expect, it } from 'vitest';
import { ACTIONS, API_VERSION, DOCUMENT_SCHEMAS, KeyRing, MASK_TYPES, MaskSpec, PolicySet, Resources, SelectorSchema } from '../../../src/policy/schema.js';

const meta = { name: 'app' };

describe('vocabulary', () => {
  it('lists the actions and mask types of the policy format', () => {
    expect(ACTIONS).toEqual(['select', 'insert', 'update', 'delete', 'truncate', 'copy_to', 'copy_from', 'ddl', 'function', 'misc', 'decrypt', 'all']);
    expect(MASK_TYPES).toEqual(['full', 'partial', 'emailDomain', 'hash', 'null', 'constant', 'dateYear', 'regex', 'none']);
    expect(Object.keys(DOCUMENT_SCHEMAS)).toEqual(['DataClassification', 'PolicySet', 'KeyRing']);
  });
});

describe('PolicySet', () => {
  it('fills defaults', () => {
    const r = PolicySet.parse({ apiVersion: API_VERSION, kind: 'PolicySet', metadata: meta, spec: { defaultAction: 'allow' } });
    expect(r.spec).toEqual({ defaultAction: 'allow', enforcement: 'enforce', subjects: {}, rules: [], masks: [] });
  });

  it('is strict at every level', () => {
    const base = { apiVersion: API_VERSION, kind: 'PolicySet', metadata: meta, spec: { defaultAction: 'allow' } };
    expect(PolicySet.safeParse({ ...base, extra: 1 }).success).toBe(false);
    expect(PolicySet.safeParse({ ...base, metadata: { name: 'app', namespace: 'x' } }).success).toBe(false);
    expect(PolicySet.safeParse({ ...base, spec: { defaultAction: 'allow', default: 'deny' } }).success).toBe(false);
  });

  it('requires Kubernetes-style names', () => {
    const doc = (name: string) => ({ apiVersion: API_VERSION, kind: 'PolicySet', metadata: { name }, spec: { defaultAction: 'allow' } });
    expect(PolicySet.safeParse(doc('app-1.prod')).success).toBe(true);
    for (const bad of ['App', '-app', 'app-', 'a b', '']) expect(PolicySet.safeParse(doc(bad)).success, bad).toBe(false);
  });
});

describe('selectors', () => {
  it('accept one key, nested combinations and claim value types', () => {
    const ok = [
      { group: 'g' },
      { user: 'u' },
      { claim: { path: 'org.region', in: ['eu', 1, true] } },
      { anyOf: [{ group: 'a' }, { allOf: [{ user: 'u' }, { claim: { path: 'x', in: ['y'] } }] }] },
    ];
    for (const s of ok) expect(SelectorSchema.safeParse(s).success, JSON.stringify(s)).toBe(true);
  });

  it('reject empty, mixed, unknown and malformed selectors', () => {
    const bad = [
      {},
      { group: 'g', user: 'u' },
      { groups: ['g'] },
      { anyOf: [] },
      { allOf: [{}] },
      { claim: { path: 'x', in: [] } },
      { claim: { path: 'a..b', in: ['x'] } },
      { claim: { path: 'x', in: [null] } },
      { group: '' },
    ];
    for (const s of bad) expect(SelectorSchema.safeParse(s).success, JSON.stringify(s)).toBe(false);
  });
});

describe('resources', () => {
  it('need at least one kind and well-formed names', () => {
    expect(Resources.safeParse({}).success).toBe(false);
    expect(Resources.safeParse({ tables: [] }).success).toBe(false);
    expect(Resources.safeParse({ tables: ['public.t', '*.*', '"odd.schema".t'] }).success).toBe(true);
    expect(Resources.safeParse({ columns: ['public.t.c', '*.*.ssn'] }).success).toBe(true);
    expect(Resources.safeParse({ columns: ['public.t'] }).success).toBe(false);
    expect(Resources.safeParse({ classes: ['pii.ssn', 'pii.*'] }).success).toBe(true);
    expect(Resources.safeParse({ classes: ['pii ssn'] }).success).toBe(false);
  });
});

describe('masks', () => {
  it('accept each type with its options', () => {
    const ok = [
      { type: 'full' },
      { type: 'partial', showFirst: 1 },
      { type: 'partial', showLast: 4, char: '*', priority: -1 },
      { type: 'emailDomain' },
      { type: 'hash', salt: 's' },
      { type: 'null' },
      { type: 'constant', value: 0 },
      { type: 'constant', value: 'n/a' },
      { type: 'dateYear' },
      { type: 'regex', pattern: '\\d', replace: '#', flags: 'gi' },
      { type: 'none', priority: 3 },
    ];
    for (const m of ok) expect(MaskSpec.safeParse(m).success, JSON.stringify(m)).toBe(true);
  });

  it('read YAML null as the null mask', () => {
    expect(MaskSpec.parse({ type: null })).toEqual({ type: 'null' });
  });

  it('reject options of other types, and bad values', () => {
    const bad = [
      { type: 'full', showLast: 4 },
      { type: 'partial' },
      { type: 'partial', showLast: -1 },
      { type: 'partial', showLast: 1.5 },
      { type: 'partial', showLast: 4, char: '' },
      { type: 'partial', showLast: 4, char: 'ab' },
      { type: 'hash' },
      { type: 'hash', salt: '' },
      { type: 'constant' },
      { type: 'constant', value: null },
      { type: 'regex', pattern: '', replace: '' },
      { type: 'regex', pattern: 'a', replace: 'b', flags: 'gz' },
      { type: 'blur' },
      { type: 'none', priority: 0.5 },
    ];
    for (const m of bad) expect(MaskSpec.safeParse(m).success, JSON.stringify(m)).toBe(false);
  });

  it('count characters, not UTF-16 units, for the mask character', () => {
    expect(MaskSpec.safeParse({ type: 'partial', showLast: 1, char: '🙂' }).success).toBe(true);
  });
});

describe('KeyRing', () => {
  const doc = (spec: Record<string, unknown>) => ({ apiVersion: API_VERSION, kind: 'KeyRing', metadata: meta, spec });
  const kek = { id: 'k', source: { env: 'K' } };

  it('fills defaults', () => {
    const r = KeyRing.parse(doc({ keyEncryptionKeys: [kek], dataKeys: 'keys.json' }));
    expect(r.spec.whenNotGranted).toBe('mask');
    expect(r.spec.encryptedColumns).toEqual([]);
  });

  it('checks key sources and encrypted columns', () => {
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [], dataKeys: 'k.json' })).success).toBe(false);
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [{ id: 'k', source: {} }], dataKeys: 'k.json' })).success).toBe(false);
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [{ id: 'k', source: { kms: { provider: 'local', keyId: 'x' } } }], dataKeys: 'k.json' })).success).toBe(true);
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [{ id: 'k', source: { env: '1BAD' } }], dataKeys: 'k.json' })).success).toBe(false);
    const col = { column: 'public.t.c', mode: 'randomized', plaintextType: 'text', storage: 'text', kek: 'k' };
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [kek], encryptedColumns: [col], dataKeys: 'k.json' })).success).toBe(true);
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [kek], encryptedColumns: [{ ...col, mode: 'ecb' }], dataKeys: 'k.json' })).success).toBe(false);
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [kek], encryptedColumns: [{ ...col, column: 'public.*.c' }], dataKeys: 'k.json' })).success).toBe(false);
    expect(KeyRing.safeParse(doc({ keyEncryptionKeys: [kek], dataKeys: 'k.json', whenNotGranted: 'show' })).success).toBe(false);
  });
});
