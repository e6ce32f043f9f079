/**
 * Benchmark settings, read once from the environment (see bench/run.sh for the list).
 */

export const PHASES = ['pgbench', 'sessions', 'copy', 'policy', 'tokens'] as const;
export type Phase = (typeof PHASES)[number];

export interface BenchOptions {
  quick: boolean;
  /** Length of one pgbench run (-T). */
  seconds: number;
  /** How many times each target runs each matrix cell; the median is reported. */
  rounds: number;
  /** Rounds of the policy and tokens phases (two or three targets taking turns): a median of 3 unless BENCH_ROUNDS says otherwise. */
  phaseRounds: number;
  phases: ReadonlySet<Phase>;
  /** Only the goal cell of the pgbench matrix (select-only, prepared, 16 clients): for iterating on the hot path. */
  goalCellOnly: boolean;
  /** Concurrent sessions opened to measure memory per session. */
  sessions: number;
  /** The two COPY sizes, in bytes of row data; the large one is ten times the small one. */
  copyBytes: { small: number; large: number };
  /** pgbench -i -s: 10 is about 160 MB of data. */
  scale: number;
}

const FULL = { seconds: 8, rounds: 2, copySmall: 200e6 };
const QUICK = { seconds: 3, rounds: 2, copySmall: 20e6 };
const PHASE_ROUNDS = 3;

export function readOptions(env: NodeJS.ProcessEnv): BenchOptions {
  const quick = flag(env.BENCH_QUICK);
  const base = quick ? QUICK : FULL;
  const copySmall = base.copySmall;
  return {
    quick,
    seconds: positiveInteger(env, 'BENCH_SECONDS', base.seconds),
    rounds: positiveInteger(env, 'BENCH_ROUNDS', base.rounds),
    phaseRounds: positiveInteger(env, 'BENCH_ROUNDS', PHASE_ROUNDS),
    phases: phases(env.BENCH_PHASES),
    goalCellOnly: cells(env.BENCH_CELLS),
    sessions: positiveInteger(env, 'BENCH_SESSIONS', 500),
    copyBytes: { small: copySmall, large: copySmall * 10 },
    scale: positiveInteger(env, 'BENCH_SCALE', 10),
  };
}

function flag(text: string | undefined): boolean {
  return text !== undefined && /^(1|true|yes|on)$/i.test(text);
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}=${text}: expected a positive integer`);
  return value;
}

function cells(text: string | undefined): boolean {
  if (text === undefined || text === '' || text === 'all') return false;
  if (text === 'goal') return true;
  throw new Error(`BENCH_CELLS=${text}: expected all or goal`);
}

function phases(text: string | undefined): ReadonlySet<Phase> {
  if (text === undefined || text.trim() === '') return new Set(PHASES);
  const chosen = new Set<Phase>();
  for (const word of text.split(/[\s,]+/).filter(Boolean)) {
    if (!(PHASES as readonly string[]).includes(word)) {
      throw new Error(`BENCH_PHASES: unknown phase "${word}" (choose from ${PHASES.join(', ')})`);
    }
    chosen.add(word as Phase);
  }
  return chosen;
}
