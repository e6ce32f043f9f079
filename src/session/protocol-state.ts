/**
 * What the server holds for a session — its protocol-level prepared
 * statements and which requests are still unanswered — followed from the
 * messages sent upstream and the replies that answer them, in order. Never
 * guessed from the client's messages alone: after an error the server skips
 * the rest of an extended-protocol batch up to Sync, so a Parse, Close or
 * Query that went upstream may never take effect.
 */
import { Backend } from '../protocol/codes.js';

/** A protocol-level prepared statement: what the client sent, and the policy generation it was planned under. */
export interface PreparedText {
  readonly query: string;
  readonly parameterTypes: readonly number[];
  readonly generation: number;
}

/** A message sent upstream that the server answers, oldest first. */
type Sent =
  /** `text` is undefined for a Parse that cannot succeed (a refusal marker). */
  | { readonly kind: 'parse'; readonly name: string; readonly text: PreparedText | undefined; readonly hidden: boolean }
  | { readonly kind: 'bind'; readonly portal: string | undefined; readonly generation: number }
  | { readonly kind: 'describe' }
  | { readonly kind: 'execute' }
  /** `statement` is undefined for the Close of a portal. */
  | { readonly kind: 'close'; readonly statement: string | undefined; readonly hidden: boolean }
  | { readonly kind: 'sync' }
  | { readonly kind: 'query' };

/** Statement texts kept per session; past this a policy change ends the session (see `lost`). */
const MAX_PREPARED_BYTES = 4 * 1024 * 1024;

export class ProtocolState {
  readonly prepared = new Map<string, PreparedText>();
  private preparedBytes = 0;
  private readonly sent: Sent[] = [];
  /** The status of the last ReadyForQuery: I (idle), T (in a transaction block), E (failed block). */
  transactionStatus = 0x49;
  /**
   * Replies stopped matching what was sent, or more texts than kept: what the server holds is no
   * longer known, so nothing may rely on it (a policy change ends the session).
   */
  lost = false;
  /** Extended-protocol messages went upstream since the last Sync: an implicit transaction, and its portals, may be open. */
  batchOpen = false;
  /** Told the portal of each Bind that succeeded (only Binds sent with their portal name), with the generation it was sent under. */
  onBound: ((portal: string, generation: number) => void) | undefined;

  /** Every request sent upstream has been answered. */
  get idle(): boolean {
    return this.sent.length === 0 && !this.lost;
  }

  sentParse(name: string, text: PreparedText | undefined, hidden = false): void {
    this.push({ kind: 'parse', name, text, hidden });
  }

  sentBind(portal: string | undefined, generation: number): void {
    this.push({ kind: 'bind', portal, generation });
  }

  sentDescribe(): void {
    this.push({ kind: 'describe' });
  }

  sentExecute(): void {
    this.push({ kind: 'execute' });
  }

  sentClose(statement: string | undefined, hidden = false): void {
    this.push({ kind: 'close', statement, hidden });
  }

  sentSync(): void {
    this.push({ kind: 'sync' });
  }

  sentQuery(): void {
    this.push({ kind: 'query' });
  }

  /**
   * A reply from the server, by type: ParseComplete, BindComplete, CloseComplete, RowDescription,
   * NoData, CommandComplete, EmptyQueryResponse, PortalSuspended, ErrorResponse, ReadyForQuery.
   * Returns true when it answers a message the client did not send, so it must not reach it.
   */
  reply(type: number, status?: number): boolean {
    if (this.lost) {
      if (type === Backend.ReadyForQuery && status !== undefined) this.transactionStatus = status;
      return false;
    }
    const head = this.sent[0];
    switch (type) {
      case Backend.ParseComplete:
        if (head?.kind !== 'parse') return this.mismatch();
        this.sent.shift();
        if (head.text) this.store(head.name, head.text);
        return head.hidden;
      case Backend.BindComplete:
        if (head?.kind !== 'bind') return this.mismatch();
        this.sent.shift();
        if (head.portal !== undefined) this.onBound?.(head.portal, head.generation);
        return false;
      case Backend.CloseComplete:
        if (head?.kind !== 'close') return this.mismatch();
        this.sent.shift();
        if (head.statement !== undefined) this.forget(head.statement);
        return head.hidden;
      case Backend.RowDescription:
      case Backend.NoData:
        // Describe ends with one of these; a simple Query sends RowDescriptions along the way.
        if (head?.kind === 'describe') this.sent.shift();
        else if (head?.kind !== 'query') return this.mismatch();
        return false;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        if (head?.kind === 'execute') this.sent.shift();
        else if (head?.kind !== 'query') return this.mismatch();
        return false;
      case Backend.ErrorResponse:
        // A simple Query goes on to its ReadyForQuery, as does a Sync whose commit failed; an
        // extended message failed, and the server skips everything after it up to the Sync.
        if (head === undefined || head.kind === 'query' || head.kind === 'sync') return false;
        this.sent.shift();
        // A Parse of the unnamed statement drops the previous one before it can fail.
        if (head.kind === 'parse' && head.name === '') this.forget('');
        while (this.sent.length > 0 && this.sent[0]!.kind !== 'sync') this.sent.shift();
        return false;
      case Backend.ReadyForQuery:
        if (status !== undefined) this.transactionStatus = status;
        if (head?.kind !== 'sync' && head?.kind !== 'query') return this.mismatch();
        this.sent.shift();
        // A simple Query drops the unnamed statement before it runs (exec_simple_query).
        if (head.kind === 'query') this.forget('');
        return false;
      default:
        return false;
    }
  }

  /**
   * The statement a use of `name` sent now would find: the last Parse or Close of it still on its
   * way (`pending`), else the statement the server confirmed. A pending Parse that fails leaves the
   * batch skipped, so what it would have replaced does not run either.
   */
  statement(name: string): { pending: boolean; text: PreparedText | undefined } {
    for (let i = this.sent.length - 1; i >= 0; i--) {
      const m = this.sent[i]!;
      if (m.kind === 'parse' && m.name === name) return { pending: true, text: m.text };
      if (m.kind === 'close' && m.statement === name) return { pending: true, text: undefined };
    }
    return { pending: false, text: this.prepared.get(name) };
  }

  private push(message: Sent): void {
    if (message.kind === 'sync') this.batchOpen = false;
    else if (message.kind !== 'query') this.batchOpen = true;
    if (!this.lost) this.sent.push(message);
  }

  private store(name: string, text: PreparedText): void {
    this.forget(name);
    if (this.preparedBytes + text.query.length > MAX_PREPARED_BYTES) {
      this.lost = true;
      return;
    }
    this.prepared.set(name, text);
    this.preparedBytes += text.query.length;
  }

  private forget(name: string): void {
    const previous = this.prepared.get(name);
    if (!previous) return;
    this.prepared.delete(name);
    this.preparedBytes -= previous.query.length;
  }

  private mismatch(): false {
    this.lost = true;
    this.sent.length = 0;
    return false;
  }
}
