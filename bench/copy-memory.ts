/**
 * COPY through pgward in both directions while sampling its RSS: a streaming
 * relay's peak does not grow with the size of the copy.
 */
import { readRssKiB, RssSampler, sleep } from './rss.js';
import { runCommand, describeFailure } from './processes.js';
import { libpqEnv, type Credentials, type Target } from './target.js';

export const COPY_DIRECTIONS = ['out', 'in'] as const;
export type CopyDirection = (typeof COPY_DIRECTIONS)[number];

/** Every row is this many x's plus a newline in COPY text format. */
const ROW_WIDTH = 1000;
export const COPY_TABLE = 'bench_copy';

export interface CopyMemory {
  direction: CopyDirection;
  bytes: number;
  rows: number;
  elapsedMs: number;
  baselineKiB: number;
  peakKiB: number;
  samples: number;
}

export function copyRows(bytes: number): number {
  return Math.max(1, Math.round(bytes / (ROW_WIDTH + 1)));
}

/** psql's \copy streams: out to /dev/null, in from a generator program. */
function copyCommand(direction: CopyDirection, rows: number): string {
  if (direction === 'out') {
    return `\\copy (SELECT repeat('x', ${ROW_WIDTH}) FROM generate_series(1, ${rows})) TO '/dev/null'`;
  }
  return `\\copy ${COPY_TABLE} FROM PROGRAM 'yes ${'x'.repeat(ROW_WIDTH)} | head -n ${rows}'`;
}

/** Runs one COPY through `target` (a freshly started pgward whose process is `pid`). */
export async function measureCopy(
  target: Target,
  pid: number,
  credentials: Credentials,
  direction: CopyDirection,
  bytes: number,
): Promise<CopyMemory> {
  const rows = copyRows(bytes);
  const env = libpqEnv(target, credentials);
  // A first session warms the same code paths the copy session will use.
  const warm = await runCommand('psql', ['-X', '-At', '-c', 'select 1'], { env, timeoutMs: 30_000 });
  if (warm.code !== 0) throw new Error(describeFailure(warm));
  await sleep(1_000);
  const baselineKiB = await readRssKiB(pid);

  const sampler = new RssSampler(pid, 100);
  sampler.start();
  const started = performance.now();
  const result = await runCommand('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', copyCommand(direction, rows)], {
    env,
    timeoutMs: 1_800_000,
  });
  const elapsedMs = performance.now() - started;
  const { peakKiB, samples } = await sampler.stop();
  if (result.code !== 0) throw new Error(`COPY ${direction} through ${target.name}: ${describeFailure(result)}`);
  const copied = /COPY (\d+)/.exec(result.stdout);
  if (!copied || Number(copied[1]) !== rows) {
    throw new Error(`COPY ${direction} through ${target.name}: expected COPY ${rows}, psql printed: ${result.stdout.trim()}`);
  }
  return { direction, bytes: rows * (ROW_WIDTH + 1), rows, elapsedMs, baselineKiB, peakKiB, samples };
}
