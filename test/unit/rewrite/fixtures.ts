/**
 * A synthetic catalog (as CATALOG_SQL would return it) and demo-like
 * policies for rewriter unit tests.
 */
import type { Identity } from '../../../src/auth/identity.js';
import { createPolicyContext, type PolicyContext } from '../../../src/policy/decide.js';
import { parsePolicyText, type PolicyBundle } from '../../../src/policy/load.js';
import { buildCatalog, type Catalog } from '../../../src/rewrite/catalog.js';
import { planRewrite, type RewriteDecision } from '../../../src/rewrite/plan.js';

type Col = [name: string, type: string, typeName?: string, typeSchema?: string, isArray?: boolean];

const TYPE_OIDS: Record<string, number> = { int4: 23, int8: 20, text: 25, numeric: 1700, date: 1082, timestamptz: 1184, bool: 16, name: 19, oid: 26, _text: 1009 };

function relation(oid: number, schema: string, name: string, relkind: string, cols: Col[], parents: number[] = []): unknown[] {
  const columns = cols.map(([colName, type, typeName, typeSchema, isArray], i) => {
    const tn = typeName ?? type.replace(/\(.*\)/, '');
    return [colName, i + 1, type, TYPE_OIDS[tn] ?? 0, type.startsWith('numeric(') ? 655366 : -1, colName === 'id', tn, typeSchema ?? 'pg_catalog', isArray ?? false];
  });
  return [oid, schema, name, relkind, columns, parents];
}

const CUSTOMER_COLUMNS: Col[] = [
  ['id', 'integer', 'int4'],
  ['full_name', 'text'],
  ['email', 'text'],
  ['ssn', 'text'],
  ['region', 'text'],
  ['salary', 'numeric(10,2)', 'numeric'],
  ['card_number', 'text'],
  ['date_of_birth', 'date'],
  ['created_at', 'timestamp with time zone', 'timestamptz'],
];

const PAYMENT_COLUMNS: Col[] = [
  ['id', 'bigint', 'int8'],
  ['customer_id', 'integer', 'int4'],
  ['region', 'text'],
  ['amount', 'numeric'],
  ['card_number', 'text'],
];

export const OIDS = {
  customers: 16400,
  orders: 16410,
  payments: 16420,
  paymentsEu: 16421,
  paymentsUs: 16422,
  summary: 16430,
  secretView: 16431,
  auditLog: 16440,
  otherCustomers: 16450,
  legacy: 16460,
  legacyChild: 16461,
  clientData: 16470,
  regionGrants: 16480,
  notes: 16490,
} as const;

const BUILTINS = [
  'count', 'sum', 'avg', 'max', 'min', 'row_to_json', 'to_jsonb', 'to_json', 'json_agg', 'jsonb_agg', 'json_build_object', 'lower', 'upper',
  'length', 'now', 'regexp_replace', 'translate', 'reverse', 'split_part', 'strpos', 'encode', 'sha256', 'convert_to', 'date_trunc',
  'generate_series', 'unnest', 'row_number', 'rank', 'lag', 'lead', 'string_agg', 'array_agg', 'set_config', 'current_setting',
  'query_to_xml', 'table_to_xml', 'pg_read_file', 'pg_ls_dir', 'lo_import', 'lo_get', 'ts_stat', 'format', 'concat', 'substring', 'extract',
  'date_part', 'btrim', 'position', 'left', 'right', 'md5', 'pg_sleep', 'pg_table_is_visible', 'format_type', 'pg_get_expr',
  'json_to_record', 'jsonb_build_object', 'abs', 'round', 'pg_stat_get_activity', 'timezone', 'pg_typeof', 'pg_collation_for',
  'system', 'bernoulli', 'dblink', 'cursor_to_xml', 'current_query', 'pg_backend_pid', 'pg_advisory_lock', 'like_escape', 'nullif', 'pg_get_viewdef', 'textlen',
  'pg_notify', 'nextval', 'setval', 'currval', 'pg_try_advisory_xact_lock', 'pg_advisory_unlock_all', 'pg_stat_reset', 'pg_reload_conf',
  'pg_create_logical_replication_slot',
];
const OPERATORS = ['=', '<>', '<', '>', '<=', '>=', '+', '-', '*', '/', '%', '^', '||', '~~', '~~*', '!~~', '~', '!~', '->', '->>', '#>', '@>', '<@', '&&', '@', '|/', '<<', '>>'];

/** The rows node-postgres would return for CATALOG_SQL. */
export function catalogRows(extra: { relations?: unknown[][] } = {}): Record<string, unknown>[] {
  const doc = {
    database: 'app',
    relations: [
      relation(1259, 'pg_catalog', 'pg_class', 'r', [['oid', 'oid'], ['relname', 'name'], ['relnamespace', 'oid'], ['relkind', '"char"', 'char']]),
      relation(2615, 'pg_catalog', 'pg_namespace', 'r', [['oid', 'oid'], ['nspname', 'name']]),
      relation(1249, 'pg_catalog', 'pg_attribute', 'r', [['attrelid', 'oid'], ['attname', 'name'], ['attnum', 'smallint', 'int2'], ['atttypid', 'oid'], ['atttypmod', 'integer', 'int4'], ['attisdropped', 'boolean', 'bool']]),
      relation(2619, 'pg_catalog', 'pg_statistic', 'r', [['starelid', 'oid']]),
      relation(12000, 'pg_catalog', 'pg_stats', 'v', [['schemaname', 'name'], ['tablename', 'name'], ['most_common_vals', 'anyarray', 'anyarray']]),
      relation(12001, 'pg_catalog', 'pg_stat_activity', 'v', [['pid', 'integer', 'int4'], ['query', 'text']]),
      relation(12002, 'pg_catalog', 'pg_largeobject', 'r', [['loid', 'oid'], ['data', 'bytea', 'bytea']]),
      relation(12003, 'pg_catalog', 'pg_prepared_statements', 'v', [['name', 'text'], ['statement', 'text']]),
      relation(12004, 'pg_catalog', 'pg_cursors', 'v', [['name', 'text'], ['statement', 'text']]),
      relation(13000, 'information_schema', 'columns', 'v', [['table_name', 'name'], ['column_name', 'name']]),
      relation(OIDS.customers, 'public', 'customers', 'r', CUSTOMER_COLUMNS),
      relation(OIDS.orders, 'public', 'orders', 'r', [
        ['id', 'integer', 'int4'],
        ['customer_id', 'integer', 'int4'],
        ['amount', 'numeric'],
        ['status', 'text'],
        ['ordered_at', 'timestamp with time zone', 'timestamptz'],
      ]),
      relation(OIDS.payments, 'public', 'payments', 'p', PAYMENT_COLUMNS),
      relation(OIDS.paymentsEu, 'public', 'payments_eu', 'r', PAYMENT_COLUMNS, [OIDS.payments]),
      relation(OIDS.paymentsUs, 'public', 'payments_us', 'r', PAYMENT_COLUMNS, [OIDS.payments]),
      relation(OIDS.summary, 'public', 'customer_summary', 'v', [['region', 'text'], ['customers', 'bigint', 'int8']]),
      relation(OIDS.secretView, 'public', 'secret_view', 'v', [['ssn', 'text']]),
      relation(OIDS.auditLog, 'public', 'audit_log', 'r', [['id', 'integer', 'int4'], ['entry', 'text']]),
      relation(OIDS.otherCustomers, 'other', 'customers', 'r', CUSTOMER_COLUMNS),
      relation(OIDS.legacy, 'public', 'legacy', 'r', [['id', 'integer', 'int4'], ['ssn', 'text']]),
      relation(OIDS.legacyChild, 'public', 'legacy_child', 'r', [['id', 'integer', 'int4'], ['ssn', 'text'], ['note', 'text']], [OIDS.legacy]),
      relation(OIDS.clientData, 'public', 'Client Data', 'r', [['Id', 'integer', 'int4'], ['SSN', 'text'], ['Tags', 'text[]', 'text', 'pg_catalog', true]]),
      relation(OIDS.regionGrants, 'public', 'region_grants', 'r', [['user_name', 'text'], ['region', 'text']]),
      relation(OIDS.notes, 'public', 'notes', 'r', [['id', 'integer', 'int4'], ['body', 'text'], ['secret', 'text'], ['amount', 'numeric']]),
      ...(extra.relations ?? []),
    ],
    functions: [
      ...BUILTINS.map((n) => ['pg_catalog', n, ['count', 'sum', 'avg', 'max', 'min', 'json_agg', 'jsonb_agg', 'string_agg', 'array_agg'].includes(n) ? 'a' : ['row_number', 'rank', 'lag', 'lead'].includes(n) ? 'w' : 'f']),
      ['public', 'my_func', 'f'],
      ['public', 'lower', 'f'],
      ['public', 'dblink', 'f'],
    ],
    operators: [...OPERATORS.map((o) => ['pg_catalog', o]), ['public', '#@#'], ['public', '->']],
    checkedDomains: [['public', 'us_postal_code']],
  };
  return [{ catalog: JSON.stringify(doc) }];
}

export const DEMO_POLICIES = `
apiVersion: pgward.dev/v1
kind: DataClassification
metadata: { name: demo-classes }
spec:
  columns:
    - { match: public.customers.ssn,           classes: [pii.ssn] }
    - { match: public.customers.email,         classes: [pii.email] }
    - { match: public.customers.date_of_birth, classes: [pii.dob] }
    - { match: public.customers.card_number,   classes: [pci.pan] }
    - { match: public.payments.card_number,    classes: [pci.pan] }
    - { match: public.legacy.ssn,              classes: [pii.ssn] }
    - { match: 'public."Client Data".SSN',     classes: [pii.ssn] }
---
apiVersion: pgward.dev/v1
kind: PolicySet
metadata: { name: demo }
spec:
  defaultAction: deny
  enforcement: enforce
  subjects:
    analysts: { anyOf: [ { group: analyst } ] }
    loaders:  { anyOf: [ { group: loader } ] }
    builders: { anyOf: [ { group: builder } ] }
    admins:   { anyOf: [ { group: dba }, { user: pgward_admin } ] }
  rules:
    - name: admins-all
      effect: allow
      subjects: [admins]
      actions: [all]
      resources: { tables: ["*.*"] }
    - name: analysts-read-customers
      effect: allow
      subjects: [analysts]
      actions: [select, copy_to]
      resources: { tables: [public.customers] }
      rowFilter: "region = \${claims.region}"
    - name: analysts-read-orders
      effect: allow
      subjects: [analysts]
      actions: [select, copy_to]
      resources: { tables: [public.orders] }
    - name: analysts-read-payments
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: [public.payments] }
      rowFilter: "payments.region = \${claims.region}"
    - name: analysts-read-summary
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: [public.customer_summary] }
    - name: analysts-read-legacy
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: [public.legacy, public.legacy_child] }
    - name: analysts-read-client-data
      effect: allow
      subjects: [analysts]
      actions: [select]
      resources: { tables: ['public."Client Data"'] }
    - name: analysts-no-copy-orders
      effect: deny
      subjects: [analysts]
      actions: [copy_to]
      resources: { tables: [public.orders] }
      message: orders may not be exported
    - name: no-card-numbers
      effect: deny
      subjects: ["*"]
      except: [admins]
      resources: { classes: [pci.pan] }
      message: card numbers are not readable through pgward
    - name: loaders-write-orders
      effect: allow
      subjects: [loaders]
      actions: [select, insert, update, delete, copy_from, truncate]
      resources: { tables: [public.orders, public.audit_log] }
    - name: loaders-customers
      effect: allow
      subjects: [loaders]
      actions: [insert, copy_from, select]
      resources: { tables: [public.customers] }
    - name: builders-ddl
      effect: allow
      subjects: [builders]
      actions: [ddl, misc, function, select]
      resources: { tables: ["*.*"] }
  masks:
    - name: analysts-ssn-last4
      subjects: [analysts]
      resources: { classes: [pii.ssn] }
      mask: { type: partial, showLast: 4 }
    - name: analysts-email-domain
      subjects: [analysts]
      resources: { classes: [pii.email] }
      mask: { type: emailDomain }
    - name: analysts-salary
      subjects: [analysts]
      resources: { columns: [public.customers.salary] }
      mask: { type: "null" }
    - name: analysts-birth-year
      subjects: [analysts]
      resources: { classes: [pii.dob] }
      mask: { type: dateYear }
`;

export const analyst: Identity = { user: 'ann', groups: ['analyst'], claims: { region: 'eu' }, source: 'oidc' };
export const analystNoRegion: Identity = { user: 'nora', groups: ['analyst'], claims: {}, source: 'oidc' };
export const loader: Identity = { user: 'lou', groups: ['loader'], claims: {}, source: 'oidc' };
export const builder: Identity = { user: 'bob', groups: ['builder'], claims: {}, source: 'oidc' };
export const stranger: Identity = { user: 'sam', groups: [], claims: {}, source: 'oidc' };

export interface World {
  readonly bundle: PolicyBundle;
  readonly version: string;
  readonly catalog: Catalog;
  context(identity: Identity): PolicyContext;
  plan(sql: string, identity?: Identity, options?: { protocol?: 'simple' | 'extended'; searchPath?: readonly string[] }): RewriteDecision;
}

export async function world(policies = DEMO_POLICIES): Promise<World> {
  const loaded = await parsePolicyText(policies, 'test.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const catalog = buildCatalog(catalogRows());
  const contexts = new Map<Identity, PolicyContext>();
  const context = (identity: Identity): PolicyContext => {
    let ctx = contexts.get(identity);
    if (!ctx) contexts.set(identity, (ctx = createPolicyContext(loaded.policies, identity, loaded.version)));
    return ctx;
  };
  return {
    bundle: loaded.policies,
    version: loaded.version,
    catalog,
    context,
    plan: (sql, identity = analyst, options = {}) =>
      planRewrite({
        sql,
        protocol: options.protocol ?? 'simple',
        policy: context(identity),
        bundle: loaded.policies,
        identity,
        catalog,
        searchPath: options.searchPath ?? ['public'],
      }),
  };
}
