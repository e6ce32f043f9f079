/**
 * pgward benchmark (issue #10): direct vs pgbouncer vs pgward, measured side by
 * side in one run and reported as ratios; plus what policies cost (issue #12)
 * and what a cached token saves (issue #11), each pgward against itself.
 * It prints a report and never asserts absolute times; the exit code is
 * non-zero only when something broke. Run it through bench/run.sh, which builds first.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDevCertificates, type CertificateFiles } from '../src/client/dev-certificates.js';
import type { RunningPostgres } from '../src/upstream/postgres-server.js';
import { CONNECT_WORKERS } from './connect-rate.js';
import { COPY_DIRECTIONS, COPY_TABLE, measureCopy, type CopyMemory } from './copy-memory.js';
import { readOptions, type BenchOptions } from './options.js';
import { goalRatio, GOAL_RATIO, medians, renderMatrix, runMatrix, spreadNote, type CellResult } from './pgbench-matrix.js';
import { cellName } from './pgbench-run.js';
import {
  pgbouncerBinary,
  pgbouncerVersion,
  serviceUser,
  startPgbouncer,
  type RunAs,
  type RunningPgbouncer,
} from './pgbouncer-target.js';
import { readMetrics, startPgward, type PgwardVariant, type RunningPgward } from './pgward-target.js';
import {
  createReaderRole,
  lintPolicyFolder,
  observeRewrite,
  POLICY_CELLS,
  POLICY_GOAL_RATIO,
  POLICY_PGBENCH_ARGS,
  POLICY_SUMMARY,
  READER_ROLE,
  writePolicyFolder,
} from './policy-overhead.js';
import { loadPgbenchTables, startBenchPostgres } from './postgres-target.js';
import { killRunningCommands, runChecked, runCommand } from './processes.js';
import { bytes, fixed, heading, mib, table, verdict } from './report.js';
import { measureSessionMemory, type SessionMemory } from './session-memory.js';
import { libpqEnv, type Credentials, type Target } from './target.js';
import { Teardown } from './teardown.js';
import { BENCH_AUDIENCE, CountingIssuer } from './token-issuer.js';
import {
  fetchesDuring,
  LOGIN_KINDS,
  measureVerifyCost,
  medianRate,
  renderTokenLogins,
  runTokenLogins,
  spread,
  TOKEN_USER,
} from './token-logins.js';

/** Issue #10 goals. */
const SESSION_GOAL_KIB = 256;
/** A streaming relay's 2 GB peak stays within 1.5x its 200 MB peak, plus this much slack. */
const COPY_FLAT_FACTOR = 1.5;
const COPY_FLAT_SLACK_KIB = 16 * 1024;

interface Bench {
  options: BenchOptions;
  root: string;
  certificates: CertificateFiles;
  credentials: Credentials;
  postgres: RunningPostgres;
  direct: Target;
  pgbouncer: { binary: string; runAs: RunAs | undefined };
  teardown: Teardown;
  /** pgbench -i has run (the pgbench and policy phases both need its tables). */
  pgbenchLoaded: boolean;
  /** Problems found on the way (failed runs, crashes); any makes the exit code 1. */
  problems: string[];
  verdicts: string[];
}

const out = (text: string) => process.stdout.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`  ${text}\n`);

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = readOptions(process.env);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    return 2;
  }
  const teardown = new Teardown(killRunningCommands);
  teardown.onSignals();
  const postgresLog: string[] = [];
  try {
    const root = await mkdtemp(join(tmpdir(), 'pgward-bench-'));
    teardown.add('remove temp folder', () => rm(root, { recursive: true, force: true }));
    // PostgreSQL and pgbouncer run as another user when we are root: they must enter it.
    await chmod(root, 0o711);
    const certificates = await ensureDevCertificates(join(root, 'certs'));
    const credentials: Credentials = {
      user: 'bench',
      password: randomBytes(12).toString('hex'),
      database: 'bench',
      ca: await readFile(certificates.caFile, 'utf8'),
    };

    progress('starting PostgreSQL 18');
    const postgres = await startBenchPostgres(root, certificates, credentials, (line) => {
      postgresLog.push(line);
      if (postgresLog.length > 200) postgresLog.shift();
    });
    teardown.add('stop PostgreSQL', () => postgres.stop());
    const direct: Target = { name: 'direct', host: postgres.host, port: postgres.port };
    const binary = await pgbouncerBinary(progress);
    const bench: Bench = {
      options,
      root,
      certificates,
      credentials,
      postgres,
      direct,
      pgbouncer: { binary, runAs: await serviceUser() },
      teardown,
      pgbenchLoaded: false,
      problems: [],
      verdicts: [],
    };
    await printHeader(bench);
    await mkdir(join(root, 'pgward'), { recursive: true });

    const phases = {
      pgbench: pgbenchPhase,
      sessions: sessionsPhase,
      copy: copyPhase,
      policy: policyPhase,
      tokens: tokensPhase,
    } as const;
    for (const [name, phase] of Object.entries(phases)) {
      if (!options.phases.has(name as keyof typeof phases)) continue;
      if (teardown.started) break;
      // One phase breaking (a proxy died) still leaves the others worth running.
      try {
        await phase(bench);
      } catch (error) {
        if (teardown.started) break;
        const message = (error as Error).message;
        out(`\nThe ${name} phase failed: ${message.split('\n')[0]}`);
        bench.problems.push(`${name} phase failed: ${message}`);
      }
    }

    out(heading('summary'));
    for (const line of bench.verdicts) out(line);
    if (bench.problems.length > 0) {
      out(`\n${bench.problems.length} problem(s) — the measurements above may be incomplete:`);
      for (const problem of bench.problems) out(`- ${problem.replace(/\n/g, '\n  ')}`);
      return 1;
    }
    return 0;
  } catch (error) {
    process.stderr.write(`\nbenchmark failed: ${(error as Error).message}\n`);
    if (postgresLog.length > 0) process.stderr.write(`PostgreSQL log (last lines):\n${postgresLog.slice(-15).join('\n')}\n`);
    return 1;
  } finally {
    progress('tearing down');
    await teardown.run();
  }
}

async function printHeader(bench: Bench): Promise<void> {
  const { options } = bench;
  const pgbench = await runChecked('pgbench', ['--version']);
  out('pgward benchmark — direct vs pgbouncer vs pgward, side by side (issue #10); policies (#12) and token logins (#11)');
  const facts: Array<[string, string]> = [
    ['pgward', await sourceRevision()],
    ['machine', `${cpus().length} CPU(s), ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}`],
    ['server', `PostgreSQL ${bench.postgres.major} (embedded binaries), max_connections=700, fsync off`],
    ['tools', `${pgbench.stdout.trim()}; ${await pgbouncerVersion(bench.pgbouncer.binary)}`],
    [
      'mode',
      `${options.quick ? 'quick' : 'full'}: pgbench -T ${options.seconds} x ${options.rounds} round(s), scale ${options.scale}; ` +
        `${options.sessions} sessions; COPY ${bytes(options.copyBytes.small)} and ${bytes(options.copyBytes.large)}; ` +
        `policy and tokens phases ${options.phaseRounds} round(s)`,
    ],
    ['phases', `${[...options.phases].join(', ')}${options.goalCellOnly ? ' (pgbench: the goal cell only)' : ''}`],
    ['load', `${loadavg().map((l) => l.toFixed(2)).join(' ')} (1/5/15 min) before starting: other work on the machine skews the ratios`],
  ];
  for (const [name, value] of facts) out(`  ${`${name}:`.padEnd(9)} ${value}`);
}

/** Which pgward was measured: the commit, and whether the working tree differs from it. */
async function sourceRevision(): Promise<string> {
  const head = await runCommand('git', ['rev-parse', '--short', 'HEAD']).catch(() => undefined);
  if (!head || head.code !== 0) return 'dist/cli.js (no git revision found)';
  const status = await runCommand('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src']);
  const dirty = status.code === 0 && status.stdout.trim() !== '';
  return `dist/cli.js built from ${head.stdout.trim()}${dirty ? ' with uncommitted changes in src/' : ''}`;
}

// ---------------------------------------------------------------------------
// Starting the proxies (each registered for teardown while it runs)

async function launchPgward(bench: Bench, variant: PgwardVariant = {}): Promise<RunningPgward> {
  const ward = await startPgward(join(bench.root, 'pgward'), bench.direct, bench.certificates, variant);
  const release = bench.teardown.add(`stop ${ward.target.name}`, () => ward.stop());
  return {
    ...ward,
    stop: async () => {
      await ward.stop();
      release();
    },
  };
}

async function launchPgbouncer(bench: Bench): Promise<RunningPgbouncer> {
  const bouncer = await startPgbouncer({
    binary: bench.pgbouncer.binary,
    dir: join(bench.root, 'pgbouncer'),
    upstream: bench.direct,
    certificates: bench.certificates,
    credentials: bench.credentials,
    runAs: bench.pgbouncer.runAs,
  });
  const release = bench.teardown.add('stop pgbouncer', () => bouncer.stop());
  return {
    ...bouncer,
    stop: async () => {
      await bouncer.stop();
      release();
    },
  };
}

/** A proxy that died has a bug worth reading about; stop measuring and show its last words. */
function assertAlive(name: string, service: { running: boolean; ended: string; tail(n: number): string[] }): void {
  if (!service.running) {
    throw new Error(`${name} exited unexpectedly (${service.ended}); its last output:\n${service.tail(30).join('\n')}`);
  }
}

function reportPgwardProblems(bench: Bench, ward: RunningPgward, during: string): void {
  if (ward.problems.length === 0) return;
  bench.problems.push(
    `pgward logged ${ward.problems.length} warning/error line(s) during ${during}; the first ones:\n${ward.problems.slice(0, 10).join('\n')}`,
  );
}

// ---------------------------------------------------------------------------
// Phases

async function ensurePgbenchTables(bench: Bench): Promise<void> {
  if (bench.pgbenchLoaded) return;
  progress(`loading pgbench tables (scale ${bench.options.scale})`);
  await loadPgbenchTables(bench.direct, bench.credentials, bench.options.scale);
  bench.pgbenchLoaded = true;
}

async function pgbenchPhase(bench: Bench): Promise<void> {
  const { options } = bench;
  await ensurePgbenchTables(bench);
  const bouncer = await launchPgbouncer(bench);
  const ward = await launchPgward(bench);
  try {
    const results = await runMatrix({
      targets: [bench.direct, bouncer.target, ward.target],
      credentials: bench.credentials,
      seconds: options.seconds,
      rounds: options.rounds,
      goalCellOnly: options.goalCellOnly,
      progress,
      check: () => {
        if (bench.teardown.started) throw new Error('interrupted');
        assertAlive('pgward', ward.service);
        assertAlive('pgbouncer', bouncer.service);
      },
    });
    out(heading('pgbench: select-only (-S) and TPC-B-like, simple and prepared, 1 and 16 clients'));
    out(renderMatrix(results.cells, options.rounds));
    for (const result of results.cells) bench.problems.push(...result.errors);
    if (results.aborted) {
      out(`The matrix stopped early: ${results.aborted.split('\n')[0]}`);
      bench.problems.push(`pgbench matrix stopped early: ${results.aborted}`);
    }
    const ratio = goalRatio(results.cells);
    bench.verdicts.push(
      `pgbench select-only prepared c=16, pgward/pgbouncer TPS: ${ratio === undefined ? 'no result' : fixed(ratio, 3)} ` +
        `(goal >= ${GOAL_RATIO.toFixed(2)}) ${ratio === undefined ? 'FAIL' : verdict(ratio >= GOAL_RATIO)}`,
    );
    reportPgwardProblems(bench, ward, 'the pgbench matrix');
  } finally {
    await ward.stop();
    await bouncer.stop();
  }
}

async function sessionsPhase(bench: Bench): Promise<void> {
  const count = bench.options.sessions;
  progress(`memory per session: ${count} sessions through a fresh pgward`);
  const ward = await launchPgward(bench);
  let wardMemory: SessionMemory;
  try {
    wardMemory = await measureSessionMemory(ward.target, ward.service.pid, bench.credentials, count);
    assertAlive('pgward', ward.service);
    reportPgwardProblems(bench, ward, 'the session memory probe');
  } finally {
    await ward.stop();
  }
  progress(`memory per session: ${count} sessions through a fresh pgbouncer`);
  const bouncer = await launchPgbouncer(bench);
  let bouncerMemory: SessionMemory;
  try {
    bouncerMemory = await measureSessionMemory(bouncer.target, bouncer.service.pid, bench.credentials, count);
  } finally {
    await bouncer.stop();
  }

  out(heading(`memory per session: RSS with ${count} idle TLS sessions open (each logged in, ran select 1)`));
  const row = (name: string, m: SessionMemory, note: string) => [
    name,
    mib(m.beforeKiB),
    mib(m.withSessionsKiB),
    mib(m.afterCloseKiB),
    `${fixed(m.perSessionKiB, 1)} KiB`,
    note,
  ];
  const pass = wardMemory.perSessionKiB <= SESSION_GOAL_KIB;
  out(
    table(
      ['proxy', 'before', `with ${count}`, 'after close', 'per session', ''],
      [
        row('pgward', wardMemory, `goal <= ${SESSION_GOAL_KIB} KiB: ${verdict(pass)}`),
        row('pgbouncer', bouncerMemory, 'reference'),
      ],
    ),
  );
  out(`pgward/pgbouncer per session: ${fixed(wardMemory.perSessionKiB / bouncerMemory.perSessionKiB, 1)}x`);
  bench.verdicts.push(
    `memory per session through pgward: ${fixed(wardMemory.perSessionKiB, 1)} KiB (goal <= ${SESSION_GOAL_KIB} KiB) ${verdict(pass)}`,
  );
}

async function copyPhase(bench: Bench): Promise<void> {
  const { small, large } = bench.options.copyBytes;
  await directQuery(bench, `CREATE UNLOGGED TABLE ${COPY_TABLE} (line text)`);
  const results: CopyMemory[] = [];
  for (const direction of COPY_DIRECTIONS) {
    for (const size of [small, large]) {
      progress(`COPY ${direction === 'out' ? 'TO STDOUT' : 'FROM STDIN'} of ${bytes(size)} through a fresh pgward`);
      const ward = await launchPgward(bench);
      try {
        results.push(await measureCopy(ward.target, ward.service.pid, bench.credentials, direction, size));
        assertAlive('pgward', ward.service);
        reportPgwardProblems(bench, ward, `COPY ${direction} of ${bytes(size)}`);
      } finally {
        await ward.stop();
        if (direction === 'in') await directQuery(bench, `TRUNCATE ${COPY_TABLE}`);
      }
    }
  }

  out(heading('COPY through pgward: peak RSS over a fresh baseline, sampled every 100 ms'));
  out(
    table(
      ['direction', 'size', 'seconds', 'MB/s', 'baseline', 'peak', 'peak - baseline'],
      results.map((r) => [
        r.direction === 'out' ? 'TO STDOUT' : 'FROM STDIN',
        bytes(r.bytes),
        fixed(r.elapsedMs / 1000, 1),
        fixed(r.bytes / 1e6 / (r.elapsedMs / 1000), 0),
        mib(r.baselineKiB),
        mib(r.peakKiB),
        mib(r.peakKiB - r.baselineKiB),
      ]),
    ),
  );
  for (const direction of COPY_DIRECTIONS) {
    const [first, second] = results.filter((r) => r.direction === direction);
    if (!first || !second) continue;
    const smallPeak = first.peakKiB - first.baselineKiB;
    const largePeak = second.peakKiB - second.baselineKiB;
    const limit = COPY_FLAT_FACTOR * Math.max(smallPeak, 0) + COPY_FLAT_SLACK_KIB;
    const line =
      `COPY ${direction === 'out' ? 'TO STDOUT' : 'FROM STDIN'} memory flat: ${bytes(second.bytes)} peak ${mib(largePeak)} ` +
      `vs ${bytes(first.bytes)} peak ${mib(smallPeak)} (limit ${COPY_FLAT_FACTOR}x + ${mib(COPY_FLAT_SLACK_KIB)} = ${mib(limit)}) ` +
      verdict(largePeak <= limit);
    out(line);
    bench.verdicts.push(line);
  }
}

/**
 * Issue #12: pgbench select-only as a restricted identity, through a pgward
 * without policies and one with them, taking turns; the ratio is what the
 * rewrite (planned once, then served from the plan cache) costs.
 */
async function policyPhase(bench: Bench): Promise<void> {
  const { options } = bench;
  await ensurePgbenchTables(bench);
  progress('policies: creating the restricted role, writing and linting the policy folder');
  const reader = await createReaderRole(bench.direct, bench.credentials);
  const dir = join(bench.root, 'policies');
  await writePolicyFolder(dir);
  const lint = await lintPolicyFolder(dir, bench.direct, bench.credentials);
  // pgbench -n skips its own VACUUM (the restricted role may not run it); do it once here.
  await directQuery(bench, 'VACUUM ANALYZE pgbench_accounts, pgbench_branches, pgbench_tellers');

  const plain = await launchPgward(bench, { name: 'pgward' });
  const guarded = await launchPgward(bench, { name: 'pgward+policies', policiesDir: dir, admin: true });
  try {
    if (!guarded.adminUrl) throw new Error('pgward with policies did not report its admin address');
    const evidence = await observeRewrite(guarded.target, reader, bench.direct, bench.credentials);
    const untouched = evidence.statements.filter((s) => s.arrived.trim() === s.sent.trim());

    const cells: Array<{ result: CellResult; hits: number; misses: number; entries: number }> = [];
    let aborted: string | undefined;
    // BENCH_CELLS=goal: the goal cell (prepared) alone, for more rounds in the same time.
    for (const cell of options.goalCellOnly ? POLICY_CELLS.slice(0, 1) : POLICY_CELLS) {
      const before = await readMetrics(guarded.adminUrl);
      const run = await runMatrix({
        targets: [plain.target, guarded.target],
        credentials: reader,
        seconds: options.seconds,
        rounds: options.phaseRounds,
        goalCellOnly: false,
        cells: [cell],
        pgbenchArgs: POLICY_PGBENCH_ARGS,
        progress: (line) => progress(`policies ${line}`),
        check: () => {
          if (bench.teardown.started) throw new Error('interrupted');
          assertAlive('pgward', plain.service);
          assertAlive('pgward with policies', guarded.service);
        },
      });
      const after = guarded.service.running ? await readMetrics(guarded.adminUrl) : before;
      const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
      for (const result of run.cells) {
        cells.push({
          result,
          hits: delta('pgward_plan_cache_hits_total'),
          misses: delta('pgward_plan_cache_misses_total'),
          entries: after.get('pgward_plan_cache_entries') ?? 0,
        });
        bench.problems.push(...result.errors);
      }
      if (run.aborted) {
        aborted = run.aborted;
        break;
      }
    }

    out(heading('policies: pgbench select-only c=16 as a restricted identity, pgward without vs with policies (issue #12)'));
    out(`Policy folder: ${POLICY_SUMMARY}.`);
    out(`pgward policy lint --url: ${lint}`);
    out('What the server ran for pgbench\'s statement sent through pgward+policies (pg_stat_activity):');
    for (const s of evidence.statements) {
      out(`  ${s.protocol.padEnd(8)} sent:    ${s.sent}`);
      out(`  ${''.padEnd(8)} arrived: ${s.arrived.replace(/\s+/g, ' ')}`);
    }
    out(`  filler of aid 1 through pgward+policies: ${JSON.stringify(evidence.filler.throughPolicies)}; directly: ${JSON.stringify(evidence.filler.direct)}`);
    out('How PostgreSQL plans them (EXPLAIN, costs off, run directly):');
    out(`  as sent:    ${evidence.plans.sent}`);
    out(`  as arrived: ${evidence.plans.arrived}`);
    out('');
    out(renderPolicyCells(cells, options.phaseRounds));
    out(
      'Plan cache counters are the deltas over all runs of a mode (admin /metrics). With -M prepared pgbench parses once per ' +
        'connection and then only binds and executes, so the cache is consulted once per client; with -M simple every ' +
        'statement is looked up; its literal aid makes every text new, but the shape stays the same, so after the first miss ' +
        'the hits are template fills (a parse of the statement, no rewrite). The server still parses and plans the ' +
        'longer rewritten text every time, which the prepared mode does once.',
    );
    if (untouched.length > 0) {
      bench.problems.push(
        `policy phase: the server received ${untouched.map((s) => s.protocol).join(' and ')} statement(s) unchanged, so the ratio does not measure a rewrite`,
      );
    }
    if (aborted) {
      out(`The policy comparison stopped early: ${aborted.split('\n')[0]}`);
      bench.problems.push(`policy comparison stopped early: ${aborted}`);
    }
    for (const { result } of cells) {
      const ratio = policyRatio(result);
      const goal = result.cell.mode === 'prepared';
      bench.verdicts.push(
        `policies ${cellName(result.cell)}, with/without policies TPS: ${ratio === undefined ? 'no result' : fixed(ratio, 3)} ` +
          (goal ? `(goal >= ${POLICY_GOAL_RATIO.toFixed(2)}) ${ratio === undefined ? 'FAIL' : verdict(ratio >= POLICY_GOAL_RATIO)}` : '(reported beside it, no goal)'),
      );
    }
    reportPgwardProblems(bench, plain, 'the policy phase (without policies)');
    reportPgwardProblems(bench, guarded, 'the policy phase (with policies)');
  } finally {
    await guarded.stop();
    await plain.stop();
  }
}

function policyRatio(result: CellResult): number | undefined {
  const plain = medians(result, 'pgward');
  const guarded = medians(result, 'pgward+policies');
  return plain && guarded ? guarded.tps / plain.tps : undefined;
}

function renderPolicyCells(
  cells: ReadonlyArray<{ result: CellResult; hits: number; misses: number; entries: number }>,
  rounds: number,
): string {
  const rows = cells.map(({ result, hits, misses, entries }) => {
    const plain = medians(result, 'pgward');
    const guarded = medians(result, 'pgward+policies');
    const ratio = policyRatio(result);
    const goal = result.cell.mode === 'prepared';
    let note = goal
      ? `<- goal >= ${POLICY_GOAL_RATIO.toFixed(2)}: ${ratio === undefined ? 'no result' : verdict(ratio >= POLICY_GOAL_RATIO)}`
      : 'reported, no goal';
    if (result.errors.length > 0) note += `; ${result.errors.length} failed run(s)`;
    return [
      (goal ? '* ' : '  ') + cellName(result.cell),
      fixed(plain?.tps ?? NaN, 0),
      fixed(plain?.latencyMs ?? NaN, 3),
      fixed(guarded?.tps ?? NaN, 0),
      fixed(guarded?.latencyMs ?? NaN, 3),
      ratio === undefined ? '-' : fixed(ratio, 3),
      String(hits),
      String(misses),
      String(entries),
      note,
    ];
  });
  return [
    `TPS and average latency (ms): median of ${rounds} run(s) per target, the two pgwards taking turns; pgbench -n as ${READER_ROLE}, over TLS.`,
    table(
      ['cell', 'pgward tps', 'ms', 'pgward+policies tps', 'ms', 'policies/none', 'cache hits', 'misses', 'entries', ''],
      rows,
    ),
    spreadNote(cells.map((c) => c.result)),
  ]
    .filter(Boolean)
    .join('\n');
}

/**
 * Issue #11: connections per second through pgward in oidc mode with a new
 * token per connection (cold) and one cached token (warm), beside passthrough
 * with a SCRAM password; all against the same PostgreSQL, taking turns.
 */
async function tokensPhase(bench: Bench): Promise<void> {
  const { options, credentials } = bench;
  const issuer = await CountingIssuer.start();
  const closeIssuer = bench.teardown.add('stop the token issuer', () => issuer.close());
  const oidc = await launchPgward(bench, {
    name: 'pgward oidc',
    auth: { mode: 'oidc', oidc: { issuers: [{ issuer: issuer.url, audience: BENCH_AUDIENCE }] } },
    // pgward's own upstream login: the bench superuser, by SCRAM.
    serviceLogin: { user: credentials.user, password: credentials.password },
  });
  const passthrough = await launchPgward(bench, { name: 'pgward passthrough' });
  try {
    progress('token logins: first login, warm-up and calibration');
    const results = await runTokenLogins({
      oidc: oidc.target,
      passthrough: passthrough.target,
      issuer,
      tokenLogin: { ...credentials, user: TOKEN_USER, password: '' },
      scramLogin: credentials,
      rounds: options.phaseRounds,
      seconds: options.seconds,
      progress,
      check: () => {
        if (bench.teardown.started) throw new Error('interrupted');
        assertAlive('pgward (oidc)', oidc.service);
        assertAlive('pgward (passthrough)', passthrough.service);
      },
    });

    progress('token logins: timing pgward\'s verifier in this process');
    const verifyCost = await measureVerifyCost(issuer);
    const cold = medianRate(results, 'cold');
    const warm = medianRate(results, 'warm');
    const scram = medianRate(results, 'scram');
    const warmFetches = fetchesDuring(results, 'warm');
    const noise = Math.max(...LOGIN_KINDS.map((kind) => spread(results, kind)));
    out(heading('token logins: connections per second, connect + TLS + login + select 1 + close (issue #11)'));
    out(
      `pgward in auth.mode oidc (issuer ${issuer.url}, RS256, served by the benchmark) logs in upstream as ${credentials.user} by SCRAM; ` +
        `the reference is a pgward in passthrough, where the client's SCRAM login goes to PostgreSQL.`,
    );
    out(
      `The first token login on the fresh pgward fetched the discovery document ${results.firstLogin.discovery}x and the JWKS ` +
        `${results.firstLogin.jwks}x; after that the keys stay cached (jwksCacheMaxAgeSeconds), for cold tokens too.`,
    );
    out(
      `Median of ${options.phaseRounds} batch(es) of ${results.perBatch} connections per kind, ${CONNECT_WORKERS} parallel clients, kinds taking turns; ` +
        `${results.minted} cold tokens were signed before timing started.`,
    );
    out(renderTokenLogins(results));
    out(
      `warm/cold ${fixed(warm / cold, 3)}, warm/passthrough SCRAM ${fixed(warm / scram, 3)}; largest spread between batches of one kind ` +
        `${fixed(noise * 100, 1)}%: a ratio closer to 1 than that is within noise.`,
    );
    out(
      `pgward's OidcVerifier timed in the bench process: a new token costs ${fixed(verifyCost.coldMs / verifyCost.warmMs, 0)}x a cached one ` +
        `(${fixed(verifyCost.coldMs, 3)} vs ${fixed(verifyCost.warmMs, 4)} ms); at the cold rate, verifying takes ` +
        `${fixed(verifyCost.coldMs * cold / 10, 1)}% of one core, the most warm could gain were pgward's one thread the bottleneck.`,
    );
    bench.verdicts.push(
      `token logins, issuer fetches while logging in with a cached token: ${warmFetches} over ` +
        `${results.perBatch * options.phaseRounds} connections (goal 0) ${verdict(warmFetches === 0)}`,
    );
    bench.verdicts.push(
      `token logins conn/s warm/cold: ${fixed(warm / cold, 3)} (reported; batch spread ${fixed(noise * 100, 1)}%), ` +
        `warm/passthrough SCRAM: ${fixed(warm / scram, 3)}`,
    );
    reportPgwardProblems(bench, oidc, 'the token logins (oidc)');
    reportPgwardProblems(bench, passthrough, 'the token logins (passthrough)');
  } finally {
    await passthrough.stop();
    await oidc.stop();
    await issuer.close();
    closeIssuer();
  }
}

async function directQuery(bench: Bench, sql: string): Promise<void> {
  await runChecked('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: libpqEnv(bench.direct, bench.credentials),
    timeoutMs: 300_000,
  });
}

process.exitCode = await main();
