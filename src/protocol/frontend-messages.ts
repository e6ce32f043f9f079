import { Frontend } from './codes.js';

/**
 * Decoders and encoders for the frontend messages a stage reads or writes:
 * Query and Parse, which it rewrites; the names in Bind, Describe, Execute and
 * Close; the Close it inserts to prepare a statement again. Everything else a
 * client sends is relayed as raw bytes.
 */

/** Terminate (protocol §55.7): constant, so it is built once. */
export const TERMINATE_FRAME: Buffer = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);

export interface ParseMessage {
  /** Prepared statement name; '' is the unnamed statement. */
  name: string;
  query: string;
  /** Parameter type OIDs as the client declared them (0 = unspecified). */
  parameterTypes: readonly number[];
}

/** The SQL text of a Query message (protocol §55.7). */
export function decodeQuery(frame: Buffer): string {
  const end = frame.indexOf(0, 5);
  return frame.toString('utf8', 5, end < 0 ? frame.length : end);
}

export function encodeQuery(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const frame = Buffer.allocUnsafe(5 + text.length);
  frame[0] = Frontend.Query;
  frame.writeInt32BE(4 + text.length, 1);
  text.copy(frame, 5);
  return frame;
}

/** Returns undefined for a malformed Parse (the caller refuses it). */
export function decodeParse(frame: Buffer): ParseMessage | undefined {
  const nameEnd = frame.indexOf(0, 5);
  if (nameEnd < 0) return undefined;
  const queryEnd = frame.indexOf(0, nameEnd + 1);
  if (queryEnd < 0 || queryEnd + 3 > frame.length) return undefined;
  const count = frame.readInt16BE(queryEnd + 1);
  if (count < 0 || queryEnd + 3 + count * 4 !== frame.length) return undefined;
  const parameterTypes: number[] = [];
  for (let i = 0; i < count; i++) parameterTypes.push(frame.readUInt32BE(queryEnd + 3 + i * 4));
  return {
    name: frame.toString('utf8', 5, nameEnd),
    query: frame.toString('utf8', nameEnd + 1, queryEnd),
    parameterTypes,
  };
}

export function encodeParse(message: ParseMessage): Buffer {
  const name = Buffer.from(`${message.name}\0`, 'utf8');
  const query = Buffer.from(`${message.query}\0`, 'utf8');
  const length = 4 + name.length + query.length + 2 + message.parameterTypes.length * 4;
  const frame = Buffer.allocUnsafe(1 + length);
  frame[0] = Frontend.Parse;
  frame.writeInt32BE(length, 1);
  let pos = 5;
  pos += name.copy(frame, pos);
  pos += query.copy(frame, pos);
  frame.writeInt16BE(message.parameterTypes.length, pos);
  pos += 2;
  for (const oid of message.parameterTypes) {
    frame.writeUInt32BE(oid, pos);
    pos += 4;
  }
  return frame;
}

/** The portal and statement names a Bind starts with (protocol §55.7); undefined when malformed. */
export function decodeBindNames(frame: Buffer): { portal: string; statement: string } | undefined {
  const portalEnd = frame.indexOf(0, 5);
  if (portalEnd < 0) return undefined;
  const statementEnd = frame.indexOf(0, portalEnd + 1);
  if (statementEnd < 0) return undefined;
  return { portal: frame.toString('utf8', 5, portalEnd), statement: frame.toString('utf8', portalEnd + 1, statementEnd) };
}

/**
 * Describe and Close: `S` (statement) or `P` (portal) and a name. Execute: a
 * portal name (and a row limit). Undefined when malformed.
 */
export function decodeTarget(frame: Buffer): { kind: 'S' | 'P'; name: string } | undefined {
  if (frame[0] === Frontend.Execute) {
    const end = frame.indexOf(0, 5);
    return end < 0 ? undefined : { kind: 'P', name: frame.toString('utf8', 5, end) };
  }
  const kind = frame[5];
  const end = frame.indexOf(0, 6);
  if (end < 0 || (kind !== 0x53 && kind !== 0x50)) return undefined;
  return { kind: kind === 0x53 ? 'S' : 'P', name: frame.toString('utf8', 6, end) };
}

/** Close of a prepared statement. */
export function encodeCloseStatement(name: string): Buffer {
  const body = Buffer.from(`S${name}\0`, 'utf8');
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame[0] = Frontend.Close;
  frame.writeInt32BE(4 + body.length, 1);
  body.copy(frame, 5);
  return frame;
}
