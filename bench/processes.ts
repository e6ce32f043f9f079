/**
 * Child processes: short commands whose output we read when they finish
 * (pgbench, psql), and long-running services whose log we watch (pgbouncer, pgward).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** Sent SIGTERM, then SIGKILL, when it runs longer than this. */
  timeoutMs?: number;
}

export interface CommandResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const running = new Set<ChildProcess>();

/** Stops commands still running (teardown after a failure or Ctrl-C). */
export function killRunningCommands(): void {
  for (const child of running) child.kill('SIGKILL');
}

export function runCommand(command: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...spawnOptions(options), stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGTERM');
            killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          }, options.timeoutMs);
    child.once('error', (error) => {
      running.delete(child);
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      running.delete(child);
      clearTimeout(timer);
      clearTimeout(killer);
      resolve({
        command: [command, ...args].join(' '),
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        timedOut,
      });
    });
  });
}

/** Throws with the command's output unless it exited 0. */
export async function runChecked(command: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0) throw new Error(describeFailure(result));
  return result;
}

export function describeFailure(result: CommandResult): string {
  const how = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
  const output = [result.stderr.trim(), result.stdout.trim()].filter(Boolean).join('\n');
  return `${result.command} failed (${how})${output ? `:\n${indent(lastLines(output, 30))}` : ''}`;
}

/** A long-running child; stdout and stderr lines are kept (the recent ones) and can be awaited. */
export class Service {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  private done = false;
  private ending = '';
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: RunOptions = {},
  ) {
    this.child = spawn(command, args, { ...spawnOptions(options), stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        this.lines.push(line);
        if (this.lines.length > 500) this.lines.shift();
        for (const listener of this.listeners) listener(line);
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.lines.push(`cannot start ${command}: ${error.message}`);
        if (this.child.pid === undefined) {
          this.done = true;
          resolve(-1);
        }
      });
      // 'close', not 'exit': by then the output is drained.
      this.child.once('close', (code, signal) => {
        this.done = true;
        this.ending = signal ? `killed by ${signal}` : `exit code ${code}`;
        resolve(code ?? (signal ? -1 : null));
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start:\n${this.tail(10).join('\n')}`);
    return this.child.pid;
  }

  get running(): boolean {
    return !this.done;
  }

  /** How it ended ("exit code 1", "killed by SIGKILL"), or '' while it runs. */
  get ended(): string {
    return this.ending;
  }

  tail(count: number): string[] {
    return this.lines.slice(-count);
  }

  onLine(listener: (line: string) => void): void {
    this.listeners.add(listener);
  }

  /** Resolves with the first value `match` returns for a line (earlier lines included). */
  waitFor<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    for (const line of this.lines) {
      const found = match(line);
      if (found !== undefined) return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        outcome();
      };
      const listener = (line: string) => {
        const found = match(line);
        if (found !== undefined) finish(() => resolve(found));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${this.name}: not ready after ${timeoutMs} ms:\n${this.tail(20).join('\n')}`))),
        timeoutMs,
      );
      this.listeners.add(listener);
      void this.exited.then((code) =>
        finish(() => reject(new Error(`${this.name} exited (${code}) during startup:\n${this.tail(20).join('\n')}`))),
      );
    });
  }

  /** Sends `signal`, and SIGKILL if it is still there after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
    if (this.done) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

function spawnOptions(options: RunOptions): SpawnOptions {
  return {
    env: options.env ?? process.env,
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  };
}

export function lastLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join('\n');
}

export function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}
