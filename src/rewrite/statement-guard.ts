import { randomBytes } from 'node:crypto';
import type { Identity } from '../auth/identity.js';
import { Errors, type PgwardError } from '../errors.js';
import type { Logger } from '../log.js';
import { contextKey, type PolicyContext } from '../policy/decide.js';
import type { PolicyBundle } from '../policy/load.js';
import { decodeErrorFields, encodeErrorResponse } from '../protocol/backend-messages.js';
import { Frontend } from '../protocol/codes.js';
import type { FrameVerdict } from '../protocol/frame-scanner.js';
import { decodeParse, decodeQuery, encodeParse, encodeQuery } from '../protocol/frontend-messages.js';
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
  /**
   * A prepared statement or cursor (protocol-level or SQL-level, the unnamed statement included)
   * may exist that was planned under the current policies. Never cleared: whether a Close, a
   * Parse that replaces the unnamed statement or a simple Query (which drops it) took effect is
   * only known from replies, and after an error the server skips the rest of a batch unseen.
   */
  private holdsPlans = false;

  constructor(private readonly guard: GuardContext) {
    this.context = contextKey(guard.policy);
  }

  /** A fresher catalog snapshot of this session's database: later statements resolve against it. */
  /** `readAt`: when the snapshot's read began; it ends the wait for one read after this session's schema change. */
  updateCatalog(catalog: Catalog, readAt: number): void {
    this.guard.catalog = catalog;
    if (this.awaitingCatalogSince !== undefined && readAt >= this.awaitingCatalogSince) this.awaitingCatalogSince = undefined;
  }

  /** Prepared statements or cursors may exist that were planned under the current policies. */
  get holdsPlannedState(): boolean {
    return this.holdsPlans;
  }

  /** Whether a policy context decides exactly as the current one. */
  sameContext(policy: PolicyContext): boolean {
    return contextKey(policy) === this.context;
  }

  /** New policies took effect: later statements are decided under them. */
  updatePolicy(policy: PolicyContext, bundle: PolicyBundle): void {
    this.guard.policy = policy;
    this.guard.bundle = bundle;
    this.context = contextKey(policy);
  }

  /** Whether a refused statement's error is still on its way back. */
  get awaitingErrors(): boolean {
    return this.pending.size > 0;
  }

  /** Client → upstream, for Query, Parse and FunctionCall frames. */
  readonly onClientFrame = (type: number, frame: Buffer): FrameVerdict => {
    if (type === Frontend.Sync) {
      this.requests += 1;
      return undefined;
    }
    if (type === Frontend.Query) {
      const sql = decodeQuery(frame);
      const decision = this.admit(this.decide(sql, 'simple'));
      this.notePlannedState(decision);
      const verdict: FrameVerdict =
        decision.kind === 'forward' ? undefined : decision.kind === 'rewrite' ? encodeQuery(decision.sql) : encodeQuery(this.refuse(denial(decision), sql));
      this.requests += 1;
      return verdict;
    }
    if (type === Frontend.Parse) {
      const parse = decodeParse(frame);
      // Answered as a Parse would be (no extra ReadyForQuery in the pipeline).
      if (!parse) return encodeParse({ name: '', query: this.refuse(Errors.protocolViolationStatement('invalid Parse message'), ''), parameterTypes: [] });
      const decision = this.admit(this.decide(parse.query, 'extended'));
      if (decision.kind !== 'deny') this.holdsPlans = true;
      if (decision.kind === 'forward') return undefined;
      if (decision.kind === 'rewrite') return encodeParse({ ...parse, query: decision.sql });
      return encodeParse({ name: parse.name, query: this.refuse(denial(decision), parse.query), parameterTypes: [] });
    }
    // FunctionCall: the server answers a Query with ErrorResponse + ReadyForQuery, as it would the call.
    const replacement = encodeQuery(this.refuse(Errors.functionCallRefused(), 'FunctionCall'));
    this.requests += 1;
    return replacement;
  };

  /** Upstream → client ErrorResponse frames: a marker's syntax error becomes the refusal it stands for. */
  readonly onServerError = (frame: Buffer): FrameVerdict => {
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
  readonly onReadyForQuery = (): void => {
    this.readies += 1;
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
    if (decision.kind !== 'deny' && decision.statements.some((statement) => statement.deferred !== undefined)) this.holdsPlans = true;
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
