import type { Duplex } from 'node:stream';
import { Errors, type PgwardError } from '../errors.js';

/**
 * Awaitable reads of whole packets from a socket, for the connection's opening
 * exchanges (first packet, authentication). Not used on the relay path: once a
 * session is established, `detach()` hands the unread bytes to the relay.
 */
export class SocketReader {
  private buffered: Buffer = Buffer.alloc(0);
  /** Chunks received since `buffered` was last joined: joined once, when a read needs them. */
  private arrived: Buffer[] = [];
  private arrivedBytes = 0;
  private detached = false;
  private waiter: (() => void) | undefined;
  private ended = false;
  private failure: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.arrived.push(chunk);
    this.arrivedBytes += chunk.length;
    // Nobody will read more than one packet's worth ahead: stop reading until asked.
    if (this.buffered.length + this.arrivedBytes > this.maxPacket + 5) this.socket.pause();
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };
  private readonly onError = (error: Error): void => {
    this.failure = error;
    this.wake();
  };

  constructor(
    readonly socket: Duplex,
    /** Largest packet accepted; a stage may raise it (e.g. for a token) before reading. */
    public maxPacket: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Bytes received but not yet read. */
  get pending(): number {
    return this.buffered.length + this.arrivedBytes;
  }

  /** An untyped packet: int32 length (counting itself) then the body. */
  async readUntyped(minLength: number): Promise<Buffer> {
    await this.fill(4);
    const length = this.buffered.readInt32BE(0);
    if (length < minLength || length > this.maxPacket) throw new ProtocolError(Errors.protocolViolation('invalid length of startup packet'));
    return this.take(length);
  }

  /** A typed message: type byte, int32 length, body. */
  async readMessage(): Promise<Buffer> {
    await this.fill(5);
    const length = this.buffered.readInt32BE(1);
    if (length < 4) throw new ProtocolError(Errors.protocolViolation(`invalid message length ${length}`));
    if (length + 1 > this.maxPacket) throw new ProtocolError(Errors.messageTooLarge(length + 1, this.maxPacket));
    return this.take(length + 1);
  }

  /** Peeks at the first byte without consuming it. */
  async peekByte(): Promise<number> {
    await this.fill(1);
    return this.buffered[0]!;
  }

  private join(): void {
    if (this.arrived.length === 0) return;
    this.buffered = Buffer.concat(this.buffered.length === 0 ? this.arrived : [this.buffered, ...this.arrived]);
    this.arrived = [];
    this.arrivedBytes = 0;
  }

  /** Stops reading and returns what was received but not read, leaving the socket paused. */
  detach(): Buffer {
    this.detached = true;
    this.socket.pause();
    this.join();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  private async take(length: number): Promise<Buffer> {
    await this.fill(length);
    const packet = this.buffered.subarray(0, length);
    this.buffered = this.buffered.subarray(length);
    return packet;
  }

  private async fill(length: number): Promise<void> {
    for (;;) {
      if (this.buffered.length < length) this.join();
      if (this.buffered.length >= length) return;
      if (this.failure) throw this.failure;
      if (this.ended || this.detached) throw new ConnectionClosed();
      this.socket.resume();
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

/** The peer closed the connection while a packet was expected. */
export class ConnectionClosed extends Error {
  constructor() {
    super('connection closed');
  }
}

/** A malformed packet; carries the error to send before closing. */
export class ProtocolError extends Error {
  constructor(readonly error: PgwardError) {
    super(error.message);
  }
}
