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
  /**
   * Told when this session's own schema change completed: a fresh snapshot must
   * reach the guard (updateCatalog) before statements that read tables are decided.
   */
  onOwnSchemaChange: () => void;
}

interface PreparedText {
  readonly query: string;
  readonly parameterTypes: readonly number[];
  readonly generation: number;
}

/** Drivers keep a few hundred statements per connection at most; past this, a policy change ends the session. */
const MAX_TRACKED_STATEMENTS = 10_000;

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
  /** A statement name no client uses: refusals in place of Bind, Describe or Execute are Parses of it. */
  private readonly refusalStatement = `pgward_refused_${randomBytes(6).toString('hex')}`;
  private sequence = 0;
  /** A schema change of this session was forwarded; its ReadyForQuery has not come back yet. */
  private schemaChangeInFlight = false;
  /** Since when the session waits for a catalog read begun after its own schema change. */
  private awaitingCatalogSince: number | undefined;
  private context: string;
  /** SQL-level PREPARE or DECLARE CURSOR ran: state pgward cannot plan again when the policies change. */
  private holdsSqlLevelState = false;
  /**
   * Protocol-level prepared statements ('' is the unnamed one) by name: the text the client sent and
   * the policy generation the server's statement was planned under. Close does not drop an entry: a
   * Close skipped after an error would leave the server's statement behind, planned as it was.
   */
  private readonly prepared = new Map<string, PreparedText>();
  /** Bumped whenever the policies for this identity change. */
  private generation = 0;
  /** More statement names than tracked: the session cannot be moved to new policies. */
  private untracked = false;
  /** Extended-protocol messages went upstream since the last Sync: replies to them may be on the way. */
  private midBatch = false;
  /** Replies to messages pgward inserted (CloseComplete, ParseComplete), dropped before the client sees them. */
  private readonly swallow: number[] = [];
  /**
   * After a policy change in the middle of a transaction, portals bound before it may still exist
   * and would run as planned: until the transaction ends, only portals bound in the same batch may
   * run (the server skips the rest of a batch after a failed Bind, so those are surely new).
   */
  private portalFence = false;
  /** Portals bound since the last Sync. */
  private readonly batchPortals = new Set<string>();
  private transactionStatus = 0x49; // 'I'

  constructor(private readonly guard: GuardContext) {
    this.context = contextKey(guard.policy);
  }

  /** A fresher catalog snapshot of this session's database: later statements resolve against it. */
  /** `readAt`: when the snapshot's read began; it ends the wait for one read after this session's schema change. */
  updateCatalog(catalog: Catalog, readAt: number): void {
    this.guard.catalog = catalog;
    if (this.awaitingCatalogSince !== undefined && readAt >= this.awaitingCatalogSince) this.awaitingCatalogSince = undefined;
  }

  /**
   * The session holds plans pgward cannot redo under new policies: SQL-level prepared statements
   * or cursors (they run as planned), or more protocol-level statements than it tracks.
   */
  get holdsFixedPlans(): boolean {
    return this.holdsSqlLevelState || this.untracked;
  }

  /** Whether a policy context decides exactly as the current one. */
  sameContext(policy: PolicyContext): boolean {
    return contextKey(policy) === this.context;
  }

  /**
   * New policies took effect: later statements are decided under them, and protocol-level
   * statements prepared before are prepared again before they next run (see onClientFrame).
   */
  updatePolicy(policy: PolicyContext, bundle: PolicyBundle): void {
    const changed = !this.sameContext(policy);
    this.guard.policy = policy;
    this.guard.bundle = bundle;
    this.context = contextKey(policy);
    if (!changed) return;
    this.generation += 1;
    // Portals live until their transaction ends; none exist between exchanges outside a transaction.
    if (!(this.quiescent && this.transactionStatus === 0x49)) this.portalFence = true;
  }

  /** Whether a refused statement's error is still on its way back. */
  get awaitingErrors(): boolean {
    return this.pending.size > 0;
  }

  /** Client → upstream, for Query, Parse, Bind, Describe, Execute, Close, Sync and FunctionCall frames. */
  readonly onClientFrame = (type: number, frame: Buffer): FrameVerdict => {
    switch (type) {
      case Frontend.Sync:
        this.requests += 1;
        this.midBatch = false;
        this.batchPortals.clear();
        return undefined;
      case Frontend.Query:
        return this.onQuery(frame);
      case Frontend.Parse: {
        const verdict = this.onParse(frame);
        this.midBatch = true;
        return verdict;
      }
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Execute: {
        const verdict = this.onUse(type, frame);
        this.midBatch = true;
        return verdict;
      }
      case Frontend.Close:
        this.midBatch = true;
        return undefined;
      default: {
        // FunctionCall: the server answers a Query with ErrorResponse + ReadyForQuery, as it would the call.
        const replacement = encodeQuery(this.refuse(Errors.functionCallRefused(), 'FunctionCall'));
        this.requests += 1;
        return replacement;
      }
    }
  };

  /** Upstream → client ParseComplete and CloseComplete: those answering a message pgward inserted are dropped. */
  readonly onServerReply = (type: number): FrameVerdict => {
    if (this.swallow.length > 0 && this.swallow[0] === type) {
      this.swallow.shift();
      return null;
    }
    return undefined;
  };

  private onQuery(frame: Buffer): FrameVerdict {
    const sql = decodeQuery(frame);
    const decision = this.checkExecutes(this.admit(this.decide(sql, 'simple')));
    this.notePlannedState(decision);
    // A simple Query drops the unnamed statement (PostgreSQL's exec_simple_query), whatever follows.
    this.prepared.delete('');
    const verdict: FrameVerdict =
      decision.kind === 'forward' ? undefined : decision.kind === 'rewrite' ? encodeQuery(decision.sql) : encodeQuery(this.refuse(denial(decision), sql));
    this.requests += 1;
    return verdict;
  }

  private onParse(frame: Buffer): FrameVerdict {
    const parse = decodeParse(frame);
    // Answered as a Parse would be (no extra ReadyForQuery in the pipeline).
    if (!parse) return encodeParse({ name: '', query: this.refuse(Errors.protocolViolationStatement('invalid Parse message'), ''), parameterTypes: [] });
    const decision = this.checkExecutes(this.admit(this.decide(parse.query, 'extended')));
    this.notePlannedState(decision);
    if (decision.kind === 'deny') {
      // Any Parse of the unnamed statement first drops the previous one, a refused one too; a named
      // statement of that name, if the server has one, stays as it was.
      if (parse.name === '') this.prepared.delete('');
      return encodeParse({ name: parse.name, query: this.refuse(denial(decision), parse.query), parameterTypes: [] });
    }
    this.track(parse.name, parse.query, parse.parameterTypes);
    if (decision.kind === 'forward') return undefined;
    return encodeParse({ ...parse, query: decision.sql });
  }

  /**
   * Records a statement the server is about to prepare. If a statement of that name was planned
   * under older policies, the entry stays marked old: the server refuses a Parse of a name it still
   * holds, so the old plan may survive this Parse, and the next use must prepare it again.
   */
  private track(name: string, query: string, parameterTypes: readonly number[]): void {
    const previous = this.prepared.get(name);
    if (!previous && this.prepared.size >= MAX_TRACKED_STATEMENTS) {
      this.untracked = true;
      return;
    }
    const generation = name !== '' && previous ? Math.min(previous.generation, this.generation) : this.generation;
    this.prepared.set(name, { query, parameterTypes, generation });
  }

  /**
   * Bind and Describe of a statement, Describe and Execute of a portal. A statement planned under
   * older policies is prepared again right before its use, when nothing else is on the way (the
   * replies to pgward's Close and Parse then come first and are dropped); otherwise its use is
   * refused. A portal bound before a policy change in this transaction is refused.
   */
  private onUse(type: number, frame: Buffer): FrameVerdict {
    if (this.generation === 0) return undefined;
    let statement: string;
    let bound: string | undefined;
    if (type === Frontend.Bind) {
      const names = decodeBindNames(frame);
      if (!names) return undefined; // the server answers a malformed Bind itself
      statement = names.statement;
      bound = names.portal;
    } else {
      const target = decodeTarget(frame);
      if (!target) return undefined;
      if (target.kind === 'P') {
        if (!this.portalFence || this.batchPortals.has(target.name)) return undefined;
        return this.refuseInPlace(Errors.statementRefused('0A000', `portal "${target.name}" may have been planned under policies that have since changed; bind it again`));
      }
      statement = target.name;
    }
    const entry = this.prepared.get(statement);
    if (!entry || entry.generation === this.generation) {
      if (bound !== undefined) this.batchPortals.add(bound);
      return undefined;
    }
    if (!this.quiescent) {
      return this.refuseInPlace(Errors.statementRefused('0A000', `prepared statement "${statement}" was planned under policies that have since changed; prepare it again`));
    }
    const decision = this.checkExecutes(this.admit(this.decide(entry.query, 'extended')));
    this.swallow.push(Backend.CloseComplete);
    if (decision.kind === 'deny') {
      // The old statement goes; the refusal answers in its place, at every use until it is prepared again.
      const marker = encodeParse({ name: statement, query: this.refuse(denial(decision), entry.query), parameterTypes: [] });
      return Buffer.concat([encodeCloseStatement(statement), marker, frame]);
    }
    this.swallow.push(Backend.ParseComplete);
    this.prepared.set(statement, { ...entry, generation: this.generation });
    if (bound !== undefined) this.batchPortals.add(bound);
    const query = decision.kind === 'rewrite' ? decision.sql : entry.query;
    return Buffer.concat([encodeCloseStatement(statement), encodeParse({ name: statement, query, parameterTypes: entry.parameterTypes }), frame]);
  }

  /** A refusal that takes the place of an extended-protocol message: the server skips the rest until Sync. */
  private refuseInPlace(error: PgwardError): Buffer {
    return encodeParse({ name: this.refusalStatement, query: this.refuse(error, ''), parameterTypes: [] });
  }

  /** No reply is on the way: every request was answered and no extended message went since the last Sync. */
  private get quiescent(): boolean {
    return this.requests === this.readies && !this.midBatch && this.swallow.length === 0;
  }

  /** EXECUTE of a protocol-level statement planned under older policies is refused: it would run as planned. */
  private checkExecutes(decision: RewriteDecision): RewriteDecision {
    if (decision.kind === 'deny' || this.generation === 0) return decision;
    const index = decision.statements.findIndex((s) => {
      const entry = s.executes === undefined ? undefined : this.prepared.get(s.executes);
      return entry !== undefined && entry.generation !== this.generation;
    });
    if (index < 0) return decision;
    const name = decision.statements[index]!.executes!;
    return {
      kind: 'deny',
      sqlstate: '0A000',
      message: `prepared statement "${name}" was planned under policies that have since changed; prepare it again`,
      statementIndex: index,
    };
  }

  /** Upstream → client ErrorResponse frames: a marker's syntax error becomes the refusal it stands for. */
  readonly onServerError = (frame: Buffer): FrameVerdict => {
    // pgward's Close never fails: an error while replies are awaited is its Parse's, and the
    // server skips the rest until Sync, so no ParseComplete follows.
    this.swallow.length = 0;
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
    this.transactionStatus = status;
    if (status === 0x49) this.portalFence = false;
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
    if (DDL_COMMAND.test(tag)) this.guard.onCatalogChange();
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
    if (decision.kind !== 'deny' && decision.statements.some((statement) => statement.deferred !== undefined)) this.holdsSqlLevelState = true;
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
