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
  | { readonly kind: 'execute'; readonly copyEnds: number }
  /** `statement` is undefined for the Close of a portal. */
  | { readonly kind: 'close'; readonly statement: string | undefined; readonly hidden: boolean }
  | { readonly kind: 'sync'; readonly copyEnds: number }
  | { readonly kind: 'query'; readonly copyEnds: number };

/** Statement texts kept per session; past this the state is lost (see `lost`). */
const MAX_PREPARED_BYTES = 4 * 1024 * 1024;

/** The statements a use of a name may find: more than one when a Parse or Close of it in an earlier batch is unanswered. */
export interface StatementCandidates {
  /** A Parse or Close of the name is on its way. */
  readonly pending: boolean;
  readonly texts: readonly PreparedText[];
}

export class ProtocolState {
  readonly prepared = new Map<string, PreparedText>();
  private preparedBytes = 0;
  /** Unanswered requests: `sent[head]` is the oldest (a queue that stays cheap however deep the pipeline). */
  private sent: Sent[] = [];
  private head = 0;
  /** The status of the last ReadyForQuery: I (idle), T (in a transaction block), E (failed block). */
  transactionStatus = 0x49;
  /**
   * Replies stopped matching what was sent, or more texts than kept: what the server holds is no
   * longer known, so nothing may rely on it. Told to `onLost`.
   */
  lost = false;
  onLost: (() => void) | undefined;
  /** Extended-protocol messages went upstream since the last Sync: an implicit transaction, and its portals, may be open. */
  batchOpen = false;
  /** An extended message failed and its Sync has not been sent: the server discards what comes until then. */
  private discarding = false;
  /** CopyDone and CopyFail messages sent: which Syncs the server ignores during a COPY FROM STDIN. */
  private copyEnds = 0;
  /** While a COPY FROM STDIN runs: the copyEnds count at its start (the client's next CopyDone/CopyFail ends it). */
  private copyIn: number | undefined;
  /** Told the portal of each Bind that succeeded (only Binds sent with their portal name), with the generation it was sent under. */
  onBound: ((portal: string, generation: number) => void) | undefined;

  /** Every request sent upstream has been answered, and the server reads the next one. */
  get idle(): boolean {
    return this.head === this.sent.length && !this.lost && !this.discarding;
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
    this.push({ kind: 'execute', copyEnds: this.copyEnds });
  }

  sentClose(statement: string | undefined, hidden = false): void {
    this.push({ kind: 'close', statement, hidden });
  }

  sentSync(): void {
    // During COPY FROM STDIN the server ignores Sync (libpq sends one before CopyDone).
    if (this.copyIn !== undefined && this.copyIn === this.copyEnds) return;
    this.push({ kind: 'sync', copyEnds: this.copyEnds });
  }

  sentQuery(): void {
    this.push({ kind: 'query', copyEnds: this.copyEnds });
  }

  /** The client sent CopyDone or CopyFail: a COPY FROM STDIN ends with it. */
  sentCopyEnd(): void {
    this.copyEnds += 1;
  }

  /** SQL-level DEALLOCATE ALL or DISCARD ALL completed: no named statement is left (the unnamed one is kept apart and stays). */
  forgetNamed(): void {
    for (const name of [...this.prepared.keys()]) if (name !== '') this.forget(name);
  }

  /**
   * The statements a use of `name` sent now may find. A Parse or Close of it in the same batch
   * decides alone: if it fails, the server skips the use too. One in an earlier batch may fail
   * without that, so the statement it would replace stays a candidate.
   */
  statement(name: string): StatementCandidates {
    const texts: PreparedText[] = [];
    let pending = false;
    let crossedSync = false;
    for (let i = this.sent.length - 1; i >= this.head; i--) {
      const m = this.sent[i]!;
      if (m.kind === 'sync') {
        crossedSync = true;
        continue;
      }
      if (!((m.kind === 'parse' && m.name === name) || (m.kind === 'close' && m.statement === name))) continue;
      const text = m.kind === 'parse' ? m.text : undefined;
      if (!pending && !crossedSync) return { pending: true, texts: text ? [text] : [] };
      pending = true;
      if (text) texts.push(text);
    }
    const confirmed = this.prepared.get(name);
    if (confirmed) texts.push(confirmed);
    return { pending, texts };
  }

  /**
   * A reply from the server, by type: ParseComplete, BindComplete, CloseComplete, RowDescription,
   * NoData, CommandComplete, EmptyQueryResponse, PortalSuspended, CopyInResponse, ErrorResponse,
   * ReadyForQuery. Returns true when it answers a message the client did not send, so it must not
   * reach it.
   */
  reply(type: number, status?: number): boolean {
    if (type === Backend.ReadyForQuery && status !== undefined) this.transactionStatus = status;
    if (this.lost) return false;
    const head = this.head < this.sent.length ? this.sent[this.head] : undefined;
    switch (type) {
      case Backend.ParseComplete:
        if (head?.kind !== 'parse') return this.mismatch();
        this.shift();
        if (head.text) this.store(head.name, head.text);
        return head.hidden;
      case Backend.BindComplete:
        if (head?.kind !== 'bind') return this.mismatch();
        this.shift();
        if (head.portal !== undefined) this.onBound?.(head.portal, head.generation);
        return false;
      case Backend.CloseComplete:
        if (head?.kind !== 'close') return this.mismatch();
        this.shift();
        if (head.statement !== undefined) this.forget(head.statement);
        return head.hidden;
      case Backend.RowDescription:
      case Backend.NoData:
        // Describe ends with one of these; a simple Query sends RowDescriptions along the way.
        if (head?.kind === 'describe') this.shift();
        else if (head?.kind !== 'query') return this.mismatch();
        return false;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        this.copyIn = undefined;
        if (head?.kind === 'execute') this.shift();
        else if (head?.kind !== 'query') return this.mismatch();
        return false;
      case Backend.CopyInResponse: {
        if (head?.kind !== 'execute' && head?.kind !== 'query') return this.mismatch();
        // Syncs sent after the statement and before the CopyDone or CopyFail that ends the COPY
        // are ignored by the server: they get no ReadyForQuery.
        const start = head.copyEnds;
        this.copyIn = start;
        const rest = this.sent.slice(this.head + 1).filter((m) => !(m.kind === 'sync' && m.copyEnds === start));
        this.sent = [head, ...rest];
        this.head = 0;
        return false;
      }
      case Backend.ErrorResponse:
        this.copyIn = undefined;
        // A simple Query goes on to its ReadyForQuery, as does a Sync whose commit failed; an
        // extended message failed, and the server discards everything after it up to the Sync.
        if (head === undefined || head.kind === 'query' || head.kind === 'sync') return false;
        this.shift();
        // A Parse of the unnamed statement drops the previous one before it can fail.
        if (head.kind === 'parse' && head.name === '') this.forget('');
        while (this.head < this.sent.length && this.sent[this.head]!.kind !== 'sync') this.shift();
        if (this.head === this.sent.length) this.discarding = true;
        return false;
      case Backend.ReadyForQuery:
        if (head?.kind !== 'sync' && head?.kind !== 'query') return this.mismatch();
        this.shift();
        // A simple Query drops the unnamed statement before it runs (exec_simple_query).
        if (head.kind === 'query') this.forget('');
        return false;
      default:
        return false;
    }
  }

  private push(message: Sent): void {
    if (message.kind === 'sync') {
      this.batchOpen = false;
      this.discarding = false;
    } else if (message.kind !== 'query') {
      this.batchOpen = true;
    }
    // What the server discards gets no reply.
    if (this.lost || (this.discarding && message.kind !== 'sync')) return;
    this.sent.push(message);
  }

  private shift(): void {
    this.head += 1;
    if (this.head === this.sent.length) {
      this.sent = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.sent.length) {
      this.sent = this.sent.slice(this.head);
      this.head = 0;
    }
  }

  private store(name: string, text: PreparedText): void {
    this.forget(name);
    if (this.preparedBytes + text.query.length > MAX_PREPARED_BYTES) {
      this.mismatch();
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
    if (this.lost) return false;
    this.lost = true;
    this.sent = [];
    this.head = 0;
    this.onLost?.();
    return false;
  }
}
