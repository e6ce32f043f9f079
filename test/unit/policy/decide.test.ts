import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  columnAccess,
  columnClasses,
  contextKey,
  createPolicyContext,
  encryptionFor,
  isUnrestricted,
  maskFor,
  statementAccess,
  tableAccess,
  type PolicyContext,
} from '../../../src/policy/decide.js';
import type { Identity } from '../../../src/auth/identity.js';
import { loadPolicySources, type PolicyBundle } from '../../../src/policy/load.js';
import { renderRowFilter } from '../../../src/rewrite/placeholders.js';

const HEADER = 'apiVersion: pgward.dev/v1';

async function bundleOf(...texts: string[]): Promise<{ policies: PolicyBundle; version: string }> {
  const r = await loadPolicySources(texts.map((text, i) => ({ file: `p${i}.yaml`, text })));
  if (!r.ok) throw new Error(JSON.stringify(r.errors, null, 1));
  return r;
}

function identity(user: string, groups: string[] = [], claims: Record<string, unknown> = {}): Identity {
  return { user, groups, claims, source: 'oidc' };
}

function policySet(name: string, body: string, options: { defaultAction?: string; enforcement?: string } = {}): string {
  return `${HEADER}
kind: PolicySet
metadata: { name: ${name} }
spec:
  defaultAction: ${options.defaultAction ?? 'deny'}
  enforcement: ${options.enforcement ?? 'enforce'}
${body}`;
}

const customers = { schema: 'public', table: 'customers' };
const orders = { schema: 'public', table: 'orders' };
const col = (column: string, table = 'customers') => ({ schema: 'public', table, column });

describe('demo policies', () => {
  let demo: { policies: PolicyBundle; version: string };
  const ctx = (id: Identity): PolicyContext => createPolicyContext(demo.policies, id, demo.version);
  const analyst = identity('ann', ['analyst'], { region: 'eu' });
  const dba = identity('dora', ['dba']);

  beforeAll(async () => {
    demo = await bundleOf(await readFile(join(import.meta.dirname, '../../../policies/demo.yaml'), 'utf8'));
  });

  it('analysts read customers of their region', () => {
    const d = tableAccess(ctx(analyst), customers, 'select');
    expect(d).toMatchObject({ effect: 'allow', rule: 'analysts-read-customers', policySet: 'demo', enforcement: 'enforce' });
    expect(d.rowFilters.map((f) => f.text)).toEqual(['region = ${claims.region}']);
    expect(renderRowFilter(d.rowFilters[0]!.compiled, analyst).sql).toBe("region = CAST('eu' AS pg_catalog.text)");
  });

  it('analysts without a region claim see no customers', () => {
    const d = tableAccess(ctx(identity('ann', ['analyst'])), customers, 'select');
    expect(renderRowFilter(d.rowFilters[0]!.compiled, identity('ann', ['analyst']))).toMatchObject({ sql: 'false', failClosed: expect.any(String) });
  });

  it('analysts read orders unfiltered and nothing else', () => {
    expect(tableAccess(ctx(analyst), orders, 'select')).toMatchObject({ effect: 'allow', rowFilters: [] });
    expect(tableAccess(ctx(analyst), customers, 'update')).toEqual({
      effect: 'deny',
      message: 'permission denied for table public.customers',
      sqlstate: '42501',
      rowFilters: [],
      enforcement: 'enforce',
    });
    expect(tableAccess(ctx(analyst), { schema: 'public', table: 'staff' }, 'select').effect).toBe('deny');
    expect(statementAccess(ctx(analyst), 'misc').effect).toBe('deny');
  });

  it('card numbers are denied to everyone but admins', () => {
    expect(columnAccess(ctx(analyst), col('card_number'), 'select')).toMatchObject({
      effect: 'deny',
      rule: 'no-card-numbers',
      message: 'card numbers are not readable through pgward',
      sqlstate: '42501',
    });
    expect(columnAccess(ctx(analyst), col('ssn'), 'select')).toMatchObject({ effect: 'allow', rule: 'analysts-read-customers' });
    expect(columnAccess(ctx(dba), col('card_number'), 'select')).toMatchObject({ effect: 'allow', rule: 'admins-all' });
  });

  it('analysts see masked columns', () => {
    const c = ctx(analyst);
    expect(maskFor(c, col('ssn'))).toMatchObject({ mask: { type: 'partial', showLast: 4 }, rule: 'analysts-ssn-last4', specificity: 'class' });
    expect(maskFor(c, col('email')).mask).toEqual({ type: 'emailDomain' });
    expect(maskFor(c, col('salary'))).toMatchObject({ mask: { type: 'null' }, specificity: 'column' });
    expect(maskFor(c, col('date_of_birth')).mask).toEqual({ type: 'dateYear' });
    expect(maskFor(c, col('full_name'))).toEqual({ enforcement: 'enforce' });
    expect(maskFor(c, col('amount', 'orders'))).toEqual({ enforcement: 'enforce' });
  });

  it('admins are unrestricted; analysts and strangers are not', () => {
    expect(isUnrestricted(ctx(dba))).toBe(true);
    expect(isUnrestricted(ctx(identity('pgward_admin')))).toBe(true);
    expect(maskFor(ctx(dba), col('ssn')).mask).toBeUndefined();
    expect(tableAccess(ctx(dba), customers, 'delete')).toMatchObject({ effect: 'allow', rule: 'admins-all', rowFilters: [] });
    expect(statementAccess(ctx(dba), 'ddl').effect).toBe('allow');
    expect(isUnrestricted(ctx(analyst))).toBe(false);
    expect(isUnrestricted(ctx(identity('nobody')))).toBe(false);
  });

  it('someone in both groups gets the analyst filter and masks (filters AND, masks by subject)', () => {
    const both = ctx(identity('bo', ['analyst', 'dba'], { region: 'us' }));
    const d = tableAccess(both, customers, 'select');
    expect(d.rule).toBe('admins-all');
    expect(d.rowFilters.map((f) => f.rule)).toEqual(['analysts-read-customers']);
    expect(maskFor(both, col('ssn')).mask?.type).toBe('partial');
    expect(columnAccess(both, col('card_number'), 'select').effect).toBe('allow');
    expect(isUnrestricted(both)).toBe(false);
  });

  it('strangers are denied, including on columns', () => {
    const c = ctx(identity('nobody'));
    expect(tableAccess(c, customers, 'select').effect).toBe('deny');
    expect(columnAccess(c, col('full_name'), 'select')).toMatchObject({ effect: 'deny', message: 'permission denied for table public.customers' });
  });

  it('classifies demo columns', () => {
    expect(columnClasses(demo.policies, col('card_number'))).toEqual(['pci.pan']);
    expect(columnClasses(demo.policies, col('full_name'))).toEqual([]);
  });
});

describe('rules', () => {
  const subjects = `  subjects:
    staff: { group: staff }
    eu: { claim: { path: region, in: [eu] } }
`;

  it('a matching deny beats a matching allow, whatever the order', async () => {
    const b = await bundleOf(
      policySet(
        'a',
        `${subjects}  rules:
    - { name: all, effect: allow, subjects: [staff], actions: [all], resources: { tables: ["*.*"] } }
    - { name: no-secrets, effect: deny, subjects: ["*"], resources: { tables: ["secret.*"] }, message: nope }
`,
      ),
    );
    const c = createPolicyContext(b.policies, identity('s', ['staff']), b.version);
    expect(tableAccess(c, { schema: 'secret', table: 'keys' }, 'select')).toMatchObject({ effect: 'deny', rule: 'no-secrets', message: 'nope' });
    expect(tableAccess(c, customers, 'select').effect).toBe('allow');
    expect(statementAccess(c, 'misc').effect).toBe('allow');
    expect(isUnrestricted(c)).toBe(false);
  });

  it('ANDs the row filters of every matching allow rule', async () => {
    const b = await bundleOf(
      policySet(
        'a',
        `${subjects}  rules:
    - { name: r1, effect: allow, subjects: [staff], actions: [select], resources: { tables: [public.customers] }, rowFilter: "region = \${claims.region}" }
    - { name: r2, effect: allow, subjects: [eu], actions: [select, update], resources: { tables: ["public.*"] }, rowFilter: "owner = \${user.name}" }
    - { name: r3, effect: allow, subjects: [staff], actions: [insert], resources: { tables: [public.customers] }, rowFilter: "false" }
`,
      ),
    );
    const c = createPolicyContext(b.policies, identity('s', ['staff'], { region: 'eu' }), b.version);
    expect(tableAccess(c, customers, 'select').rowFilters.map((f) => f.rule)).toEqual(['r1', 'r2']);
    expect(tableAccess(c, customers, 'update').rowFilters.map((f) => f.rule)).toEqual(['r2']);
    expect(tableAccess(c, orders, 'select').rowFilters.map((f) => f.rule)).toEqual(['r2']);
    expect(tableAccess(c, customers, 'delete').effect).toBe('deny');
  });

  it('with defaultAction allow, uncovered tables are allowed and column denies still apply', async () => {
    const b = await bundleOf(
      policySet('a', `${subjects}  rules:\n    - { name: no-ssn, effect: deny, subjects: ["*"], except: [staff], actions: [select], resources: { columns: ["*.*.ssn"] } }\n`, {
        defaultAction: 'allow',
      }),
    );
    const guest = createPolicyContext(b.policies, identity('g'), b.version);
    expect(tableAccess(guest, customers, 'select')).toMatchObject({ effect: 'allow', rowFilters: [] });
    expect(tableAccess(guest, customers, 'select').rule).toBeUndefined();
    expect(columnAccess(guest, col('ssn'), 'select')).toMatchObject({ effect: 'deny', rule: 'no-ssn', message: 'permission denied for column ssn of table public.customers' });
    expect(columnAccess(guest, col('ssn'), 'update').effect).toBe('allow');
    expect(isUnrestricted(guest)).toBe(false);
    const staff = createPolicyContext(b.policies, identity('s', ['staff']), b.version);
    expect(columnAccess(staff, col('ssn'), 'select').effect).toBe('allow');
    expect(isUnrestricted(staff)).toBe(true);
  });

  it('column-level allows open a table for those columns only', async () => {
    const b = await bundleOf(policySet('a', `${subjects}  rules:\n    - { name: names, effect: allow, subjects: [staff], actions: [select], resources: { columns: [public.customers.full_name, public.customers.id] } }\n`));
    const c = createPolicyContext(b.policies, identity('s', ['staff']), b.version);
    expect(tableAccess(c, customers, 'select')).toMatchObject({ effect: 'allow', rule: 'names', columnsRestricted: true });
    expect(columnAccess(c, col('full_name'), 'select')).toMatchObject({ effect: 'allow', rule: 'names' });
    expect(columnAccess(c, col('ssn'), 'select')).toMatchObject({ effect: 'deny', message: 'permission denied for column ssn of table public.customers' });
    expect(tableAccess(c, orders, 'select').effect).toBe('deny');
  });

  it('pools PolicySets: a deny default anywhere makes the default deny', async () => {
    const b = await bundleOf(policySet('open', '', { defaultAction: 'allow' }), policySet('closed', ''));
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    expect(tableAccess(c, customers, 'select').effect).toBe('deny');
    const open = await bundleOf(policySet('open', '', { defaultAction: 'allow' }));
    expect(tableAccess(createPolicyContext(open.policies, identity('x'), open.version), customers, 'select').effect).toBe('allow');
  });

  it('fails closed with no PolicySets at all', async () => {
    const b = await bundleOf(`${HEADER}\nkind: DataClassification\nmetadata: { name: c }\nspec:\n  columns: []\n`);
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    expect(tableAccess(c, customers, 'select').effect).toBe('deny');
    expect(isUnrestricted(c)).toBe(false);
  });
});

describe('audit enforcement', () => {
  it('audit-mode denies are reported but not enforced', async () => {
    const b = await bundleOf(
      policySet('base', '', { defaultAction: 'allow' }),
      policySet('trial', `  rules:\n    - { name: no-customers, effect: deny, subjects: ["*"], resources: { tables: [public.customers] } }\n`, {
        defaultAction: 'allow',
        enforcement: 'audit',
      }),
    );
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    const d = tableAccess(c, customers, 'select');
    expect(d).toMatchObject({ effect: 'allow', enforcement: 'audit', audit: { effect: 'deny', rule: 'no-customers', policySet: 'trial' } });
    expect(tableAccess(c, orders, 'select')).toMatchObject({ effect: 'allow', enforcement: 'enforce' });
    expect(tableAccess(c, orders, 'select').audit).toBeUndefined();
    expect(columnAccess(c, col('ssn'), 'select')).toMatchObject({ effect: 'allow', enforcement: 'audit', audit: { effect: 'deny' } });
    expect(isUnrestricted(c)).toBe(false);
  });

  it('audit-mode row filters and masks are reported, not applied', async () => {
    const b = await bundleOf(
      policySet('base', `  rules:\n    - { name: read, effect: allow, subjects: ["*"], actions: [select], resources: { tables: ["*.*"] } }\n`),
      policySet(
        'trial',
        `  rules:
    - { name: mine, effect: allow, subjects: ["*"], actions: [select], resources: { tables: [public.customers] }, rowFilter: "owner = \${user.name}" }
  masks:
    - { name: hide, subjects: ["*"], resources: { columns: [public.customers.ssn] }, mask: { type: full } }
`,
        { defaultAction: 'allow', enforcement: 'audit' },
      ),
    );
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    const d = tableAccess(c, customers, 'select');
    expect(d.rowFilters).toEqual([]);
    expect(d.enforcement).toBe('audit');
    expect(d.audit?.rowFilters.map((f) => f.rule)).toEqual(['mine']);
    expect(d.audit?.rowFilters[0]?.enforcement).toBe('audit');
    const m = maskFor(c, col('ssn'));
    expect(m).toMatchObject({ enforcement: 'audit', audit: { mask: { type: 'full' }, rule: 'hide' } });
    expect(m.mask).toBeUndefined();
  });

  it('with only audit-mode sets nothing is enforced', async () => {
    const b = await bundleOf(policySet('trial', '', { enforcement: 'audit' }));
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    expect(tableAccess(c, customers, 'select')).toMatchObject({ effect: 'allow', enforcement: 'audit', audit: { effect: 'deny' } });
  });
});

describe('mask precedence', () => {
  const classes = `${HEADER}
kind: DataClassification
metadata: { name: c }
spec:
  columns:
    - { match: public.customers.ssn, classes: [pii.ssn] }
    - { match: "*.*.email", classes: [pii.email] }
`;
  const masks = (body: string) => policySet('a', `  subjects:\n    vip: { group: vip }\n  masks:\n${body}`, { defaultAction: 'allow' });

  it('column-specific beats class beats wildcard, regardless of order and priority', async () => {
    const b = await bundleOf(
      classes,
      masks(`    - { name: wild, subjects: ["*"], resources: { columns: ["public.customers.*"] }, mask: { type: full, priority: -10 } }
    - { name: cls, subjects: ["*"], resources: { classes: [pii.ssn] }, mask: { type: partial, showLast: 4, priority: -5 } }
    - { name: exact, subjects: ["*"], resources: { columns: [public.customers.ssn] }, mask: { type: hash, salt: s, priority: 100 } }
`),
    );
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    expect(maskFor(c, col('ssn'))).toMatchObject({ rule: 'exact', specificity: 'column', mask: { type: 'hash' } });
    expect(maskFor(c, col('email'))).toMatchObject({ rule: 'wild', specificity: 'wildcard' });
    expect(maskFor(c, col('ssn'), [])).toMatchObject({ rule: 'exact' });
  });

  it('class beats a whole-table mask; within a level lower priority wins, then load order', async () => {
    const b = await bundleOf(
      classes,
      masks(`    - { name: table, subjects: ["*"], resources: { tables: [public.customers] }, mask: { type: "null" } }
    - { name: first, subjects: ["*"], resources: { classes: [pii.email] }, mask: { type: full } }
    - { name: second, subjects: ["*"], resources: { classes: [pii.email] }, mask: { type: emailDomain } }
    - { name: low, subjects: ["*"], resources: { classes: [pii.ssn] }, mask: { type: full, priority: 5 } }
    - { name: lower, subjects: ["*"], resources: { classes: [pii.ssn] }, mask: { type: partial, showLast: 2, priority: 1 } }
`),
    );
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    expect(maskFor(c, col('email'))).toMatchObject({ rule: 'first' });
    expect(maskFor(c, col('ssn'))).toMatchObject({ rule: 'lower' });
    expect(maskFor(c, col('full_name'))).toMatchObject({ rule: 'table', mask: { type: 'null' } });
  });

  it('type none exempts, and except removes a mask', async () => {
    const b = await bundleOf(
      classes,
      masks(`    - { name: hide, subjects: ["*"], except: [vip], resources: { classes: ["pii.*"] }, mask: { type: full } }
    - { name: own-email, subjects: ["*"], resources: { columns: [public.customers.email] }, mask: { type: none } }
`),
    );
    const c = createPolicyContext(b.policies, identity('x'), b.version);
    expect(maskFor(c, col('ssn')).mask).toEqual({ type: 'full' });
    expect(maskFor(c, col('email'))).toEqual({ rule: 'own-email', policySet: 'a', specificity: 'column', enforcement: 'enforce' });
    const vip = createPolicyContext(b.policies, identity('v', ['vip']), b.version);
    expect(maskFor(vip, col('ssn')).mask).toBeUndefined();
    expect(isUnrestricted(vip)).toBe(true);
    expect(isUnrestricted(c)).toBe(false);
  });
});

describe('encrypted columns and decrypt', () => {
  const ring = `${HEADER}
kind: KeyRing
metadata: { name: keys }
spec:
  keyEncryptionKeys: [ { id: k, source: { env: PGWARD_KEK } } ]
  encryptedColumns:
    - { column: public.customers.ssn_enc, mode: deterministic, plaintextType: text, storage: bytea, kek: k }
  dataKeys: keys/data-keys.json
  whenNotGranted: ciphertext
`;

  it('decrypt is granted only by a rule naming it, and denied by deny-all rules', async () => {
    const b = await bundleOf(
      ring,
      policySet(
        'a',
        `  subjects:
    ops: { group: ops }
    auditors: { group: auditors }
    interns: { group: interns }
  rules:
    - { name: all, effect: allow, subjects: ["*"], actions: [all], resources: { tables: ["*.*"] } }
    - { name: ops-decrypt, effect: allow, subjects: [ops], actions: [decrypt], resources: { columns: [public.customers.ssn_enc] } }
    - { name: no-interns, effect: deny, subjects: [interns], resources: { columns: [public.customers.ssn_enc] } }
`,
      ),
    );
    const enc = col('ssn_enc');
    const plain = createPolicyContext(b.policies, identity('p'), b.version);
    expect(columnAccess(plain, enc, 'select').effect).toBe('allow');
    expect(columnAccess(plain, enc, 'decrypt')).toMatchObject({ effect: 'deny', message: 'decryption of column ssn_enc of table public.customers is not granted' });
    const ops = createPolicyContext(b.policies, identity('o', ['ops']), b.version);
    expect(columnAccess(ops, enc, 'decrypt')).toMatchObject({ effect: 'allow', rule: 'ops-decrypt' });
    const intern = createPolicyContext(b.policies, identity('i', ['ops', 'interns']), b.version);
    expect(columnAccess(intern, enc, 'decrypt')).toMatchObject({ effect: 'deny', rule: 'no-interns' });
    expect(isUnrestricted(ops)).toBe(false);
    expect(encryptionFor(b.policies, enc)).toMatchObject({ keyRing: 'keys', mode: 'deterministic', whenNotGranted: 'ciphertext', kek: 'k' });
    expect(encryptionFor(b.policies, col('ssn'))).toBeUndefined();
  });
});

describe('contextKey', () => {
  const policy = policySet(
    'a',
    `  subjects:
    staff: { group: staff }
    eu: { claim: { path: region, in: [eu, EU] } }
  rules:
    - { name: r, effect: allow, subjects: [staff], actions: [select], resources: { tables: ["*.*"] }, rowFilter: "region = \${claims.region}" }
`,
  );

  it('depends on matched subjects, row-filter values and the version only', async () => {
    const b = await bundleOf(policy);
    const key = (id: Identity, version = b.version) => contextKey(createPolicyContext(b.policies, id, version));
    const base = key(identity('a', ['staff'], { region: 'eu' }));
    expect(base).toMatch(/^[0-9a-f]{16}:[0-9a-f]{64}$/);
    expect(key(identity('a', ['staff'], { region: 'eu' }))).toBe(base);
    // Other users, groups and claims that no policy reads do not split the cache.
    expect(key(identity('b', ['staff', 'other'], { region: 'eu', email: 'b@x' }))).toBe(base);
    expect(key(identity('a', ['staff'], { region: 'EU' }))).not.toBe(base);
    expect(key(identity('a', [], { region: 'eu' }))).not.toBe(base);
    expect(key(identity('a', ['staff'], {}))).not.toBe(base);
    expect(key(identity('a', ['staff'], { region: 'eu' }), 'f'.repeat(64))).not.toBe(base);
  });

  it('distinguishes value types of the same placeholder', async () => {
    const b = await bundleOf(policy);
    const key = (region: unknown) => contextKey(createPolicyContext(b.policies, identity('a', ['staff'], { region }), b.version));
    expect(key('1')).not.toBe(key(1));
    expect(key(['a'])).not.toBe(key('a'));
  });
});
