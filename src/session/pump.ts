import type { Duplex } from 'node:stream';
import { FrameScanner, type FrameScannerOptions } from '../protocol/frame-scanner.js';

export type PumpOptions = Omit<FrameScannerOptions, 'forward'>;

/**
 * Moves frames from one socket to the other in one direction. What one read
 * delivered leaves with one corked write, and reading pauses while the far side
 * is not draining, so memory stays bounded however large a COPY or result is.
 */
export class Pump {
  readonly scanner: FrameScanner;
  private waitingForDrain = false;

  constructor(
    private readonly source: Duplex,
    private readonly sink: Duplex,
    options: PumpOptions,
  ) {
    this.scanner = new FrameScanner({ ...options, forward: (bytes) => this.sink.write(bytes) });
  }

  /** Starts relaying, first the bytes read during startup that were not consumed. */
  start(leftover: Buffer): void {
    if (leftover.length > 0) this.onData(leftover);
    this.source.on('data', this.onData);
    this.source.resume();
  }

  stop(): void {
    this.source.off('data', this.onData);
    this.scanner.stop();
  }

  private readonly onData = (chunk: Buffer): void => {
    const sink = this.sink;
    if (sink.destroyed) return;
    sink.cork();
    this.scanner.push(chunk);
    sink.uncork();
    if (sink.writableNeedDrain && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.source.pause();
      sink.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = (): void => {
    this.waitingForDrain = false;
    this.source.resume();
  };
}
