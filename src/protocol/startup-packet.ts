import { RequestCode } from './codes.js';

/**
 * The untyped packet that opens a connection (protocol §55.2.1): an int32
 * length, an int32 request code, then a payload that depends on the code.
 */
export type FirstPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: Buffer }
  | { kind: 'startup'; minor: number; parameters: StartupParameters; protocolOptions: string[] }
  | { kind: 'invalid'; reason: string }
  | { kind: 'unsupported'; major: number; minor: number };

/** Startup parameters in the order the client sent them (order matters to nobody but is kept). */
export type StartupParameters = ReadonlyArray<readonly [name: string, value: string]>;

/** PostgreSQL caps the startup packet at 10000 bytes (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;

/** Bytes needed before `parseFirstPacket` can run, or 0 when the length word itself is invalid. */
export function firstPacketLength(buf: Buffer): number | undefined {
  if (buf.length < 4) return undefined;
  const length = buf.readInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET) return 0;
  return length;
}

export function parseFirstPacket(packet: Buffer): FirstPacket {
  const length = packet.readInt32BE(0);
  const code = packet.readInt32BE(4);
  switch (code) {
    case RequestCode.SSLRequest:
      return length === 8 ? { kind: 'ssl' } : { kind: 'invalid', reason: 'invalid length of SSLRequest' };
    case RequestCode.GSSENCRequest:
      return length === 8 ? { kind: 'gssenc' } : { kind: 'invalid', reason: 'invalid length of GSSENCRequest' };
    case RequestCode.CancelRequest:
      // Protocol 3.2 allows secret keys of up to 256 bytes; 3.0 uses 4.
      if (length < 16 || length > 12 + 256) return { kind: 'invalid', reason: 'invalid length of cancel request' };
      return { kind: 'cancel', processId: packet.readInt32BE(8), secretKey: Buffer.from(packet.subarray(12, length)) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return { kind: 'unsupported', major, minor };
  return parseStartupParameters(packet.subarray(8, length), minor);
}

function parseStartupParameters(body: Buffer, minor: number): FirstPacket {
  const parameters: Array<[string, string]> = [];
  const protocolOptions: string[] = [];
  let pos = 0;
  for (;;) {
    const nameEnd = body.indexOf(0, pos);
    if (nameEnd < 0) return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
    if (nameEnd === pos) break; // the final empty name terminates the list
    const valueEnd = body.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
    const name = body.toString('utf8', pos, nameEnd);
    const value = body.toString('utf8', nameEnd + 1, valueEnd);
    if (name.startsWith('_pq_.')) protocolOptions.push(name);
    else parameters.push([name, value]);
    pos = valueEnd + 1;
  }
  if (pos !== body.length - 1) {
    return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
  }
  if (!parameters.some(([name]) => name === 'user')) {
    return { kind: 'invalid', reason: 'no PostgreSQL user name specified in startup packet' };
  }
  return { kind: 'startup', minor, parameters, protocolOptions };
}

/** Builds a protocol 3.0 StartupMessage with exactly the given parameters (nothing added). */
export function encodeStartupMessage(parameters: StartupParameters): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of parameters) parts.push(Buffer.from(`${name}\0${value}\0`, 'utf8'));
  const body = Buffer.concat(parts);
  const packet = Buffer.alloc(8 + body.length + 1);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(RequestCode.ProtocolV3, 4);
  body.copy(packet, 8);
  return packet;
}

export function encodeRequest(code: number): Buffer {
  const packet = Buffer.alloc(8);
  packet.writeInt32BE(8, 0);
  packet.writeInt32BE(code, 4);
  return packet;
}

export function encodeCancelRequest(processId: number, secretKey: Buffer): Buffer {
  const packet = Buffer.alloc(12 + secretKey.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(RequestCode.CancelRequest, 4);
  packet.writeInt32BE(processId, 8);
  secretKey.copy(packet, 12);
  return packet;
}
