import { randomBytes } from 'node:crypto';
import type { Identity } from '../auth/identity.js';
import { Errors, type PgwardError } from '../errors.js';
import type { Logger } from '../log.js';
import { contextKey, type PolicyContext } from '../policy/decide.js';
import type { PolicyBundle } from '../policy/load.js';
import { decodeErrorFields, encodeErrorResponse } from '../protocol/backend-messages.js';
import { Backend, Frontend } from '../protocol/codes.js';
import type { FrameVerdict } from '../protocol/frame-scanner.js';
import { decodeBindNames, decodeParse, decodeQuery, decodeTarget, encodeCloseStatement, encodeParse, encodeQuery } from '../protocol/frontend-messages.js';
import { ProtocolState, type PreparedText, type StatementCandidates } from '../session/protocol-state.js';
import type { Catalog } from './catalog.js';
import type { PlanCache } from './plan-cache.js';
import { planRewrite, type RewriteDecision } from './plan.js';

export interface GuardContext {
  policy: PolicyContext;
  bundle: PolicyBundle;
  identity: Identity;
  catalog: Catalog;
  searchPath: readonly string[];
  planCache: PlanCache;
  log: Logger;
  /** Told about statements that may change the catalog (DDL), so snapshots get refreshed. */
  onCatalogChange: () => void;
  /** The session lost track of the server's prepared statements after a policy change: it must end. */
  onLostTrack?: () => void;
  /** Whether the client's Bind and Execute frames must be read whole (their names matter after a policy change). */
  setReadsNames?: (on: boolean) => void;
  /**
   * Told when this session's own schema change completed: a fresh snapshot must
   * reach the guard (updateCatalog) before statements that read tables are decided.
   */
  onOwnSchemaChange: () => void;
}

/** ReadyForQuery transaction status bytes. */
const IDLE = 0x49; // 'I'
const FAILED = 0x45; // 'E'

const NO_STATEMENT: StatementCandidates = { pending: false, texts: [] };

/** What a client gets for using a statement or portal planned under policies that have since changed. */
function staleError(what: 'prepared statement' | 'portal', name: string): PgwardError {
  const again = what === 'portal' ? 'bind it again' : 'prepare it again, or send it alone in its batch';
  return Errors.statementRefused('0A000', `${what} "${name}" was planned under policies that have since changed; ${again}`);
}

const LOST_TRACK = Errors.statementRefused('0A000', 'pgward lost track of this session\'s prepared statements after a policy change; reconnect');

/** undefined_table, undefined_column, datatype_mismatch: what a stale snapshot causes. */
const STALE_CATALOG_CODES: ReadonlySet<string> = new Set(['42P01', '42703', '42804']);

/** Commands after which the catalog snapshot may be out of date. */
const DDL_COMMAND = /^(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE|SECURITY LABEL|IMPORT FOREIGN SCHEMA|REFRESH)/;

/**
 * The rewrite stage as the session sees it: for a restricted identity, every
 * Query and Parse is decided before it goes upstream — forwarded, replaced by
 * its rewritten text, or refused. A refused statement is replaced by a marker
 * that the server rejects as a syntax error, so the server itself answers in
 * the right place of a pipeline and aborts a transaction block exactly as a
 * real error would; the guard then swaps that error for its own.
 */
export class StatementGuard {
  /** Refusals on their way back, with the number of the ReadyForQuery that ends their request. */
  private readonly pending = new Map<string, { error: PgwardError; answeredBy: number }>();
  /** Queries and Syncs sent upstream, and ReadyForQuery messages received: each request ends with one. */
  private requests = 0;
  private readies = 0;
  private readonly markerPrefix = `pgward_denied_${randomBytes(6).toString('hex')}_`;
  private sequence = 0;
  /** A schema change of this session was forwarded; its ReadyForQuery has not come back yet. */
  private schemaChangeInFlight = false;
  /** Since when the session waits for a catalog read begun after its own schema change. */
  private awaitingCatalogSince: number | undefined;
  private context: string;
  /** SQL-level PREPARE or DECLARE CURSOR may have run: plans pgward cannot redo when the policies change. Never cleared. */
  private holdsSqlLevelPlans = false;
  /** The server's protocol-level prepared statements and unanswered requests, followed from replies. */
  private readonly protocol = new ProtocolState();
  /** Bumped whenever the policies for this identity change; statements remember the one they were planned under. */
  private generation = 0;
  /**
   * After a policy change while portals may exist (a request unanswered, or a transaction open):
   * portals bound since then, by Binds sent since then. Until the server is idle outside a
   * transaction, no other portal may run: it may have been planned under the old policies.
   */
  private portalsBoundSince: Set<string> | undefined;
  /** Portals of Binds sent since the last Sync (and the last policy change): the server skips the rest of a batch after a failed Bind. */
  private readonly portalsInBatch = new Set<string>();
  /**
   * Statements pgward closed because the new policies refuse them: the client still believes in
   * them, so each use is answered with the refusal (by preparing them again) until it prepares or
   * closes the name itself.
   */
  private readonly refusedStatements = new Map<string, PreparedText>();
  /**
   * Names SQL-level PREPARE created since the first policy change (earlier ones end the session at
   * a change). After a change, a use of a name pgward knows from neither is refused as the server
   * would (26000): should its tracking ever miss a statement, that statement is not run unchecked.
   */
  private readonly sqlPreparedSinceChange = new Set<string>();
  /** A statement name no client uses: refusals in place of Bind, Describe or Execute are Parses of it. */
  private readonly refusalStatement = `pgward_refused_${randomBytes(6).toString('hex')}`;

  /** Bind and Execute frames are read whole (see setReadsNames). */
  private readingNames = false;

  constructor(private readonly guard: GuardContext) {
    this.context = contextKey(guard.policy);
    this.protocol.onBound = (portal, generation) => {
      if (generation === this.generation) this.portalsBoundSince?.add(portal);
    };
    this.protocol.onLost = () => {
      if (this.generation > 0) this.guard.onLostTrack?.();
    };
  }

  /** A fresher catalog snapshot of this session's database: later statements resolve against it. */
  /** `readAt`: when the snapshot's read began; it ends the wait for one read after this session's schema change. */
  updateCatalog(catalog: Catalog, readAt: number): void {
    this.guard.catalog = catalog;
    if (this.awaitingCatalogSince !== undefined && readAt >= this.awaitingCatalogSince) this.awaitingCatalogSince = undefined;
  }

  /**
   * The session may hold plans pgward cannot redo under new policies: SQL-level prepared
   * statements or cursors, or protocol state it lost track of. Such a session must reconnect when
   * its policies change.
   */
  get holdsFixedPlans(): boolean {
    return this.holdsSqlLevelPlans || this.protocol.lost;
  }

  /** Whether a policy context decides exactly as the current one. */
  sameContext(policy: PolicyContext): boolean {
    return contextKey(policy) === this.context;
  }

  /**
   * New policies took effect: later statements are decided under them, and protocol-level
   * statements planned before are prepared again before their next use (see onBindOrDescribe).
   */
  updatePolicy(policy: PolicyContext, bundle: PolicyBundle): void {
    const context = contextKey(policy);
    const changed = context !== this.context;
    this.guard.policy = policy;
    this.guard.bundle = bundle;
    this.context = context;
    if (!changed) return;
    this.generation += 1;
    this.portalsInBatch.clear();
    const portalsMayExist = !this.protocol.idle || this.protocol.batchOpen || this.protocol.transactionStatus !== IDLE;
    this.portalsBoundSince = portalsMayExist ? new Set() : undefined;
    this.readNames(true);
  }

  private readNames(on: boolean): void {
    if (this.readingNames === on) return;
    this.readingNames = on;
    this.guard.setReadsNames?.(on);
  }

  /** Nothing planned under older policies is left: Bind and Execute names no longer matter. */
  private settledAfterChange(): boolean {
    if (!this.protocol.idle || this.portalsBoundSince !== undefined || this.refusedStatements.size > 0) return false;
    for (const text of this.protocol.prepared.values()) if (text.generation !== this.generation) return false;
    return true;
  }

  /** Whether a refused statement's error is still on its way back. */
  get awaitingErrors(): boolean {
    return this.pending.size > 0;
  }

  /** Client → upstream: Query, Parse, Describe, Close, Sync, FunctionCall; Bind and Execute after a policy change. */
  readonly onClientFrame = (type: number, frame: Buffer): FrameVerdict => {
    switch (type) {
      case Frontend.Sync:
        this.requests += 1;
        this.protocol.sentSync();
        this.portalsInBatch.clear();
        return undefined;
      case Frontend.Query:
        return this.onQuery(frame);
      case Frontend.Parse:
        return this.onParse(frame);
      case Frontend.Bind:
      case Frontend.Describe:
        return this.onBindOrDescribe(type, frame);
      case Frontend.Execute:
        return this.onExecute(frame);
      case Frontend.Close: {
        const target = decodeTarget(frame);
        if (target?.kind === 'S') this.refusedStatements.delete(target.name);
        this.protocol.sentClose(target?.kind === 'S' ? target.name : undefined);
        return undefined;
      }
      default: {
        // FunctionCall: the server answers a Query with ErrorResponse + ReadyForQuery, as it would the call.
        const replacement = encodeQuery(this.refuse(Errors.functionCallRefused(), 'FunctionCall'));
        this.requests += 1;
        this.protocol.sentQuery();
        return replacement;
      }
    }
  };

  /** Client → upstream frames told by type only: Bind and Execute (unless their names matter), CopyDone, CopyFail. */
  readonly onClientType = (type: number): void => {
    if (type === Frontend.Bind) this.protocol.sentBind(undefined, this.generation);
    else if (type === Frontend.Execute) this.protocol.sentExecute();
    else if (type === Frontend.CopyDone || type === Frontend.CopyFail) this.protocol.sentCopyEnd();
  };

  /**
   * Upstream → client replies that answer requests (ParseComplete, BindComplete, CloseComplete,
   * RowDescription, NoData, CommandComplete, EmptyQueryResponse, PortalSuspended): those answering
   * a message pgward inserted are dropped.
   */
  readonly onServerReply = (type: number): FrameVerdict => (this.protocol.reply(type) ? null : undefined);

  private onQuery(frame: Buffer): FrameVerdict {
    const sql = decodeQuery(frame);
    const decision = this.checkExecutes(this.admit(this.decide(sql, 'simple')));
    this.notePlannedState(decision);
    const verdict: FrameVerdict =
      decision.kind === 'forward' ? undefined : decision.kind === 'rewrite' ? encodeQuery(decision.sql) : encodeQuery(this.refuse(denial(decision), sql));
    this.requests += 1;
    this.protocol.sentQuery();
    return verdict;
  }

  private onParse(frame: Buffer): FrameVerdict {
    const parse = decodeParse(frame);
    if (!parse) {
      // Answered as a Parse would be (no extra ReadyForQuery in the pipeline).
      this.protocol.sentParse('', undefined);
      return encodeParse({ name: '', query: this.refuse(Errors.protocolViolationStatement('invalid Parse message'), ''), parameterTypes: [] });
    }
    const decision = this.checkExecutes(this.admit(this.decide(parse.query, 'extended')));
    this.notePlannedState(decision);
    this.refusedStatements.delete(parse.name);
    if (decision.kind === 'deny') {
      this.protocol.sentParse(parse.name, undefined);
      return encodeParse({ name: parse.name, query: this.refuse(denial(decision), parse.query), parameterTypes: [] });
    }
    this.protocol.sentParse(parse.name, { query: parse.query, parameterTypes: parse.parameterTypes, generation: this.generation });
    return decision.kind === 'forward' ? undefined : encodeParse({ ...parse, query: decision.sql });
  }

  /**
   * Bind, and Describe of a statement or portal. A statement planned under older policies is
   * prepared again right before its use when nothing else is on its way (the replies to pgward's
   * Close and Parse then come first, and are dropped); behind other requests its use is refused.
   * A portal that may have been planned under older policies is refused.
   */
  private onBindOrDescribe(type: number, frame: Buffer): FrameVerdict {
    let statement: string | undefined;
    let portal: string | undefined;
    if (type === Frontend.Bind) {
      const names = decodeBindNames(frame);
      statement = names?.statement;
      portal = names?.portal;
    } else {
      const target = decodeTarget(frame);
      if (target?.kind === 'S') statement = target.name;
      else if (target && !this.portalAllowed(target.name)) return this.refuseInPlace(staleError('portal', target.name));
    }
    if (this.lostAfterChange) return this.refuseInPlace(LOST_TRACK);
    const use = (): void => {
      if (type !== Frontend.Bind) return this.protocol.sentDescribe();
      this.protocol.sentBind(portal, this.generation);
      if (portal !== undefined) this.portalsInBatch.add(portal);
    };
    const { pending, texts: candidates } = statement === undefined ? NO_STATEMENT : this.statementTexts(statement);
    if (statement !== undefined && this.generation > 0 && candidates.length === 0 && !pending && !this.sqlPreparedSinceChange.has(statement)) {
      return this.refuseInPlace(Errors.statementRefused('26000', statement === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${statement}" does not exist`));
    }
    if (statement === undefined || candidates.every((t) => t.generation === this.generation)) {
      use();
      return undefined;
    }
    // Behind other requests, or after messages since the last Sync (which may have ended or aborted
    // the transaction the last ReadyForQuery reported), the use is refused.
    if (!this.protocol.idle || this.protocol.batchOpen) return this.refuseInPlace(staleError('prepared statement', statement));
    // An aborted transaction block refuses the use itself (25P02): nothing runs.
    if (this.protocol.transactionStatus === FAILED) {
      use();
      return undefined;
    }
    // Nothing is on its way, so there is one candidate: the server's statement, or one pgward closed.
    const text = candidates[0]!;
    const decision = this.checkExecutes(this.admit(this.decide(text.query, 'extended')));
    this.notePlannedState(decision);
    this.protocol.sentClose(statement, true);
    let parse: Buffer;
    if (decision.kind === 'deny') {
      // The old statement goes; the refusal answers in its place, at every use until it is prepared again.
      this.refusedStatements.set(statement, text);
      this.protocol.sentParse(statement, undefined);
      parse = encodeParse({ name: statement, query: this.refuse(denial(decision), text.query), parameterTypes: [] });
    } else {
      this.refusedStatements.delete(statement);
      this.protocol.sentParse(statement, { ...text, generation: this.generation }, true);
      parse = encodeParse({ name: statement, query: decision.kind === 'rewrite' ? decision.sql : text.query, parameterTypes: text.parameterTypes });
    }
    use();
    return Buffer.concat([encodeCloseStatement(statement), parse, frame]);
  }

  private onExecute(frame: Buffer): FrameVerdict {
    if (this.lostAfterChange) return this.refuseInPlace(LOST_TRACK);
    if (this.portalsBoundSince !== undefined) {
      const target = decodeTarget(frame);
      if (target && !this.portalAllowed(target.name)) return this.refuseInPlace(staleError('portal', target.name));
    }
    this.protocol.sentExecute();
    return undefined;
  }

  /**
   * The statements a use of `name` may find (protocol-state.ts), and one pgward closed because the
   * policies refuse it, marked older than any generation so that it is prepared again (and refused
   * again, or allowed).
   */
  private statementTexts(name: string): StatementCandidates {
    const found = this.protocol.statement(name);
    const refused = found.pending ? undefined : this.refusedStatements.get(name);
    return refused ? { pending: false, texts: [...found.texts, { ...refused, generation: -1 }] } : found;
  }

  /** Replies stopped matching after a policy change: no statement or portal use can be vouched for. */
  private get lostAfterChange(): boolean {
    return this.protocol.lost && this.generation > 0;
  }

  /** Whether a portal may run: no policy change since portals could exist, or it was bound since. */
  private portalAllowed(portal: string): boolean {
    return this.portalsBoundSince === undefined || this.portalsBoundSince.has(portal) || this.portalsInBatch.has(portal);
  }

  /** A refusal in place of an extended-protocol message: a Parse that fails, so the server skips the rest until Sync. */
  private refuseInPlace(error: PgwardError): Buffer {
    this.protocol.sentParse(this.refusalStatement, undefined);
    return encodeParse({ name: this.refusalStatement, query: this.refuse(error, ''), parameterTypes: [] });
  }

  /**
   * After a policy change, SQL that runs what the protocol prepared is checked like the protocol
   * messages: EXECUTE of a statement planned under older policies, and FETCH or MOVE of a portal
   * the fence does not allow, are refused; they would run as planned.
   */
  private checkExecutes(decision: RewriteDecision): RewriteDecision {
    if (decision.kind === 'deny' || this.generation === 0) return decision;
    for (const [index, s] of decision.statements.entries()) {
      let error: PgwardError | undefined;
      if (s.executes !== undefined && (this.lostAfterChange || this.statementTexts(s.executes).texts.some((t) => t.generation !== this.generation))) {
        error = staleError('prepared statement', s.executes);
      } else if (s.fetches !== undefined && (this.lostAfterChange || !this.portalAllowed(s.fetches))) {
        error = staleError('portal', s.fetches);
      }
      if (error) return { kind: 'deny', sqlstate: error.code, message: error.message, statementIndex: index };
    }
    return decision;
  }

  /** Upstream → client ErrorResponse frames: a marker's syntax error becomes the refusal it stands for. */
  readonly onServerError = (frame: Buffer): FrameVerdict => {
    this.protocol.reply(Backend.ErrorResponse);
    const fields = decodeErrorFields(frame);
    // A relation or column the snapshot believed in is gone (or new): time for a fresh catalog.
    if (STALE_CATALOG_CODES.has(fields.get('C') ?? '')) this.guard.onCatalogChange();
    if (this.pending.size === 0) return undefined;
    const message = fields.get('M') ?? '';
    const at = message.indexOf(this.markerPrefix);
    if (at < 0) return undefined;
    const marker = /^[a-z0-9_]+/.exec(message.slice(at))![0];
    const refusal = this.pending.get(marker);
    if (!refusal) return undefined;
    this.pending.delete(marker);
    return encodeErrorResponse(refusal.error);
  };

  /**
   * After each ReadyForQuery: refusals of requests now finished are settled,
   * answered or not (after an error the server skips the rest of a pipeline).
   */
  readonly onReadyForQuery = (status: number): void => {
    this.readies += 1;
    this.protocol.reply(Backend.ReadyForQuery, status);
    // Idle outside a transaction, the server holds no portal but SQL-level WITH HOLD cursors.
    if (this.protocol.idle && !this.protocol.batchOpen && status === IDLE) this.portalsBoundSince = undefined;
    if (this.readingNames && this.settledAfterChange()) this.readNames(false);
    if (this.schemaChangeInFlight) {
      this.schemaChangeInFlight = false;
      this.awaitingCatalogSince = Date.now();
      this.guard.onOwnSchemaChange();
    }
    if (this.pending.size === 0) return;
    for (const [marker, refusal] of this.pending) {
      if (refusal.answeredBy <= this.readies) this.pending.delete(marker);
    }
  };

  /** After a statement completed: DDL may have changed what the catalog holds. */
  readonly onCommandComplete = (tag: string): void => {
    this.protocol.reply(Backend.CommandComplete);
    if (tag === 'SELECT') return;
    if (DDL_COMMAND.test(tag)) this.guard.onCatalogChange();
    if (tag === 'DEALLOCATE ALL' || tag === 'DISCARD ALL') {
      this.protocol.forgetNamed();
      for (const name of [...this.refusedStatements.keys()]) if (name !== '') this.refusedStatements.delete(name);
    }
  };

  /**
   * Schema changes are barriers: a statement that changes the catalog must come
   * alone (the others of its message were decided against the catalog before
   * it), and until the fresh snapshot arrives no statement that reads a table
   * is decided against the stale one. Statements that read no table — COMMIT,
   * ROLLBACK, SET — go on.
   */
  private admit(decision: RewriteDecision): RewriteDecision {
    const retry = (statementIndex: number): RewriteDecision => ({
      kind: 'deny',
      sqlstate: '55000',
      message: 'the schema changed and pgward is still reading it; retry the statement',
      statementIndex,
    });
    if (decision.kind === 'deny') {
      // A name the stale snapshot lacks may be the one just created.
      const stale = this.awaitingCatalogSince !== undefined && STALE_CATALOG_CODES.has(decision.sqlstate);
      return stale ? retry(decision.statementIndex) : decision;
    }
    const reads = decision.statements.findIndex((statement) => statement.tables.length > 0);
    if (this.awaitingCatalogSince !== undefined && reads >= 0) return retry(reads);
    const changes = decision.statements.findIndex((statement) => statement.action === 'ddl');
    if (changes >= 0) {
      if (decision.statements.length > 1) {
        return { kind: 'deny', sqlstate: '0A000', message: 'send statements that change the schema on their own, not with others', statementIndex: changes };
      }
      this.schemaChangeInFlight = true;
    }
    return decision;
  }

  /** PREPARE and DECLARE CURSOR leave state planned under the current policies. */
  private notePlannedState(decision: RewriteDecision): void {
    if (decision.kind === 'deny') return;
    for (const statement of decision.statements) {
      if (statement.deferred === undefined) continue;
      this.holdsSqlLevelPlans = true;
      if (statement.deferred.kind === 'prepared' && this.generation > 0) this.sqlPreparedSinceChange.add(statement.deferred.name);
    }
  }

  private decide(sql: string, protocol: 'simple' | 'extended'): RewriteDecision {
    const { guard } = this;
    const scope = { context: this.context, catalog: guard.catalog.version, searchPath: guard.searchPath, protocol };
    try {
      return guard.planCache.lookup(scope, sql, (text) =>
        planRewrite({
          sql: text,
          protocol,
          policy: guard.policy,
          bundle: guard.bundle,
          identity: guard.identity,
          catalog: guard.catalog,
          searchPath: guard.searchPath,
        }),
      );
    } catch (err) {
      // A fault of pgward's, not the client's: refuse this statement and keep the session.
      guard.log.error('statement check failed', { user: guard.identity.user, error: err instanceof Error ? err.message : String(err) });
      return { kind: 'deny', sqlstate: 'XX000', message: 'pgward could not check the statement', statementIndex: 0 };
    }
  }

  private refuse(error: PgwardError, sql: string): string {
    const marker = `${this.markerPrefix}${this.sequence++}`;
    this.pending.set(marker, { error, answeredBy: this.requests + 1 });
    // The statement text may carry personal data in literals: it is for the access log, not this one.
    this.guard.log.info('statement refused', { user: this.guard.identity.user, code: error.code, reason: error.message, bytes: sql.length });
    return marker;
  }
}

function denial(decision: Extract<RewriteDecision, { kind: 'deny' }>): PgwardError {
  return Errors.statementRefused(decision.sqlstate, decision.message, decision.detail);
}
