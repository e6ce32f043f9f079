/**
 * pgward benchmark (issue #10): direct vs pgbouncer vs pgward, measured side by
 * side in one run and reported as ratios. It prints a report and never asserts
 * absolute times; the exit code is non-zero only when something broke.
 * Run it through bench/run.sh, which builds first.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDevCertificates, type CertificateFiles } from '../src/client/dev-certificates.js';
import type { RunningPostgres } from '../src/upstream/postgres-server.js';
import { COPY_DIRECTIONS, COPY_TABLE, measureCopy, type CopyMemory } from './copy-memory.js';
import { readOptions, type BenchOptions } from './options.js';
import { goalRatio, GOAL_RATIO, renderMatrix, runMatrix } from './pgbench-matrix.js';
import {
  pgbouncerBinary,
  pgbouncerVersion,
  serviceUser,
  startPgbouncer,
  type RunAs,
  type RunningPgbouncer,
} from './pgbouncer-target.js';
import { startPgward, type RunningPgward } from './pgward-target.js';
import { loadPgbenchTables, startBenchPostgres } from './postgres-target.js';
import { killRunningCommands, runChecked, runCommand } from './processes.js';
import { bytes, fixed, heading, mib, table, verdict } from './report.js';
import { measureSessionMemory, type SessionMemory } from './session-memory.js';
import { libpqEnv, type Credentials, type Target } from './target.js';
import { Teardown } from './teardown.js';

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
      problems: [],
      verdicts: [],
    };
    await printHeader(bench);
    await mkdir(join(root, 'pgward'), { recursive: true });

    const phases = { pgbench: pgbenchPhase, sessions: sessionsPhase, copy: copyPhase } as const;
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
  out('pgward benchmark — direct vs pgbouncer vs pgward, side by side (issue #10)');
  const facts: Array<[string, string]> = [
    ['pgward', await sourceRevision()],
    ['machine', `${cpus().length} CPU(s), ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}`],
    ['server', `PostgreSQL ${bench.postgres.major} (embedded binaries), max_connections=700, fsync off`],
    ['tools', `${pgbench.stdout.trim()}; ${await pgbouncerVersion(bench.pgbouncer.binary)}`],
    [
      'mode',
      `${options.quick ? 'quick' : 'full'}: pgbench -T ${options.seconds} x ${options.rounds} round(s), scale ${options.scale}; ` +
        `${options.sessions} sessions; COPY ${bytes(options.copyBytes.small)} and ${bytes(options.copyBytes.large)}`,
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

async function launchPgward(bench: Bench): Promise<RunningPgward> {
  const ward = await startPgward(join(bench.root, 'pgward'), bench.direct, bench.certificates);
  const release = bench.teardown.add('stop pgward', () => ward.stop());
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

async function pgbenchPhase(bench: Bench): Promise<void> {
  const { options } = bench;
  progress(`loading pgbench tables (scale ${options.scale})`);
  await loadPgbenchTables(bench.direct, bench.credentials, options.scale);
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

async function directQuery(bench: Bench, sql: string): Promise<void> {
  await runChecked('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: libpqEnv(bench.direct, bench.credentials),
    timeoutMs: 300_000,
  });
}

process.exitCode = await main();
