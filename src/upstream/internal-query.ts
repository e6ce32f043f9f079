import { Backend } from '../protocol/codes.js';
import { decodeErrorFields } from '../protocol/backend-messages.js';
import { encodeQuery } from '../protocol/frontend-messages.js';
import type { SocketReader } from '../session/socket-reader.js';

/** Rows of a query pgward runs for itself, as text (NULL as null), keyed by column name. */
export type InternalRows = Array<Record<string, string | null>>;

export class InternalQueryError extends Error {
  constructor(
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Runs a simple query of pgward's own on an upstream connection that is idle
 * and not yet handed to the relay, and reads everything up to ReadyForQuery.
 * The client never sees any of it. Returns the rows of the last statement.
 */
export async function runInternalQuery(upstream: SocketReader, sql: string): Promise<InternalRows> {
  upstream.socket.write(encodeQuery(sql));

  let names: string[] = [];
  let rows: InternalRows = [];
  let failure: InternalQueryError | undefined;
  for (;;) {
    const message = await upstream.readMessage();
    switch (message[0]) {
      case Backend.RowDescription:
        names = rowDescriptionNames(message);
        rows = [];
        break;
      case Backend.DataRow:
        rows.push(dataRowValues(message, names));
        break;
      case Backend.ErrorResponse: {
        const fields = decodeErrorFields(message);
        failure = new InternalQueryError(fields.get('C'), fields.get('M') ?? 'internal query failed');
        break;
      }
      case Backend.ReadyForQuery:
        if (failure) throw failure;
        return rows;
      default:
        // CommandComplete, NoticeResponse, ParameterStatus: nothing the caller needs.
        break;
    }
  }
}

function rowDescriptionNames(message: Buffer): string[] {
  const count = message.readInt16BE(5);
  const names: string[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const end = message.indexOf(0, pos);
    names.push(message.toString('utf8', pos, end));
    pos = end + 1 + 18; // table oid, attnum, type oid, type size, typmod, format
  }
  return names;
}

function dataRowValues(message: Buffer, names: readonly string[]): Record<string, string | null> {
  const count = message.readInt16BE(5);
  const row: Record<string, string | null> = {};
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const length = message.readInt32BE(pos);
    pos += 4;
    row[names[i] ?? `column${i}`] = length < 0 ? null : message.toString('utf8', pos, pos + length);
    if (length > 0) pos += length;
  }
  return row;
}
