/**
 * PostgreSQL v3 protocol codes (https://www.postgresql.org/docs/current/protocol-message-formats.html).
 * Message types are kept as their protocol names so handlers read like the spec.
 */

/** Request codes of the untyped packets a client may open a connection with. */
export const RequestCode = {
  /** Protocol 3.0; the minor version lives in the low 16 bits. */
  ProtocolV3: 3 << 16,
  CancelRequest: 80877102,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
} as const;

/** First byte of a TLS record (ContentType handshake, RFC 8446 §5.1): PostgreSQL 17 direct TLS. */
export const TLS_HANDSHAKE_BYTE = 0x16;

const code = (letter: string): number => letter.charCodeAt(0);

/** Messages a client (frontend) sends after startup. */
export const Frontend = {
  Bind: code('B'),
  Close: code('C'),
  CopyData: code('d'),
  CopyDone: code('c'),
  CopyFail: code('f'),
  Describe: code('D'),
  Execute: code('E'),
  Flush: code('H'),
  FunctionCall: code('F'),
  Parse: code('P'),
  /** PasswordMessage, SASLInitialResponse and SASLResponse share this type. */
  PasswordMessage: code('p'),
  Query: code('Q'),
  Sync: code('S'),
  Terminate: code('X'),
} as const;

/** Messages a server (backend) sends. */
export const Backend = {
  Authentication: code('R'),
  BackendKeyData: code('K'),
  BindComplete: code('2'),
  CloseComplete: code('3'),
  CommandComplete: code('C'),
  CopyBothResponse: code('W'),
  CopyData: code('d'),
  CopyDone: code('c'),
  CopyInResponse: code('G'),
  CopyOutResponse: code('H'),
  DataRow: code('D'),
  EmptyQueryResponse: code('I'),
  ErrorResponse: code('E'),
  FunctionCallResponse: code('V'),
  NegotiateProtocolVersion: code('v'),
  NoData: code('n'),
  NoticeResponse: code('N'),
  NotificationResponse: code('A'),
  ParameterDescription: code('t'),
  ParameterStatus: code('S'),
  ParseComplete: code('1'),
  PortalSuspended: code('s'),
  ReadyForQuery: code('Z'),
  RowDescription: code('T'),
} as const;

/** Authentication request subcodes carried by an Authentication ('R') message. */
export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** A 256-entry lookup table, so validating a type byte on the hot path is one array read. */
/** A watch table (frame-scanner.ts): `types` handed whole, `typesOnly` told by type alone. */
export function typeTable(types: Iterable<number>, typesOnly: Iterable<number> = []): Uint8Array {
  const table = new Uint8Array(256);
  for (const t of typesOnly) table[t] = 2;
  for (const t of types) table[t] = 1;
  return table;
}

export const FRONTEND_TYPES = typeTable(Object.values(Frontend));
export const BACKEND_TYPES = typeTable(Object.values(Backend));
