import { AuthCode, Backend } from './codes.js';
import type { PgwardError } from '../errors.js';

/**
 * Encoders for the backend messages pgward writes to clients itself, and
 * decoders for the few upstream messages a stage must read. Everything else is
 * relayed as raw bytes and never passes through here.
 */

function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const cstring = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

/** ErrorResponse/NoticeResponse fields (protocol §55.8). */
export function encodeErrorResponse(error: PgwardError): Buffer {
  const fields: Buffer[] = [
    Buffer.from('S'), cstring(error.severity),
    Buffer.from('V'), cstring(error.severity),
    Buffer.from('C'), cstring(error.code),
    Buffer.from('M'), cstring(error.message),
  ];
  if (error.detail) fields.push(Buffer.from('D'), cstring(error.detail));
  if (error.hint) fields.push(Buffer.from('H'), cstring(error.hint));
  fields.push(Buffer.from([0]));
  return frame(Backend.ErrorResponse, Buffer.concat(fields));
}

/** NegotiateProtocolVersion: the newest minor version we speak and the `_pq_.` options we ignored. */
export function encodeNegotiateProtocolVersion(newestMinor: number, unsupportedOptions: readonly string[]): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE((3 << 16) | newestMinor, 0);
  head.writeInt32BE(unsupportedOptions.length, 4);
  return frame(Backend.NegotiateProtocolVersion, Buffer.concat([head, ...unsupportedOptions.map(cstring)]));
}

export function encodeAuthentication(code: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(code, 0);
  return frame(Backend.Authentication, Buffer.concat([head, payload]));
}

export function encodeAuthenticationSASL(mechanisms: readonly string[]): Buffer {
  return encodeAuthentication(AuthCode.SASL, Buffer.concat([...mechanisms.map(cstring), Buffer.from([0])]));
}

export function encodeBackendKeyData(processId: number, secretKey: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(processId, 0);
  return frame(Backend.BackendKeyData, Buffer.concat([head, secretKey]));
}

export function encodeParameterStatus(name: string, value: string): Buffer {
  return frame(Backend.ParameterStatus, Buffer.concat([cstring(name), cstring(value)]));
}

export function encodeReadyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return frame(Backend.ReadyForQuery, Buffer.from(status));
}

/** Reads the subcode of an Authentication message. */
export function authenticationCode(frame: Buffer): number {
  return frame.readInt32BE(5);
}

/** The mechanism names listed by AuthenticationSASL. */
export function saslMechanisms(frame: Buffer): string[] {
  const names: string[] = [];
  let pos = 9;
  while (pos < frame.length) {
    const end = frame.indexOf(0, pos);
    if (end < 0 || end === pos) break;
    names.push(frame.toString('utf8', pos, end));
    pos = end + 1;
  }
  return names;
}

/** Payload of AuthenticationSASLContinue/Final or MD5 salt: the bytes after the subcode. */
export function authenticationPayload(frame: Buffer): Buffer {
  return frame.subarray(9);
}

export function decodeBackendKeyData(frame: Buffer): { processId: number; secretKey: Buffer } {
  return { processId: frame.readInt32BE(5), secretKey: Buffer.from(frame.subarray(9)) };
}

/** ErrorResponse/NoticeResponse fields keyed by their one-letter codes. */
export function decodeErrorFields(frame: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let pos = 5;
  while (pos < frame.length && frame[pos] !== 0) {
    const code = String.fromCharCode(frame[pos]!);
    const end = frame.indexOf(0, pos + 1);
    if (end < 0) break;
    fields.set(code, frame.toString('utf8', pos + 1, end));
    pos = end + 1;
  }
  return fields;
}

/** Name and value of a ParameterStatus message. */
export function decodeParameterStatus(frame: Buffer): [name: string, value: string] {
  const nameEnd = frame.indexOf(0, 5);
  const valueEnd = frame.indexOf(0, nameEnd + 1);
  return [frame.toString('utf8', 5, nameEnd), frame.toString('utf8', nameEnd + 1, valueEnd)];
}

/** The body of a PasswordMessage / SASL response, without type and length. */
export function passwordMessageBody(frame: Buffer): Buffer {
  return frame.subarray(5);
}
