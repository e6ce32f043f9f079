import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { passthroughIdentity, sessionDeadline, type Identity } from '../auth/identity.js';
import type { OidcVerifier } from '../auth/oidc-verifier.js';
import { relayAuthentication } from '../auth/passthrough.js';
import { loginWithToken } from '../auth/token-login.js';
import type { CancelKeys } from '../client/cancel-keys.js';
import type { Opening } from '../client/first-packet.js';
import { Errors, type PgwardError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  decodeBackendKeyData,
  decodeErrorFields,
  decodeParameterStatus,
  encodeAuthentication,
  encodeBackendKeyData,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
} from '../protocol/backend-messages.js';
import { AuthCode, Backend, FRONTEND_TYPES, Frontend, typeTable } from '../protocol/codes.js';
import { encodeStartupMessage, type StartupParameters } from '../protocol/startup-packet.js';
import { TERMINATE_FRAME } from '../protocol/frontend-messages.js';
import { describe, openUpstream, type UpstreamConnection, type UpstreamTarget } from '../upstream/connect.js';
import { loginAsService } from '../upstream/login.js';
import { runInternalQuery } from '../upstream/internal-query.js';
import { createPolicyContext, isUnrestricted, type PolicyContext } from '../policy/decide.js';
import type { PolicyBundle } from '../policy/load.js';
import type { PolicyStore } from '../policy/store.js';
import { buildCatalog, CATALOG_SQL, type Catalog } from '../rewrite/catalog.js';
import type { CatalogCache } from '../rewrite/catalog-cache.js';
import type { PlanCache } from '../rewrite/plan-cache.js';
import { StatementGuard } from '../rewrite/statement-guard.js';
import { Pump } from './pump.js';
import { checkStartupSettings } from './startup-parameters.js';
import { ConnectionClosed, ProtocolError, SocketReader } from './socket-reader.js';

export type StartupOpening = Extract<Opening, { kind: 'startup' }>;

/** How clients prove who they are. */
export type SessionAuth =
  /** The database authenticates the client; the identity is the startup user. */
  | { mode: 'passthrough' }
  /** pgward verifies a token, then logs in upstream with its own service role. */
  | {
      mode: 'oidc';
      verifier: OidcVerifier;
      maxTokenBytes: number;
      oauthBearer: { issuer: string; scope: string } | undefined;
      /** A sidecar listener on loopback may take tokens without TLS. */
      plaintextAllowed: boolean;
      service: { user: string; password: string | undefined };
      terminateAtExpiry: boolean;
      maxSessionLifetimeSeconds: number | undefined;
    };

/** What restricted sessions need: policies, the pinned search_path, shared caches. */
export interface PolicyRuntime {
  store: PolicyStore;
  /** The pinned search_path as PostgreSQL writes it (may hold "$user"). */
  searchPath: readonly string[];
  planCache: PlanCache;
  catalogs: CatalogCache;
}

export interface SessionContext {
  auth: SessionAuth;
  policies: PolicyRuntime | undefined;
  upstream: UpstreamTarget;
  cancelKeys: CancelKeys;
  maxMessageSize: number;
  log: Logger;
}

/** Backend messages the relay looks at: errors (to notice FATALs) and ReadyForQuery (idle or not). */
const BACKEND_WATCH = typeTable([Backend.ErrorResponse, Backend.ReadyForQuery]);
/** Terminate is watched so the upstream's close that follows is not reported as a lost link. */
const CLIENT_WATCH = typeTable([Frontend.Terminate]);
/** For restricted sessions: every statement is decided, and completed DDL refreshes the catalog. */
/**
 * A guarded session follows every request and its replies (protocol-state.ts). Bind frames, which
 * can carry large parameters, and Execute frames, the most frequent, are only counted until a
 * policy change makes their names matter.
 */
const GUARDED_REQUESTS = [Frontend.Query, Frontend.Parse, Frontend.Describe, Frontend.Close, Frontend.FunctionCall, Frontend.Sync, Frontend.Terminate];
const GUARDED_FRONTEND = typeTable(GUARDED_REQUESTS, [Frontend.Bind, Frontend.Execute, Frontend.CopyDone, Frontend.CopyFail]);
const GUARDED_FRONTEND_WITH_NAMES = typeTable([...GUARDED_REQUESTS, Frontend.Bind, Frontend.Execute], [Frontend.CopyDone, Frontend.CopyFail]);
const GUARDED_BACKEND = typeTable(
  [Backend.ErrorResponse, Backend.ReadyForQuery, Backend.CommandComplete, Backend.ParseComplete, Backend.CloseComplete],
  [Backend.BindComplete, Backend.RowDescription, Backend.NoData, Backend.EmptyQueryResponse, Backend.PortalSuspended, Backend.CopyInResponse],
);
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * One client session, and the only place that knows the order of the stages:
 * startup → authentication → upstream → relay. Protocol §55.2 throughout.
 */
export class Session {
  readonly client: Socket | TLSSocket;
  private upstream: UpstreamConnection | undefined;
  private toUpstream: Pump | undefined;
  private toClient: Pump | undefined;
  private releaseCancelKey: (() => void) | undefined;
  private upstreamSentFatal = false;
  /** The client said goodbye: the upstream closing next is expected. */
  private clientTerminated = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Who this session acts for, once authenticated. */
  identity: Identity | undefined;
  /** Present when policies restrict this identity: decides every statement. */
  guard: StatementGuard | undefined;
  /** The policy context of a restricted identity, decided as soon as the identity is known. */
  private restriction: { policy: PolicyContext; bundle: PolicyBundle } | undefined;
  /** ParameterStatus values the server reported at startup. */
  private readonly serverParameters = new Map<string, string>();
  private closing = false;
  /** Transaction status from the last ReadyForQuery ('I', 'T', 'E'). */
  transactionStatus = 0;
  readonly user: string;
  readonly database: string;

  constructor(
    private readonly opening: StartupOpening,
    private readonly context: SessionContext,
    private readonly onEnd: (session: Session) => void,
  ) {
    this.client = opening.socket;
    const parameter = (name: string): string | undefined => opening.parameters.find(([n]) => n === name)?.[1];
    this.user = parameter('user') ?? '';
    this.database = parameter('database') ?? this.user;
    this.client.on('error', (error) => context.log.debug('client socket error', { error: error.message }));
    this.client.once('close', () => this.end('client closed'));
  }

  /** Bytes pgward holds for this session in socket write buffers, both directions. */
  get bufferedBytes(): number {
    return this.client.writableLength + (this.upstream?.socket.writableLength ?? 0);
  }

  async run(): Promise<void> {
    const { opening, context } = this;
    try {
      // We speak 3.0 and no protocol extensions; the client carries on with those (protocol §55.2.1).
      if (opening.minor > 0 || opening.protocolOptions.length > 0) {
        this.client.write(encodeNegotiateProtocolVersion(0, opening.protocolOptions));
      }
      const upstream = context.auth.mode === 'oidc' ? await this.startWithToken(context.auth) : await this.startPassthrough();
      if (!upstream) return;
      const ready = await this.relayStartupTail(upstream);
      if (!ready) return;
      // Policies are settled before the client hears it may send queries.
      this.guard = await this.restrict(upstream);
      this.client.write(ready);
      this.startRelay(opening.reader.detach(), upstream.detach());
    } catch (error) {
      if (error instanceof ProtocolError) return this.refuse(error.error);
      // The client left: nobody to tell. Otherwise the client hears why rather than seeing a bare EOF.
      if (this.closing) return;
      if (error instanceof ConnectionClosed) return this.refuse(Errors.upstreamLost());
      context.log.warn('session startup failed', { error: (error as Error).message });
      this.refuse(Errors.internal('pgward could not complete the session startup'));
    }
  }

  /** Passthrough: the client's own startup goes upstream and the database authenticates it. */
  private async startPassthrough(): Promise<SocketReader | undefined> {
    // In passthrough the identity is the startup user, known before the upstream is.
    this.identity = passthroughIdentity(this.user);
    this.restriction = this.restrictionFor(this.identity);
    const upstream = await this.connectUpstream(this.pinnedParameters(this.opening.parameters));
    if (!upstream) return undefined;
    const outcome = await relayAuthentication({
      client: this.opening.reader,
      clientEncrypted: this.opening.encrypted,
      upstream,
      upstreamCertificate: this.upstreamCertificate(),
    });
    if (outcome.kind === 'refused') return void this.closeWith(outcome.errorFrame);
    if (outcome.kind === 'failed') {
      this.context.log.warn('authentication failed', { user: this.user, reason: outcome.detail });
      return void this.refuse(outcome.error);
    }
    return upstream;
  }

  /**
   * OIDC: verify the client's token first — nothing reaches the upstream for a
   * client that fails — then log in upstream as pgward's service role.
   */
  private async startWithToken(auth: Extract<SessionAuth, { mode: 'oidc' }>): Promise<SocketReader | undefined> {
    if (!this.opening.encrypted && !auth.plaintextAllowed) return void this.refuse(Errors.tokenOverPlaintext());
    const login = await loginWithToken(this.opening.reader, {
      verifier: auth.verifier,
      startupUser: this.user,
      remoteAddress: this.client.remoteAddress,
      maxTokenBytes: auth.maxTokenBytes,
      oauthBearer: auth.oauthBearer,
    });
    if (login.kind === 'discovery') return void this.end('oauth discovery');
    if (login.kind === 'refused') {
      this.context.log.warn('token refused', { user: this.user, address: this.client.remoteAddress, reason: login.reason, detail: login.detail });
      return void this.refuse(login.error);
    }
    this.identity = login.identity;
    this.restriction = this.restrictionFor(this.identity);

    // The upstream role comes from configuration, never from the client.
    const parameters: Array<[string, string]> = this.opening.parameters
      .filter(([name]) => name !== 'user' && name !== 'database')
      .map(([name, value]) => [name, value]);
    parameters.unshift(['user', auth.service.user], ['database', this.database]);
    const upstream = await this.connectUpstream(this.pinnedParameters(parameters));
    if (!upstream) return undefined;
    const outcome = await loginAsService(upstream, auth.service, this.upstreamCertificate());
    if (outcome.kind === 'refused') {
      const fields = decodeErrorFields(outcome.errorFrame);
      // Errors about the database itself (e.g. 3D000) help the client; our own credentials failing does not.
      if (!fields.get('C')?.startsWith('28')) return void this.closeWith(outcome.errorFrame);
      this.context.log.error('upstream refused the service login', { user: auth.service.user, error: fields.get('M') });
      return void this.refuse(Errors.upstreamUnavailable('the upstream refused pgward\'s service login'));
    }
    if (outcome.kind === 'failed') {
      this.context.log.error('service login failed', { user: auth.service.user, error: outcome.detail });
      return void this.refuse(Errors.upstreamUnavailable('pgward could not log in to the upstream'));
    }
    this.client.write(encodeAuthentication(AuthCode.Ok));
    this.armDeadline(auth);
    return upstream;
  }

  private async connectUpstream(parameters: StartupParameters): Promise<SocketReader | undefined> {
    try {
      this.upstream = await openUpstream(this.context.upstream);
    } catch (error) {
      this.context.log.warn('upstream connection failed', { upstream: describe(this.context.upstream.address), error: (error as Error).message });
      return void this.refuse(Errors.upstreamUnavailable((error as Error).message));
    }
    if (this.closing) {
      // The client left while we connected: this connection has no session to serve.
      this.upstream.socket.destroy();
      return undefined;
    }
    const socket = this.upstream.socket;
    socket.on('error', (error) => this.context.log.debug('upstream socket error', { error: error.message }));
    socket.once('close', () => this.onUpstreamClosed());
    socket.write(encodeStartupMessage(parameters));
    return new SocketReader(socket, this.context.maxMessageSize);
  }

  private upstreamCertificate() {
    return this.upstream?.encrypted ? (this.upstream.socket as TLSSocket).getPeerX509Certificate() : undefined;
  }

  /** Ends the session when its token expires or its maximum lifetime is reached. */
  private armDeadline(auth: Extract<SessionAuth, { mode: 'oidc' }>): void {
    const deadline = sessionDeadline(this.identity!, {
      connectedAt: Math.floor(Date.now() / 1000),
      terminateAtExpiry: auth.terminateAtExpiry,
      maxSessionLifetimeSeconds: auth.maxSessionLifetimeSeconds,
    });
    if (deadline === undefined) return;
    const expiredByToken = deadline === this.identity!.expiresAt;
    // setTimeout holds at most 2^31-1 ms; a longer deadline is re-armed when that fires.
    const fire = (): void => {
      const left = deadline * 1000 - Date.now();
      if (left > 0) {
        this.deadlineTimer = setTimeout(fire, Math.min(left, 2 ** 31 - 1));
        return;
      }
      this.context.log.info('session deadline reached', { user: this.user, reason: expiredByToken ? 'token expired' : 'maximum lifetime' });
      this.terminate(Errors.sessionExpired(expiredByToken ? 'the access token expired' : 'the session reached its maximum lifetime'));
    };
    fire();
  }

  /**
   * After AuthenticationOk: ParameterStatus and BackendKeyData (with our own key)
   * go to the client; the final ReadyForQuery is returned, not yet sent.
   */
  private async relayStartupTail(upstream: SocketReader): Promise<Buffer | undefined> {
    for (;;) {
      const frame = await upstream.readMessage();
      switch (frame[0]) {
        case Backend.BackendKeyData: {
          const upstreamKey = decodeBackendKeyData(frame);
          const issued = this.context.cancelKeys.issue({
            processId: upstreamKey.processId,
            upstreamSecretKey: upstreamKey.secretKey,
          });
          this.releaseCancelKey = issued.release;
          this.client.write(encodeBackendKeyData(upstreamKey.processId, issued.secretKey));
          continue;
        }
        case Backend.ErrorResponse:
          this.closeWith(frame);
          return undefined;
        case Backend.ReadyForQuery:
          this.transactionStatus = frame[5]!;
          return frame;
        case Backend.NegotiateProtocolVersion:
          continue; // we asked for plain 3.0; nothing to tell the client
        case Backend.ParameterStatus: {
          const [name, value] = decodeParameterStatus(frame);
          this.serverParameters.set(name, value);
          this.client.write(frame);
          continue;
        }
        default:
          this.client.write(frame);
      }
    }
  }

  /** The policy context when policies restrict this identity; undefined when they do not (or there are none). */
  private restrictionFor(identity: Identity): { policy: PolicyContext; bundle: PolicyBundle } | undefined {
    const runtime = this.context.policies;
    if (!runtime) return undefined;
    const { bundle, version } = runtime.store.current;
    const policy = createPolicyContext(bundle, identity, version);
    return isUnrestricted(policy) ? undefined : { policy, bundle };
  }

  /**
   * The startup parameters sent upstream. When pgward chose the upstream role
   * (OIDC) or rewrites the statements (restricted), the client's settings must
   * be on the allow-list; a restricted session also gets the pinned search_path
   * as a startup parameter, so RESET and DISCARD ALL return to it.
   */
  private pinnedParameters(parameters: StartupParameters): StartupParameters {
    const runtime = this.context.policies;
    if (this.restriction && setsSearchPath(parameters)) throw new ProtocolError(Errors.searchPathPinned());
    if (this.context.auth.mode === 'oidc' || this.restriction) {
      const check = checkStartupSettings(parameters, { searchPath: !this.restriction });
      if (!check.ok) throw new ProtocolError(Errors.startupSettingRefused(check.setting));
    }
    if (!this.restriction || !runtime) return parameters;
    return [...parameters, ['search_path', runtime.searchPath.join(', ')]];
  }

  /**
   * For a restricted identity: checks that the server reads statements as
   * pgward parsed them, makes sure a catalog snapshot exists, and returns the
   * guard that will decide every statement. Runs on the upstream connection
   * before the client hears it may send queries.
   */
  private async restrict(upstream: SocketReader): Promise<StatementGuard | undefined> {
    const runtime = this.context.policies;
    const restriction = this.restriction;
    if (!runtime || !restriction) return undefined;
    // pgward parses statements as UTF-8 with standard strings; a server reading the
    // same bytes otherwise (SJIS, backslash escapes) would run a different statement.
    const encoding = this.serverParameters.get('client_encoding');
    if (encoding !== 'UTF8') throw new ProtocolError(Errors.unsafeSessionSetting('client_encoding', encoding, 'UTF8'));
    const strings = this.serverParameters.get('standard_conforming_strings');
    if (strings !== 'on') throw new ProtocolError(Errors.unsafeSessionSetting('standard_conforming_strings', strings, 'on'));

    let catalog = runtime.catalogs.fresh(this.database);
    if (!catalog) {
      catalog = buildCatalog(await runInternalQuery(upstream, CATALOG_SQL));
      runtime.catalogs.store(this.database, catalog);
    }
    const upstreamRole = this.context.auth.mode === 'oidc' ? this.context.auth.service.user : this.user;
    return new StatementGuard({
      policy: restriction.policy,
      bundle: restriction.bundle,
      identity: this.identity!,
      catalog,
      searchPath: runtime.searchPath.map((schema) => (schema === '"$user"' || schema === '$user' ? upstreamRole : unquote(schema))),
      planCache: runtime.planCache,
      log: this.context.log,
      onCatalogChange: () => runtime.catalogs.markStale(this.database),
      // Deferred: this runs while a reply is being relayed.
      onLostTrack: () => setImmediate(() => this.terminate(Errors.sessionExpired('pgward lost track of the prepared statements of this session after a policy change'))),
      setReadsNames: (on) => {
        if (this.toUpstream) this.toUpstream.scanner.watch = on ? GUARDED_FRONTEND_WITH_NAMES : GUARDED_FRONTEND;
      },
      onOwnSchemaChange: () => {
        runtime.catalogs.markStale(this.database);
        // Without a service login there is no background refresh: the session ends, its client reconnects.
        // (After the ReadyForQuery being relayed has reached the client.)
        if (!runtime.catalogs.refreshes) {
          queueMicrotask(() => this.terminate(Errors.sessionExpired('this session changed the schema; reconnect to continue')));
        }
      },
    });
  }

  /** A fresher snapshot of some database's catalog: a guarded session of that database moves to it. */
  catalogUpdated(database: string, catalog: Catalog, readAt: number): void {
    if (database === this.database) this.guard?.updateCatalog(catalog, readAt);
  }

  /**
   * New policies took effect. A guarded session decides its next statements
   * under them; a session that was unrestricted but now is not cannot be
   * guarded mid-stream, so it ends and the client reconnects under the new rules.
   */
  policiesChanged(): void {
    const runtime = this.context.policies;
    if (!runtime || !this.identity || this.closing) return;
    const { bundle, version } = runtime.store.current;
    const policy = createPolicyContext(bundle, this.identity, version);
    if (!this.guard) {
      if (!isUnrestricted(policy)) this.terminate(Errors.sessionExpired('the policies for this identity changed'));
      return;
    }
    // SQL-level prepared statements and cursors would keep running as planned under the old
    // policies: a session that may hold any must reconnect. Protocol-level statements are
    // prepared again by the guard before their next use.
    if (this.guard.holdsFixedPlans && !this.guard.sameContext(policy)) {
      this.terminate(Errors.sessionExpired('the policies for this identity changed while it held SQL-level prepared statements or cursors'));
      return;
    }
    this.guard.updatePolicy(policy, bundle);
  }

  private startRelay(fromClient: Buffer, fromUpstream: Buffer): void {
    const upstreamSocket = this.upstream!.socket;
    const maxMessageSize = this.context.maxMessageSize;
    const guard = this.guard;
    this.toUpstream = new Pump(this.client, upstreamSocket, {
      maxMessageSize,
      validTypes: FRONTEND_TYPES,
      watch: guard ? GUARDED_FRONTEND : CLIENT_WATCH,
      onFrame: (type, frame) => {
        if (type === Frontend.Terminate) {
          this.clientTerminated = true;
          return undefined;
        }
        return guard?.onClientFrame(type, frame);
      },
      onType: (type) => guard?.onClientType(type),
      onInvalid: (error) => this.refuseMidSession(error),
    });
    this.toClient = new Pump(upstreamSocket, this.client, {
      maxMessageSize,
      watch: guard ? GUARDED_BACKEND : BACKEND_WATCH,
      onFrame: (type, frame) => {
        if (type === Backend.ReadyForQuery) {
          this.transactionStatus = frame[5]!;
          guard?.onReadyForQuery(frame[5]!);
        } else if (type === Backend.CommandComplete) {
          // SELECT is by far the most common tag and never changes the catalog: skip decoding it.
          const select = frame[5] === 0x53 && frame[6] === 0x45 && frame[7] === 0x4c;
          guard?.onCommandComplete(select ? 'SELECT' : frame.toString('utf8', 5, frame.length - 1));
        } else if (type === Backend.ParseComplete || type === Backend.CloseComplete) {
          return guard?.onServerReply(type);
        } else if (isFatal(frame)) this.upstreamSentFatal = true;
        else if (guard) return guard.onServerError(frame);
        return undefined;
      },
      onType: (type) => guard?.onServerReply(type),
      onInvalid: (error) => this.refuseMidSession(error),
    });
    this.toClient.start(fromUpstream);
    this.toUpstream.start(fromClient);
  }

  /** A malformed frame mid-session: tell the client if we can, then close both sides. */
  private refuseMidSession(error: PgwardError): void {
    this.context.log.warn('protocol violation', { user: this.user, error: error.message });
    this.toUpstream?.stop();
    this.toClient?.stop();
    // Our error can only be framed in if the client is not in the middle of a backend message.
    if (this.toClient?.scanner.atBoundary !== false) this.client.end(encodeErrorResponse(error));
    else this.client.destroy();
    this.end('protocol violation');
  }

  /** Ends the session at the grace deadline of a shutdown, as PostgreSQL's fast shutdown does. */
  terminate(error: PgwardError = Errors.adminShutdown()): void {
    if (this.closing) return;
    if (this.toClient === undefined || this.toClient.scanner.atBoundary) this.client.end(encodeErrorResponse(error));
    else this.client.destroy();
    this.end('terminated');
  }

  private onUpstreamClosed(): void {
    if (this.closing) return;
    // A FATAL from the server (e.g. pg_terminate_backend) already told the client why,
    // and after Terminate the close is what the client asked for.
    if (!this.upstreamSentFatal && !this.clientTerminated && this.toClient?.scanner.atBoundary) {
      this.client.end(encodeErrorResponse(Errors.upstreamLost()));
    } else {
      this.client.end();
    }
    this.end('upstream closed');
  }

  private refuse(error: PgwardError): void {
    this.client.end(encodeErrorResponse(error));
    this.end(error.message);
  }

  private closeWith(frame: Buffer): void {
    this.client.end(frame);
    this.end('refused by upstream');
  }

  private end(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.toUpstream?.stop();
    this.toClient?.stop();
    clearTimeout(this.deadlineTimer);
    this.releaseCancelKey?.();
    const upstream = this.upstream?.socket;
    if (upstream && !upstream.destroyed) {
      // Let the upstream backend exit cleanly rather than log an unexpected EOF.
      if (this.toUpstream?.scanner.atBoundary) upstream.end(TERMINATE_FRAME);
      else upstream.destroy();
    }
    // Whatever the client still sends is not read any more (a refused client may keep streaming).
    this.opening.reader.detach();
    if (!this.client.destroyed) {
      if (!this.client.writableEnded) this.client.end();
      // A peer that never closes its side must not hold the socket (or a shutdown) forever.
      setTimeout(() => this.client.destroy(), CLOSE_TIMEOUT_MS).unref();
    }
    this.context.log.debug('session ended', { user: this.user, reason });
    this.onEnd(this);
  }
}

/** Whether the client tried to choose its own search_path at startup (directly or in `options`). */
function setsSearchPath(parameters: StartupParameters): boolean {
  return parameters.some(([name, value]) => name === 'search_path' || (name === 'options' && /search_path/i.test(value)));
}

function unquote(identifier: string): string {
  return identifier.startsWith('"') && identifier.endsWith('"') ? identifier.slice(1, -1).replace(/""/g, '"') : identifier.toLowerCase();
}

function isFatal(frame: Buffer): boolean {
  const severity = decodeErrorFields(frame).get('V');
  return severity === 'FATAL' || severity === 'PANIC';
}
