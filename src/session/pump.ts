import type { Duplex } from 'node:stream';
import { FrameScanner, type FrameScannerOptions } from '../protocol/frame-scanner.js';

export type PumpOptions = Omit<FrameScannerOptions, 'forward'>;

/**
 * Moves frames from one socket to the other in one direction. What one read
 * delivered leaves with one write (one TLS record), and reading pauses while
 * the far side is not draining, so memory stays bounded however large a COPY
 * or result is.
 */
export class Pump {
  readonly scanner: FrameScanner;
  private waitingForDrain = false;
  /** The first piece of the current chunk, held back in case more follow. */
  private held: Buffer | undefined;
  private corked = false;

  constructor(
    private readonly source: Duplex,
    private readonly sink: Duplex,
    options: PumpOptions,
  ) {
    this.scanner = new FrameScanner({ ...options, forward: this.forward });
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

  // Most chunks leave as one piece: write it directly. Only when a stage split
  // or replaced frames are the pieces corked into one write.
  private readonly forward = (bytes: Buffer): void => {
    if (this.corked) {
      this.sink.write(bytes);
    } else if (this.held === undefined) {
      this.held = bytes;
    } else {
      this.sink.cork();
      this.corked = true;
      this.sink.write(this.held);
      this.held = undefined;
      this.sink.write(bytes);
    }
  };

  private readonly onData = (chunk: Buffer): void => {
    const sink = this.sink;
    if (sink.destroyed) return;
    this.scanner.push(chunk);
    if (this.corked) {
      this.corked = false;
      sink.uncork();
    } else if (this.held !== undefined) {
      sink.write(this.held);
      this.held = undefined;
    }
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
