import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyDirectory, loadPolicySources, parsePolicyText, rowFilterKey, type PolicyError, type PolicyLoadResult } from '../../../src/policy/load.js';

const HEADER = 'apiVersion: pgward.dev/v1';

const CLASSES = `${HEADER}
kind: DataClassification
metadata: { name: classes }
spec:
  columns:
    - { match: public.customers.ssn, classes: [pii.ssn] }
    - { match: "*.*.email", classes: [pii.email, contact] }
`;

const POLICY = `${HEADER}
kind: PolicySet
metadata: { name: app }
spec:
  defaultAction: deny
  subjects:
    analysts: { anyOf: [ { group: analyst } ] }
    admins: { anyOf: [ { group: dba }, { user: alice } ] }
  rules:
    - name: read
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: [public.customers] }
      rowFilter: "region = \${claims.region}"
  masks:
    - name: ssn
      subjects: ["*"]
      except: [admins]
      resources: { classes: [pii.ssn] }
      mask: { type: partial, showLast: 4 }
`;

/** 1-based line and column of the first occurrence of `needle` (after `after`, if given). */
function at(text: string, needle: string, after = ''): { line: number; column: number } {
  const start = after === '' ? 0 : text.indexOf(after);
  const index = text.indexOf(needle, start);
  if (start < 0 || index < 0) throw new Error(`${needle} not in text`);
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return { line, column: index - before.lastIndexOf('\n') };
}

function errorsOf(result: PolicyLoadResult): readonly PolicyError[] {
  if (result.ok) throw new Error('expected errors');
  return result.errors;
}

async function expectOneError(text: string, message: RegExp, needle?: string, after?: string): Promise<PolicyError> {
  const errors = errorsOf(await parsePolicyText(text, 'p.yaml'));
  expect(errors, JSON.stringify(errors, null, 1)).toHaveLength(1);
  const e = errors[0] as PolicyError;
  expect(e.message).toMatch(message);
  expect(e.file).toBe('p.yaml');
  if (needle !== undefined) expect({ line: e.line, column: e.column }).toEqual(at(text, needle, after));
  return e;
}

describe('parsePolicyText: valid documents', () => {
  it('loads several documents of a file, with defaults and sources', async () => {
    const text = `${CLASSES}---\n${POLICY}---\n`;
    const r = await parsePolicyText(text, 'p.yaml');
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.policies.classifications).toHaveLength(1);
    expect(r.policies.policySets).toHaveLength(1);
    const set = r.policies.policySets[0];
    expect(set?.spec.enforcement).toBe('enforce');
    expect(set?.spec.rules[0]?.actions).toEqual(['select']);
    expect(set?.source).toEqual({ file: 'p.yaml', line: CLASSES.split('\n').length + 1, column: 1 });
    expect(r.policies.classifications[0]?.source).toEqual({ file: 'p.yaml', line: 1, column: 1 });
    expect(r.policies.files).toEqual([{ name: 'p.yaml', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), documents: 2 }]);
    expect(r.version).toMatch(/^[0-9a-f]{64}$/);
    expect(r.policies.rowFilters.get(rowFilterKey('app', 'read'))?.placeholders).toEqual([{ kind: 'claim', text: '${claims.region}', path: 'region' }]);
  });

  it('freezes the bundle', async () => {
    const r = await parsePolicyText(POLICY.replace('classes: [pii.ssn]', 'columns: [public.customers.ssn]'), 'p.yaml');
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(Object.isFrozen(r.policies.policySets[0]?.spec.rules)).toBe(true);
    expect(() => (r.policies.policySets[0]?.spec.rules as unknown[]).push(1)).toThrow();
  });

  it('accepts an unquoted `type: null` mask', async () => {
    const r = await loadPolicySources([
      { file: 'a.yaml', text: CLASSES },
      { file: 'b.yaml', text: POLICY.replace('{ type: partial, showLast: 4 }', '{ type: null }') },
    ]);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.policies.policySets[0]?.spec.masks[0]?.mask).toEqual({ type: 'null' });
  });

  it('loads KeyRings', async () => {
    const text = `${HEADER}
kind: KeyRing
metadata: { name: keys }
spec:
  keyEncryptionKeys:
    - { id: kek-main, source: { file: /etc/pgward/kek.json } }
    - { id: kek-env, source: { env: PGWARD_KEK } }
  encryptedColumns:
    - { column: public.customers.ssn_enc, mode: deterministic, plaintextType: text, storage: bytea, kek: kek-main }
  dataKeys: keys/data-keys.json
`;
    const r = await parsePolicyText(text, 'k.yaml');
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.policies.keyRings[0]?.spec.whenNotGranted).toBe('mask');
  });
});

describe('version', () => {
  it('is stable, ignores comments and layout, and changes with meaning', async () => {
    const v = async (text: string) => {
      const r = await loadPolicySources([{ file: 'a.yaml', text: CLASSES }, { file: 'b.yaml', text }]);
      if (!r.ok) throw new Error(JSON.stringify(r.errors));
      return r.version;
    };
    const base = await v(POLICY);
    expect(await v(POLICY)).toBe(base);
    expect(await v(`# a comment\n${POLICY.replace('{ group: analyst }', '{group:   analyst}')}`)).toBe(base);
    expect(await v(POLICY.replace('showLast: 4', 'showLast: 3'))).not.toBe(base);
  });
});

describe('parsePolicyText: schema errors point at the node', () => {
  it('reports unknown fields at the key', async () => {
    const text = POLICY.replace('      effect: allow', '      effect: allow\n      excpet: [admins]');
    await expectOneError(text, /unknown field "excpet"/, 'excpet');
  });

  it('reports invalid enum values at the value', async () => {
    await expectOneError(POLICY.replace('defaultAction: deny', 'defaultAction: maybe'), /expected one of "allow"\|"deny"/, 'maybe');
    await expectOneError(POLICY.replace('actions: [select]', 'actions: [select, fly]'), /"select"/, 'fly');
  });

  it('reports missing fields at the object that lacks them', async () => {
    const text = POLICY.replace('      effect: allow\n', '');
    const e = await expectOneError(text, /missing required field "effect"/, 'name: read');
    expect(e.path).toBe('spec.rules[0].effect');
  });

  it('reports malformed resource names', async () => {
    await expectOneError(POLICY.replace('tables: [public.customers]', 'tables: [public.customers.ssn]'), /must be schema\.table/, 'public.customers.ssn');
  });

  it('reports selectors with zero or several keys', async () => {
    await expectOneError(POLICY.replace('{ group: analyst }', '{ group: analyst, user: bob }'), /exactly one of group, user, claim/, '{ group: analyst, user');
    await expectOneError(POLICY.replace('analysts: { anyOf: [ { group: analyst } ] }', 'analysts: {}'), /needs one of group/, '{}');
  });

  it('reports invalid subject names at the key', async () => {
    await expectOneError(POLICY.replace('    admins:', '    "*": { group: x }\n    admins:'), /invalid name "\*"/, '"*"');
  });

  it('reports unknown mask types and mask option errors', async () => {
    await expectOneError(POLICY.replace('type: partial, showLast: 4', 'type: blur'), /unknown mask type/, 'blur');
    await expectOneError(POLICY.replace('type: partial, showLast: 4', 'type: partial'), /showFirst and\/or showLast/, '{ type: partial }');
    await expectOneError(POLICY.replace('type: partial, showLast: 4', 'type: partial, showLast: 256'), /less than or equal to 255|<=255/, '256');
    await expectOneError(POLICY.replace('type: partial, showLast: 4', 'type: partial, showLast: 4, char: XY'), /exactly one character/, 'XY');
    await expectOneError(POLICY.replace('type: partial, showLast: 4', 'type: hash'), /missing required field "salt"/, '{ type: hash }');
    await expectOneError(POLICY.replace('type: partial, showLast: 4', 'type: regex, pattern: a, replace: b, flags: z'), /regex flags/, 'z }');
  });

  it('reports wrong apiVersion and kind', async () => {
    await expectOneError(POLICY.replace(HEADER, 'apiVersion: pgward.dev/v2'), /apiVersion must be pgward.dev\/v1/, 'pgward.dev/v2');
    await expectOneError(POLICY.replace('kind: PolicySet', 'kind: Policy'), /kind must be one of/, 'Policy');
    await expectOneError('- a\n- b\n', /a policy document is a mapping/, '- a');
  });

  it('reports YAML syntax errors and duplicate keys', async () => {
    const e = await expectOneError(`${CLASSES}---\nkind: [PolicySet\n`, /YAML/);
    expect(e.line).toBeGreaterThanOrEqual(at(`${CLASSES}---\nkind: [PolicySet\n`, 'kind: [').line);
    await expectOneError(POLICY.replace('defaultAction: deny', 'defaultAction: deny\n  defaultAction: allow'), /YAML.*(unique|duplicate)/i, 'defaultAction: allow');
  });

  it('reports every error of every document, sorted by position', async () => {
    const text = `${POLICY.replace('defaultAction: deny', 'defaultAction: maybe')}---\n${HEADER}\nkind: Nope\n`;
    const errors = errorsOf(await parsePolicyText(text, 'p.yaml'));
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/allow/), expect.stringMatching(/kind must be/)]);
    expect(errors[0]?.line).toBeLessThan(errors[1]?.line ?? 0);
  });

  it('skips empty documents', async () => {
    const r = await loadPolicySources([{ file: 'a.yaml', text: `---\n${CLASSES}---\n---\n# only a comment\n` }]);
    expect(r.ok).toBe(true);
  });
});

describe('cross-document checks', () => {
  async function load(policy: string, extra: string[] = []): Promise<PolicyLoadResult> {
    return loadPolicySources([{ file: 'classes.yaml', text: CLASSES }, { file: 'p.yaml', text: policy }, ...extra.map((text, i) => ({ file: `x${i}.yaml`, text }))]);
  }

  async function oneError(policy: string, message: RegExp, needle: string, after?: string): Promise<PolicyError> {
    const errors = errorsOf(await load(policy));
    expect(errors, JSON.stringify(errors, null, 1)).toHaveLength(1);
    const e = errors[0] as PolicyError;
    expect(e.message).toMatch(message);
    expect(e.file).toBe('p.yaml');
    expect({ line: e.line, column: e.column }).toEqual(at(policy, needle, after));
    return e;
  }

  it('accepts the base policy', async () => {
    expect((await load(POLICY)).ok).toBe(true);
  });

  it('rejects unknown subjects in rules and masks', async () => {
    const e = await oneError(POLICY.replace('subjects: [analysts]', 'subjects: [analysts, auditors]'), /unknown subject "auditors"/, 'auditors');
    expect(e.path).toBe('spec.rules[0].subjects[1]');
    await oneError(POLICY.replace('except: [admins]', 'except: [admin]'), /unknown subject "admin"/, 'admin]');
    await oneError(POLICY.replace('except: [admins]', 'except: ["*"]'), /exclude everyone/, '"*"]', 'except');
  });

  it('rejects references to subjects of another PolicySet', async () => {
    const other = `${HEADER}\nkind: PolicySet\nmetadata: { name: other }\nspec:\n  defaultAction: allow\n  rules:\n    - { name: r, effect: allow, subjects: [analysts], resources: { tables: [a.b] } }\n`;
    const errors = errorsOf(await load(POLICY, [other]));
    expect(errors).toEqual([expect.objectContaining({ file: 'x0.yaml', line: 7, message: expect.stringMatching(/unknown subject "analysts".*none defined/) })]);
  });

  it('rejects unknown classes, allowing globs that match a defined class', async () => {
    await oneError(POLICY.replace('classes: [pii.ssn]', 'classes: [pii.passport]'), /class "pii.passport" is not defined/, 'pii.passport');
    expect((await load(POLICY.replace('classes: [pii.ssn]', 'classes: ["pii.*", contact]'))).ok).toBe(true);
    await oneError(POLICY.replace('classes: [pii.ssn]', 'classes: ["pci.*"]'), /class "pci.\*" is not defined/, '"pci.*"');
  });

  it('skips class checks when a classification document is itself invalid', async () => {
    const errors = errorsOf(
      await loadPolicySources([
        { file: 'classes.yaml', text: CLASSES.replace('classes: [pii.ssn]', 'classes: [pii ssn]') },
        { file: 'p.yaml', text: POLICY },
      ]),
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]?.file).toBe('classes.yaml');
  });

  it('rejects duplicate names', async () => {
    const errors = errorsOf(await load(POLICY, [POLICY.replace('classes: [pii.ssn]', 'columns: [public.customers.ssn]')]));
    expect(errors).toEqual([expect.objectContaining({ file: 'x0.yaml', line: 3, message: 'duplicate PolicySet name "app" (first defined at p.yaml:3)' })]);
    const dupRule = POLICY.replace('  masks:', '    - { name: read, effect: deny, subjects: ["*"], resources: { tables: [a.b] } }\n  masks:');
    await oneError(dupRule, /duplicate rule name "read"/, 'read,');
    const dupMask = `${POLICY}    - { name: ssn, subjects: ["*"], resources: { tables: [a.b] }, mask: { type: full } }\n`;
    await oneError(dupMask, /duplicate mask name "ssn"/, 'ssn,');
  });

  it('allows the same name in different kinds', async () => {
    const keys = `${HEADER}\nkind: KeyRing\nmetadata: { name: app }\nspec:\n  keyEncryptionKeys: [ { id: k, source: { env: K } } ]\n  dataKeys: keys.json\n`;
    expect((await load(POLICY, [keys])).ok).toBe(true);
  });

  it('rejects invalid row filters with the column of the problem', async () => {
    const text = POLICY.replace('"region = ${claims.region}"', '"region = = ${claims.region}"');
    await oneError(text, /invalid rowFilter: row filter is not a valid SQL expression/, '= ${claims', 'region = ');
    const plain = POLICY.replace('"region = ${claims.region}"', 'region = ${user.nam}');
    await oneError(plain, /unknown placeholder \$\{user.nam\}/, '${user.nam}');
    await oneError(POLICY.replace('${claims.region}"', '${claims.region}; DROP TABLE x"'), /";" is not allowed/, '; DROP');
  });

  it('reports block-scalar row filter errors at the scalar', async () => {
    const text = POLICY.replace('rowFilter: "region = ${claims.region}"', 'rowFilter: >\n        region =\n        = 1');
    await oneError(text, /invalid rowFilter/, '>\n');
  });

  it('rejects row filters on deny rules or without tables', async () => {
    await oneError(POLICY.replace('effect: allow', 'effect: deny'), /rowFilter only applies to allow rules/, '"region');
    await oneError(POLICY.replace('resources: { tables: [public.customers] }', 'resources: { columns: [public.customers.ssn] }'), /rowFilter needs resources.tables/, '"region');
  });

  it('checks KeyRings', async () => {
    const ring = (cols: string, keks = '[ { id: k1, source: { env: K1 } } ]') =>
      `${HEADER}\nkind: KeyRing\nmetadata: { name: ring }\nspec:\n  keyEncryptionKeys: ${keks}\n  encryptedColumns:\n${cols}  dataKeys: keys.json\n`;
    const col = (name: string, kek = 'k1') => `    - { column: ${name}, mode: randomized, plaintextType: text, storage: text, kek: ${kek} }\n`;
    const load1 = (text: string) => parsePolicyText(text, 'k.yaml');
    expect((await load1(ring(col('public.t.a')))).ok).toBe(true);
    expect(errorsOf(await load1(ring(col('public.t.a', 'k2'))))).toEqual([expect.objectContaining({ line: 7, message: 'unknown key "k2" (keyEncryptionKeys: k1)' })]);
    expect(errorsOf(await load1(ring(col('public.t.a') + col('public.t.a'))))).toEqual([expect.objectContaining({ line: 8, message: expect.stringMatching(/already encrypted/) })]);
    expect(errorsOf(await load1(ring(col('public.t.a'), '[ { id: k1, source: { env: K1 } }, { id: k1, source: { file: f } } ]')))).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/duplicate key id "k1"/) }),
    ]);
    expect(errorsOf(await load1(ring(col('public.*.a'))))).toEqual([expect.objectContaining({ message: expect.stringMatching(/without globs/) })]);
    expect(errorsOf(await load1(ring(col('public.t.a'), '[ { id: k1, source: { env: K1, file: f } } ]')))).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/exactly one of file, env, kms/) }),
    ]);
  });
});

describe('loadPolicyDirectory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgward-policies-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fresh(name: string, files: Record<string, string>): Promise<string> {
    const d = join(dir, name);
    await mkdir(d);
    for (const [f, text] of Object.entries(files)) await writeFile(join(d, f), text);
    return d;
  }

  it('reads *.yaml and *.yml sorted by name, skipping dotfiles and other files', async () => {
    const d = await fresh('sorted', {
      'b.yml': POLICY,
      'a.yaml': CLASSES,
      '.c.yaml': 'not: [valid',
      'notes.txt': 'ignored',
    });
    const r = await loadPolicyDirectory(d);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.policies.files.map((f) => f.name)).toEqual([join(d, 'a.yaml'), join(d, 'b.yml')]);
  });

  it('follows symlinked files (Kubernetes ConfigMap mounts)', async () => {
    const d = await fresh('linked', {});
    await mkdir(join(d, '..data'));
    await writeFile(join(d, '..data', 'p.yaml'), `${CLASSES}---\n${POLICY}`);
    await symlink(join(d, '..data', 'p.yaml'), join(d, 'p.yaml'));
    const r = await loadPolicyDirectory(d);
    expect(r.ok).toBe(true);
  });

  it('reports errors with the file path', async () => {
    const d = await fresh('broken', { 'a.yaml': CLASSES, 'b.yaml': POLICY.replace('defaultAction: deny', 'defaultAction: no') });
    const errors = errorsOf(await loadPolicyDirectory(d));
    expect(errors).toEqual([expect.objectContaining({ file: join(d, 'b.yaml'), line: 5, column: 18 })]);
  });

  it('fails on an empty or missing directory', async () => {
    const empty = await fresh('empty', {});
    expect(errorsOf(await loadPolicyDirectory(empty))[0]?.message).toMatch(/no policy files/);
    expect(errorsOf(await loadPolicyDirectory(join(dir, 'absent')))[0]?.message).toMatch(/cannot read policy directory/);
  });

  it('loads the demo policies', async () => {
    const r = await loadPolicyDirectory(join(import.meta.dirname, '../../../policies'));
    if (!r.ok) throw new Error(JSON.stringify(r.errors, null, 1));
    expect(r.policies.policySets.map((s) => s.metadata.name)).toEqual(['demo']);
    expect(r.policies.classifications[0]?.spec.columns).toHaveLength(4);
  });
});
