/**
 * Everything the benchmark starts or creates registers how to undo it here, so
 * a failure or Ctrl-C leaves no server running and no temp folder behind.
 */

type Undo = () => Promise<void> | void;

export class Teardown {
  private readonly steps = new Map<number, { name: string; undo: Undo }>();
  private next = 0;
  private running: Promise<void> | undefined;

  /** `first` runs before the steps: stopping clients before the servers they talk to. */
  constructor(private readonly first: () => void = () => {}) {}

  /** Registers an undo step; the returned function drops it once it is no longer needed. */
  add(name: string, undo: Undo): () => void {
    const id = this.next++;
    this.steps.set(id, { name, undo });
    return () => void this.steps.delete(id);
  }

  /** True once tearing down has begun: work still in flight should stop, not carry on. */
  get started(): boolean {
    return this.running !== undefined;
  }

  /** Undoes in reverse order of registration; a failing step does not stop the others. */
  run(): Promise<void> {
    this.running ??= (async () => {
      this.first();
      const steps = [...this.steps.entries()].sort(([a], [b]) => b - a);
      this.steps.clear();
      for (const [, step] of steps) {
        try {
          await step.undo();
        } catch (error) {
          process.stderr.write(`teardown: ${step.name}: ${(error as Error).message}\n`);
        }
      }
    })();
    return this.running;
  }

  /** On SIGINT/SIGTERM: tear down, then exit with 128 + signal number. */
  onSignals(): void {
    const handle = (signal: NodeJS.Signals, code: number) => {
      process.stderr.write(`\n${signal}: tearing down\n`);
      void this.run().finally(() => process.exit(code));
    };
    process.once('SIGINT', () => handle('SIGINT', 130));
    process.once('SIGTERM', () => handle('SIGTERM', 143));
  }
}
