import net from 'node:net';
import tls from 'node:tls';
import { decodeErrorFields } from '../../src/protocol/backend-messages.js';
import { RequestCode } from '../../src/protocol/codes.js';
import { encodeRequest, encodeStartupMessage } from '../../src/protocol/startup-packet.js';
import { SocketReader } from '../../src/session/socket-reader.js';

/**
 * A deliberately low-level client for protocol edge cases that real drivers
 * never produce: it writes exact bytes and reads whole messages.
 */
export class RawClient {
  private constructor(
    readonly socket: net.Socket | tls.TLSSocket,
    readonly reader: SocketReader,
  ) {}

  static async connect(port: number, options: { tls?: { ca: string } } = {}): Promise<RawClient> {
    const plain = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => plain.once('connect', resolve).once('error', reject));
    if (!options.tls) return new RawClient(plain, new SocketReader(plain, 1 << 26));
    plain.write(encodeRequest(RequestCode.SSLRequest));
    const answer = await new Promise<Buffer>((resolve) => plain.once('data', resolve));
    if (answer.toString() !== 'S') throw new Error(`expected S, got ${answer.toString()}`);
    const secure = tls.connect({ socket: plain, ca: options.tls.ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    return new RawClient(secure, new SocketReader(secure, 1 << 26));
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  startup(parameters: Array<[string, string]>, minor = 0): void {
    const packet = encodeStartupMessage(parameters);
    packet.writeInt32BE((3 << 16) | minor, 4);
    this.write(packet);
  }

  async message(): Promise<Buffer> {
    return this.reader.readMessage();
  }

  /** Reads messages until one of the given type arrives. */
  async until(type: string): Promise<Buffer> {
    for (;;) {
      const message = await this.message();
      if (message[0] === type.charCodeAt(0)) return message;
    }
  }

  /** Reads until an ErrorResponse and returns its fields. */
  async error(): Promise<Map<string, string>> {
    return decodeErrorFields(await this.until('E'));
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export function typedFrame(type: string, body: Buffer | string = ''): Buffer {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + payload.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
}

/** A password message as the client would send it. */
export const passwordMessage = (password: string): Buffer => typedFrame('p', `${password}\0`);

const cstring = (text: string): Buffer => Buffer.from(`${text}\0`, 'utf8');
const NO_PARAMETERS = Buffer.from([0, 0]);

/** Extended-protocol frontend messages with no parameters, text results. */
export const frontend = {
  parse: (name: string, sql: string): Buffer => typedFrame('P', Buffer.concat([cstring(name), cstring(sql), NO_PARAMETERS])),
  bind: (portal: string, statement: string): Buffer => typedFrame('B', Buffer.concat([cstring(portal), cstring(statement), NO_PARAMETERS, NO_PARAMETERS, NO_PARAMETERS])),
  execute: (portal: string, rows = 0): Buffer => {
    const limit = Buffer.alloc(4);
    limit.writeInt32BE(rows);
    return typedFrame('E', Buffer.concat([cstring(portal), limit]));
  },
  closeStatement: (name: string): Buffer => typedFrame('C', Buffer.concat([Buffer.from('S'), cstring(name)])),
  query: (sql: string): Buffer => typedFrame('Q', `${sql}\0`),
  sync: typedFrame('S'),
  flush: typedFrame('H'),
  copyDone: typedFrame('c'),
};
