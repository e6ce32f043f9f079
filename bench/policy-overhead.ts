/**
 * Issue #12: what a cached rewrite costs. The same pgbench user goes through
 * two pgwards in front of the same server: one without policies, and one whose
 * policies restrict that user so every select-only statement is rewritten
 * (a row filter on pgbench_accounts and a mask on its filler column).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Cell } from './pgbench-run.js';
import { PGWARD_CLI } from './pgward-target.js';
import { describeFailure, runCommand } from './processes.js';
import { clientConfig, type Credentials, type Target } from './target.js';

/** A plain login role: no superuser, no policy rule that lifts its restriction. */
export const READER_ROLE = 'bench_reader';

/** The goal cell first; simple protocol beside it, where every literal makes a new statement text. */
export const POLICY_CELLS: readonly Cell[] = [
  { workload: 'select-only', mode: 'prepared', clients: 16 },
  { workload: 'select-only', mode: 'simple', clients: 16 },
];

/** Issue #12: with policies, pgward keeps at least 95% of its own TPS without them (prepared). */
export const POLICY_GOAL_RATIO = 0.95;

/**
 * The restricted identity may run select-only, and nothing else: `-n` skips
 * pgbench's VACUUM and TRUNCATE of pgbench_history, which the policies refuse
 * (and the role does not own those tables anyway). Both pgwards get the same flag.
 */
export const POLICY_PGBENCH_ARGS: readonly string[] = ['-n'];

const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'] as const;

/** What the policy folder does to the reader, for the report. */
export const POLICY_SUMMARY =
  `${READER_ROLE} may select from the four pgbench tables; pgbench_accounts rows pass the row filter ` +
  '"aid > 0" and its filler column is masked with a salted hash';

/** Creates the reader role with SELECT on the pgbench tables; returns its login. */
export async function createReaderRole(direct: Target, admin: Credentials): Promise<Credentials> {
  const password = randomBytes(12).toString('hex');
  await withClient(direct, admin, async (client) => {
    await client.query(`CREATE ROLE ${READER_ROLE} LOGIN PASSWORD '${password}'`);
    await client.query(`GRANT SELECT ON ${TABLES.join(', ')} TO ${READER_ROLE}`);
  });
  return { ...admin, user: READER_ROLE, password };
}

/** Writes the policy folder: deny by default, the reader allowed to select with a row filter and a mask. */
export async function writePolicyFolder(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const others = TABLES.filter((t) => t !== 'pgbench_accounts').map((t) => `public.${t}`);
  const yaml = [
    '# Written by the benchmark (policy phase): restricts the pgbench user so its statements are rewritten.',
    'apiVersion: pgward.dev/v1',
    'kind: PolicySet',
    'metadata: { name: bench-reader }',
    'spec:',
    '  defaultAction: deny',
    '  subjects:',
    `    reader: { user: ${READER_ROLE} }`,
    '  rules:',
    '    - name: reader-accounts',
    '      effect: allow',
    '      subjects: [reader]',
    '      actions: [select]',
    '      resources: { tables: [public.pgbench_accounts] }',
    // Lets every row through, yet makes every read of pgbench_accounts a rewritten one.
    '      rowFilter: "aid > 0"',
    '    - name: reader-other-tables',
    '      effect: allow',
    '      subjects: [reader]',
    '      actions: [select]',
    `      resources: { tables: [${others.join(', ')}] }`,
    '  masks:',
    '    - name: reader-filler',
    '      subjects: [reader]',
    '      resources: { columns: [public.pgbench_accounts.filler] }',
    '      mask: { type: hash, salt: bench }',
    '',
  ].join('\n');
  await writeFile(join(dir, 'bench.yaml'), yaml);
}

/** `pgward policy lint --url`: the folder is valid and every name in it matches the database. */
export async function lintPolicyFolder(dir: string, direct: Target, admin: Credentials): Promise<string> {
  // Plaintext over loopback: only the catalog is read, and pg_hba allows it.
  const url = `postgres://${admin.user}:${admin.password}@${direct.host}:${direct.port}/${admin.database}`;
  const result = await runCommand(process.execPath, [PGWARD_CLI, 'policy', 'lint', '--dir', dir, '--url', url], { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`the benchmark's policy folder does not lint: ${describeFailure(result)}`);
  return result.stdout.trim();
}

export interface RewriteObservation {
  protocol: 'simple' | 'extended';
  sent: string;
  /** The text the server ran, from pg_stat_activity. */
  arrived: string;
}

/** How PostgreSQL plans a statement, as one line of plan nodes (EXPLAIN, costs off). */
export interface PlanShapes {
  sent: string;
  arrived: string;
}

export interface PolicyEvidence {
  statements: RewriteObservation[];
  /** The simple-protocol statement as pgbench sends it and as it arrived, planned directly. */
  plans: PlanShapes;
  /** filler of one row read through the policies, and read directly. */
  filler: { throughPolicies: string; direct: string };
}

const PROBE_APPLICATION = 'pgward-bench-probe';

/**
 * Sends pgbench's select-only statement through `target` as the reader, in both
 * protocols, and reads from pg_stat_activity what the server received instead.
 */
export async function observeRewrite(target: Target, reader: Credentials, direct: Target, admin: Credentials): Promise<PolicyEvidence> {
  return withClient(direct, admin, (monitor) =>
    withClient(
      target,
      reader,
      async (probe) => {
        const arrived = async (): Promise<string> => {
          const { rows } = await monitor.query<{ query: string }>(
            'SELECT query FROM pg_stat_activity WHERE application_name = $1 AND usename = $2',
            [PROBE_APPLICATION, reader.user],
          );
          if (rows.length !== 1) throw new Error(`expected one probe session in pg_stat_activity, found ${rows.length}`);
          return rows[0]!.query;
        };
        const statements: RewriteObservation[] = [];
        // pgbench -S -M simple sends the value as a literal; -M prepared sends $1 in a Parse.
        const simple = 'SELECT abalance FROM pgbench_accounts WHERE aid = 1;';
        await probe.query(simple);
        statements.push({ protocol: 'simple', sent: simple, arrived: await arrived() });
        const extended = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;';
        await probe.query({ text: extended, values: [1] });
        statements.push({ protocol: 'extended', sent: extended, arrived: await arrived() });

        const filler = 'SELECT filler FROM pgbench_accounts WHERE aid = 1';
        const masked = await probe.query<{ filler: string | null }>(filler);
        const plain = await monitor.query<{ filler: string | null }>(filler);
        const shape = async (sql: string): Promise<string> => {
          const { rows } = await monitor.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${sql}`);
          return rows.map((r) => r['QUERY PLAN'].trim().replace(/^->\s*/, '')).join(' -> ');
        };
        return {
          statements,
          plans: { sent: await shape(simple), arrived: await shape(statements[0]!.arrived) },
          filler: { throughPolicies: String(masked.rows[0]?.filler), direct: String(plain.rows[0]?.filler) },
        };
      },
      PROBE_APPLICATION,
    ),
  );
}

async function withClient<T>(
  target: Target,
  credentials: Credentials,
  use: (client: pg.Client) => Promise<T>,
  application?: string,
): Promise<T> {
  const client = new pg.Client({ ...clientConfig(target, credentials), ...(application ? { application_name: application } : {}) });
  client.on('error', () => {});
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => {});
  }
}
