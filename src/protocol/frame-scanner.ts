import { Errors, type PgwardError } from '../errors.js';

/**
 * What a stage decides about a watched frame:
 * - `undefined`: forward it unchanged (it stays part of the raw byte run),
 * - `null`: drop it,
 * - a Buffer: send these bytes instead.
 */
export type FrameVerdict = Buffer | null | undefined;

export interface FrameScannerOptions {
  /** Largest frame accepted, counting its length word (PostgreSQL's own limit is 1 GiB). */
  maxMessageSize: number;
  /** Types accepted; a frame of any other type is a protocol violation. Undefined: any type. */
  validTypes?: Uint8Array;
  /**
   * Per type: 1 = handed whole to `onFrame`; 2 = only its type is told to `onType`, and it passes
   * as raw bytes like the rest, however large; 0 = passes without being looked at.
   */
  watch: Uint8Array;
  /** Sees each complete watched frame (type byte + length + body). */
  onFrame(type: number, frame: Buffer): FrameVerdict;
  /** Told the type of each frame watched with 2, in order with `onFrame`. */
  onType?(type: number): void;
  /** Receives the bytes to forward, in order: subarrays of the input chunks or replacements. */
  forward(bytes: Buffer): void;
  /** A malformed frame: nothing after it is forwarded and the scanner stops. */
  onInvalid(error: PgwardError): void;
}

const HEADER = 5; // type byte + int32 length

/**
 * Splits a stream of typed v3 messages into frames without copying.
 *
 * Unwatched frames are never assembled: the scanner only tracks how many body
 * bytes remain, so a chunk holding nothing of interest is forwarded as the very
 * same Buffer. Only watched frames that straddle chunks are copied together.
 * Synchronous by design: no promise or closure per frame on the relay path.
 */
export class FrameScanner {
  watch: Uint8Array;
  private readonly options: FrameScannerOptions;
  /** Body bytes of the current unwatched frame still to pass through. */
  private passRemaining = 0;
  /** Header bytes of a frame split across chunks. */
  private readonly header = Buffer.alloc(HEADER);
  private headerHave = 0;
  /** Pieces of a watched frame split across chunks, and how many bytes are still missing. */
  private pieces: Buffer[] = [];
  private pieceMissing = 0;
  private assembling = false;
  private failed = false;

  constructor(options: FrameScannerOptions) {
    this.options = options;
    this.watch = options.watch;
  }

  /** True between frames: a message pgward writes itself can be inserted here. */
  get atBoundary(): boolean {
    return this.passRemaining === 0 && this.headerHave === 0 && !this.assembling;
  }

  get stopped(): boolean {
    return this.failed;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    const end = chunk.length;
    let pos = 0;
    let runStart = 0;

    while (pos < end) {
      if (this.passRemaining > 0) {
        const take = Math.min(this.passRemaining, end - pos);
        this.passRemaining -= take;
        pos += take;
        continue;
      }
      if (this.assembling) {
        const take = Math.min(this.pieceMissing, end - pos);
        this.pieces.push(chunk.subarray(pos, pos + take));
        this.pieceMissing -= take;
        pos += take;
        runStart = pos;
        if (this.pieceMissing === 0) {
          this.assembling = false;
          const frame = Buffer.concat(this.pieces);
          this.pieces = [];
          const verdict = this.options.onFrame(frame[0]!, frame);
          this.emitVerdict(verdict, frame);
          if (this.failed) return;
        }
        continue;
      }

      // At a frame boundary: read the 5-byte header, possibly across chunks.
      let type: number;
      let length: number;
      const frameStart = pos;
      if (this.headerHave > 0 || end - pos < HEADER) {
        const take = Math.min(HEADER - this.headerHave, end - pos);
        chunk.copy(this.header, this.headerHave, pos, pos + take);
        if (this.headerHave === 0) this.flushRun(chunk, runStart, pos);
        this.headerHave += take;
        pos += take;
        runStart = pos;
        if (this.headerHave < HEADER) continue;
        this.headerHave = 0;
        type = this.header[0]!;
        length = this.header.readInt32BE(1);
        if (!this.validate(type, length)) return;
        const bodyLeft = length - 4;
        if (this.watch[type] === 1) {
          this.beginAssembly(Buffer.from(this.header), bodyLeft);
          if (!this.assembling) {
            const frame = this.pieces[0]!;
            this.pieces = [];
            this.emitVerdict(this.options.onFrame(type, frame), frame);
            if (this.failed) return;
          }
        } else {
          if (this.watch[type] === 2) this.options.onType?.(type);
          this.options.forward(Buffer.from(this.header));
          this.passRemaining = bodyLeft;
        }
        continue;
      }

      type = chunk[pos]!;
      length = chunk.readInt32BE(pos + 1);
      if (!this.validate(type, length)) {
        this.flushRun(chunk, runStart, frameStart);
        return;
      }
      const frameEnd = frameStart + 1 + length;
      if (this.watch[type] !== 1) {
        if (this.watch[type] === 2) this.options.onType?.(type);
        if (frameEnd <= end) {
          pos = frameEnd;
        } else {
          this.passRemaining = frameEnd - end;
          pos = end;
        }
        continue;
      }
      if (frameEnd <= end) {
        const frame = chunk.subarray(frameStart, frameEnd);
        const verdict = this.options.onFrame(type, frame);
        if (verdict !== undefined) {
          this.flushRun(chunk, runStart, frameStart);
          if (verdict !== null) this.options.forward(verdict);
          runStart = frameEnd;
        }
        if (this.failed) return;
        pos = frameEnd;
        continue;
      }
      // A watched frame that continues in a later chunk: hold it back until whole.
      this.flushRun(chunk, runStart, frameStart);
      this.beginAssembly(chunk.subarray(frameStart, end), frameEnd - end);
      pos = end;
      runStart = end;
    }
    this.flushRun(chunk, runStart, end);
  }

  /** Stops scanning, e.g. when the connection is being closed by a stage. */
  stop(): void {
    this.failed = true;
  }

  private beginAssembly(first: Buffer, missing: number): void {
    this.pieces = [first];
    this.pieceMissing = missing;
    this.assembling = missing > 0;
  }

  private emitVerdict(verdict: FrameVerdict, frame: Buffer): void {
    if (verdict === undefined) this.options.forward(frame);
    else if (verdict !== null) this.options.forward(verdict);
  }

  private flushRun(chunk: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.options.forward(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }

  private validate(type: number, length: number): boolean {
    const valid = this.options.validTypes;
    if (valid !== undefined && valid[type] !== 1) {
      return this.fail(Errors.protocolViolation(`invalid message type ${type}`));
    }
    if (length < 4) return this.fail(Errors.protocolViolation(`invalid message length ${length}`));
    if (length + 1 > this.options.maxMessageSize) {
      return this.fail(Errors.messageTooLarge(length + 1, this.options.maxMessageSize));
    }
    return true;
  }

  private fail(error: PgwardError): false {
    this.failed = true;
    this.options.onInvalid(error);
    return false;
  }
}
