import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import pg from 'pg';
import type { Identity } from './auth/identity.js';
import { columnClasses, createPolicyContext, isUnrestricted } from './policy/decide.js';
import { loadPolicyDirectory, type PolicyBundle } from './policy/load.js';
import { classPatternMatches, partsMatch, splitQualifiedName } from './policy/names.js';
import { loadSqlParser } from './policy/row-filter.js';
import { formatPolicyError } from './policy/store.js';
import { buildCatalog, CATALOG_SQL, type Catalog } from './rewrite/catalog.js';
import { SYSTEM_SCHEMAS } from './rewrite/blocked.js';
import { maskTypeError } from './rewrite/mask-sql.js';
import { describeDecision, planRewrite } from './rewrite/plan.js';
import { parseClaims, UsageError } from './token-command.js';

export const POLICY_HELP = `pgward policy lint [--dir policies] [--url postgres://user:pass@host/db]
  Validate the policy files (file:line:column for every problem). With --url, also
  check them against that database's catalog: tables and columns that match
  nothing, and masks that do not fit their column's type. Exit code 1 on problems.
pgward policy explain --sql "SELECT …" --url postgres://… [--dir policies]
                      (--as NAME [--groups a,b] [--claim key=value …] | --token JWT)
                      [--search-path public]   the pinned search_path, "$user" expanded
  Print what pgward would do with a statement for an identity: the subjects it
  matches, the decision, the tables and masks involved, and the rewritten SQL.
`;

interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Runs `pgward policy …`; resolves with the exit code. */
export async function policyCommand(args: string[], io: Output): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      dir: { type: 'string', default: 'policies' },
      url: { type: 'string' },
      sql: { type: 'string' },
      as: { type: 'string' },
      groups: { type: 'string' },
      claim: { type: 'string', multiple: true },
      token: { type: 'string' },
      'search-path': { type: 'string', default: 'public' },
    },
  });
  await loadSqlParser();
  const loaded = await loadPolicyDirectory(values.dir!);
  if (!loaded.ok) {
    for (const error of loaded.errors) io.err(`${formatPolicyError(error)}\n`);
    return 1;
  }
  const catalog = values.url ? await readCatalog(values.url) : undefined;
  if (sub === 'lint') {
    const problems = catalog ? lintAgainstCatalog(loaded.policies, catalog) : [];
    for (const problem of problems) io.err(`${problem}\n`);
    const scope = catalog ? `against database ${catalog.database}` : 'syntax and references only (add --url to check against a database)';
    io.out(`${problems.length === 0 ? 'ok' : `${problems.length} problem(s)`}: ${loaded.policies.files.length} file(s), version ${loaded.version.slice(0, 12)}, ${scope}\n`);
    return problems.length === 0 ? 0 : 1;
  }
  if (sub === 'explain') {
    if (!values.sql) throw new UsageError('explain needs --sql');
    if (!catalog) throw new UsageError('explain needs --url to resolve tables against the database catalog');
    const identity = explainIdentity(values);
    const policy = createPolicyContext(loaded.policies, identity, loaded.version);
    io.out(`identity: ${identity.user}; groups: ${identity.groups.join(', ') || '(none)'}; claims: ${JSON.stringify(identity.claims)}\n`);
    for (const [set, subjects] of policy.subjects) io.out(`policy set ${set}: matches ${[...subjects].join(', ') || 'no subject'}\n`);
    if (isUnrestricted(policy)) {
      io.out('unrestricted: statements are forwarded untouched\n');
      return 0;
    }
    const decision = planRewrite({
      sql: values.sql,
      protocol: 'simple',
      policy,
      bundle: loaded.policies,
      identity,
      catalog,
      searchPath: values['search-path']!.split(',').map((schema) => schema.trim()),
    });
    io.out(`${describeDecision(decision)}\n`);
    return 0;
  }
  throw new UsageError(`unknown policy command "${sub ?? ''}"`);
}

async function readCatalog(url: string): Promise<Catalog> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(CATALOG_SQL);
    return buildCatalog(rows);
  } finally {
    await client.end();
  }
}

function explainIdentity(values: { as?: string; groups?: string; claim?: string[]; token?: string }): Identity {
  if (values.token) {
    // For explaining only: the token is read, not verified.
    const claims = decodeJwt(values.token) as Record<string, unknown>;
    const user = String(claims.preferred_username ?? claims.upn ?? claims.email ?? claims.sub ?? '');
    const groups = Array.isArray(claims.groups) ? claims.groups.map(String) : [];
    return { user, groups, claims, source: 'oidc' };
  }
  if (!values.as) throw new UsageError('explain needs --as NAME or --token JWT');
  // Claims are read as `pgward token` mints them, so a row filter renders the same way.
  const claims = parseClaims(values.claim ?? []);
  const groups = values.groups ? values.groups.split(',').map((g) => g.trim()).filter(Boolean) : [];
  return { user: values.as, groups, claims, source: 'oidc' };
}

/** Problems only a catalog can reveal: names that match nothing, masks that do not fit. */
function lintAgainstCatalog(bundle: PolicyBundle, catalog: Catalog): string[] {
  const problems: string[] = [];
  const relations = [...catalog.relations.values()].filter((r) => !SYSTEM_SCHEMAS.has(r.schema));
  const columns = relations.flatMap((r) => r.columns.map((c) => ({ relation: r, column: c })));
  const matchesTable = (pattern: string) => {
    const parts = splitQualifiedName(pattern);
    return parts !== undefined && relations.some((r) => partsMatch(parts, [r.schema, r.name]));
  };
  const matchesColumn = (pattern: string) => {
    const parts = splitQualifiedName(pattern);
    return parts !== undefined && columns.some(({ relation, column }) => partsMatch(parts, [relation.schema, relation.name, column.name]));
  };
  for (const set of bundle.policySets) {
    const where = `${set.source.file}:${set.source.line}`;
    for (const rule of set.spec.rules) {
      for (const table of rule.resources.tables ?? []) {
        if (!matchesTable(table)) problems.push(`${where}: rule ${rule.name}: no table in ${catalog.database} matches ${table}`);
      }
      for (const column of rule.resources.columns ?? []) {
        if (!matchesColumn(column)) problems.push(`${where}: rule ${rule.name}: no column in ${catalog.database} matches ${column}`);
      }
    }
  }
  for (const classification of bundle.classifications) {
    for (const entry of classification.spec.columns) {
      if (!matchesColumn(entry.match)) {
        problems.push(`${classification.source.file}:${classification.source.line}: classification ${classification.metadata.name}: no column matches ${entry.match}`);
      }
    }
  }
  // Masks: check each column against every mask that could apply to it, whoever the identity.
  for (const set of bundle.policySets) {
    for (const mask of set.spec.masks ?? []) {
      for (const { relation, column } of columns) {
        const ref = { schema: relation.schema, table: relation.name, column: column.name };
        if (!maskCovers(mask.resources, ref, columnClasses(bundle, ref))) continue;
        const problem = maskTypeError(mask.mask, column.type);
        if (problem) problems.push(`${set.source.file}:${set.source.line}: mask ${mask.name} on ${ref.schema}.${ref.table}.${ref.column} (${column.type}): ${problem}`);
      }
    }
  }
  return problems;
}

function maskCovers(
  resources: { tables?: readonly string[]; columns?: readonly string[]; classes?: readonly string[] },
  column: { schema: string; table: string; column: string },
  classes: readonly string[],
): boolean {
  const name = [column.schema, column.table, column.column];
  const matches = (pattern: string, target: readonly string[]): boolean => {
    const parts = splitQualifiedName(pattern);
    return parts !== undefined && partsMatch(parts, target);
  };
  if (resources.columns?.some((p) => matches(p, name))) return true;
  if (resources.tables?.some((p) => matches(p, name.slice(0, 2)))) return true;
  return resources.classes?.some((pattern) => classes.some((c) => classPatternMatches(pattern, c))) ?? false;
}
