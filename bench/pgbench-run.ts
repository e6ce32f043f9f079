/**
 * One pgbench run against one target, and reading its summary.
 */
import { describeFailure, runCommand } from './processes.js';
import { libpqEnv, type Credentials, type Target } from './target.js';

export const WORKLOADS = ['select-only', 'tpcb-like'] as const;
export type Workload = (typeof WORKLOADS)[number];
export const QUERY_MODES = ['simple', 'prepared'] as const;
export type QueryMode = (typeof QUERY_MODES)[number];
export const CLIENT_COUNTS = [1, 16] as const;

export interface Cell {
  workload: Workload;
  mode: QueryMode;
  clients: number;
}

export interface PgbenchSummary {
  /** "tps = N (without initial connection time)" */
  tps: number;
  /** "latency average = N ms" */
  latencyMs: number;
  /** "number of failed transactions: N" (pgbench 15 and later). */
  failed: number;
}

export function cellName(cell: Cell): string {
  return `${cell.workload} ${cell.mode} c=${cell.clients}`;
}

export function pgbenchArgs(cell: Cell, seconds: number, extra: readonly string[] = []): string[] {
  const args = ['-M', cell.mode, '-c', String(cell.clients), '-j', String(cell.clients > 1 ? 2 : 1), '-T', String(seconds), ...extra];
  if (cell.workload === 'select-only') args.unshift('-S');
  return args;
}

export async function runPgbench(
  target: Target,
  credentials: Credentials,
  cell: Cell,
  seconds: number,
  extra: readonly string[] = [],
): Promise<PgbenchSummary> {
  const result = await runCommand('pgbench', pgbenchArgs(cell, seconds, extra), {
    env: libpqEnv(target, credentials),
    timeoutMs: seconds * 1000 + 120_000,
  });
  const summary = result.code === 0 ? parsePgbenchOutput(result.stdout) : undefined;
  if (!summary) {
    const why = result.code === 0 ? `printed no tps and latency summary:\n${result.stdout}` : describeFailure(result);
    throw new Error(`pgbench against ${target.name}, ${cellName(cell)}: ${why}`);
  }
  if (summary.failed > 0) {
    throw new Error(`pgbench against ${target.name}, ${cellName(cell)}: ${summary.failed} failed transactions:\n${result.stdout}${result.stderr}`);
  }
  return summary;
}

export function parsePgbenchOutput(text: string): PgbenchSummary | undefined {
  const tps = /^tps = ([\d.]+) \(without initial connection time\)/m.exec(text);
  const latency = /^latency average = ([\d.]+) ms/m.exec(text);
  if (!tps || !latency) return undefined;
  const failed = /^number of failed transactions: (\d+)/m.exec(text);
  return { tps: Number(tps[1]), latencyMs: Number(latency[1]), failed: failed ? Number(failed[1]) : 0 };
}
