/**
 * The pgbench matrix, run in alternation: for each cell, every target runs once
 * per round, so noise on the machine lands on all three alike. The start of the
 * rotation moves each round, so no target always runs right after another.
 */
import {
  CLIENT_COUNTS,
  QUERY_MODES,
  WORKLOADS,
  cellName,
  runPgbench,
  type Cell,
  type PgbenchSummary,
} from './pgbench-run.js';
import { fixed, median, table, verdict } from './report.js';
import type { Credentials, Target } from './target.js';

/** Issue #10: pgward keeps at least 80% of pgbouncer's TPS here. */
export const GOAL_CELL: Cell = { workload: 'select-only', mode: 'prepared', clients: 16 };
export const GOAL_RATIO = 0.8;

export interface CellResult {
  cell: Cell;
  runs: Map<string, PgbenchSummary[]>;
  errors: string[];
}

export function matrixCells(): Cell[] {
  return WORKLOADS.flatMap((workload) =>
    QUERY_MODES.flatMap((mode) => CLIENT_COUNTS.map((clients) => ({ workload, mode, clients }))),
  );
}

export interface MatrixOptions {
  targets: readonly Target[];
  credentials: Credentials;
  seconds: number;
  rounds: number;
  goalCellOnly: boolean;
  /** Run these cells instead of the matrix (goalCellOnly is then ignored). */
  cells?: readonly Cell[];
  /** Added to every pgbench command line, e.g. `-n`. */
  pgbenchArgs?: readonly string[];
  progress: (line: string) => void;
  /** Called after every run; throws to abort (a proxy died). */
  check: () => void;
}

export interface MatrixResult {
  cells: CellResult[];
  /** Why the matrix stopped before the end (a proxy died), if it did. */
  aborted?: string;
}

export async function runMatrix(options: MatrixOptions): Promise<MatrixResult> {
  const { targets, rounds } = options;
  const cells = options.cells ?? (options.goalCellOnly ? [GOAL_CELL] : matrixCells());
  const total = cells.length * rounds * targets.length;
  let done = 0;
  const results: CellResult[] = [];
  for (const cell of cells) {
    const result: CellResult = { cell, runs: new Map(targets.map((t) => [t.name, []])), errors: [] };
    results.push(result);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(round + i) % targets.length]!;
        const label = `[${++done}/${total}] ${cellName(cell)} round ${round + 1} ${target.name}`;
        try {
          const summary = await runPgbench(target, options.credentials, cell, options.seconds, options.pgbenchArgs);
          result.runs.get(target.name)!.push(summary);
          options.progress(`${label}: ${fixed(summary.tps, 0)} tps, ${fixed(summary.latencyMs, 3)} ms`);
        } catch (error) {
          result.errors.push((error as Error).message);
          options.progress(`${label}: ERROR (details in the summary)`);
        }
        try {
          options.check();
        } catch (error) {
          options.progress(`${label}: stopping the matrix`);
          return { cells: results, aborted: (error as Error).message };
        }
      }
    }
  }
  return { cells: results };
}

export interface CellMedians {
  tps: number;
  latencyMs: number;
}

export function medians(result: CellResult, name: string): CellMedians | undefined {
  const runs = result.runs.get(name) ?? [];
  if (runs.length === 0) return undefined;
  return { tps: median(runs.map((r) => r.tps)), latencyMs: median(runs.map((r) => r.latencyMs)) };
}

export function goalRatio(results: readonly CellResult[]): number | undefined {
  const goal = results.find(
    (r) => r.cell.workload === GOAL_CELL.workload && r.cell.mode === GOAL_CELL.mode && r.cell.clients === GOAL_CELL.clients,
  );
  if (!goal) return undefined;
  const ward = medians(goal, 'pgward');
  const bouncer = medians(goal, 'pgbouncer');
  return ward && bouncer ? ward.tps / bouncer.tps : undefined;
}

export function renderMatrix(results: readonly CellResult[], rounds: number): string {
  const headers = ['cell', 'direct tps', 'ms', 'pgbouncer tps', 'ms', 'pgward tps', 'ms', 'pgward/direct', 'pgward/pgbouncer', ''];
  const rows = results.map((result) => {
    const direct = medians(result, 'direct');
    const bouncer = medians(result, 'pgbouncer');
    const ward = medians(result, 'pgward');
    const ratio = (a: CellMedians | undefined, b: CellMedians | undefined) => (a && b ? fixed(a.tps / b.tps, 2) : '-');
    const isGoal =
      result.cell.workload === GOAL_CELL.workload && result.cell.mode === GOAL_CELL.mode && result.cell.clients === GOAL_CELL.clients;
    let note = result.errors.length > 0 ? `${result.errors.length} failed run(s)` : '';
    if (isGoal) {
      const value = ward && bouncer ? ward.tps / bouncer.tps : undefined;
      const shown = value === undefined ? 'no result' : `${fixed(value, 3)} ${verdict(value >= GOAL_RATIO)}`;
      note = `<- goal >= ${GOAL_RATIO.toFixed(2)}: ${shown}${note ? `; ${note}` : ''}`;
    }
    return [
      (isGoal ? '* ' : '  ') + cellName(result.cell),
      fixed(direct?.tps ?? NaN, 0),
      fixed(direct?.latencyMs ?? NaN, 3),
      fixed(bouncer?.tps ?? NaN, 0),
      fixed(bouncer?.latencyMs ?? NaN, 3),
      fixed(ward?.tps ?? NaN, 0),
      fixed(ward?.latencyMs ?? NaN, 3),
      ratio(ward, direct),
      ratio(ward, bouncer),
      note,
    ];
  });
  const spread = spreadNote(results);
  return [
    `TPS and average latency (ms): median of ${rounds} run(s) per target; all three over TLS from the client.`,
    table(headers, rows),
    spread,
  ]
    .filter(Boolean)
    .join('\n');
}

/** How far apart the rounds of one target were: a ratio closer than this to the goal is within noise. */
export function spreadNote(results: readonly CellResult[]): string {
  let worst = 0;
  let where = '';
  for (const result of results) {
    for (const [name, runs] of result.runs) {
      if (runs.length < 2) continue;
      const tps = runs.map((r) => r.tps);
      const spread = (Math.max(...tps) - Math.min(...tps)) / median(tps);
      if (spread > worst) {
        worst = spread;
        where = `${name}, ${cellName(result.cell)}`;
      }
    }
  }
  return worst > 0 ? `Largest spread between rounds of one target: ${fixed(worst * 100, 1)}% (${where}).` : '';
}
