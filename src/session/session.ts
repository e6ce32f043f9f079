import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { relayAuthentication } from '../auth/passthrough.js';
import type { CancelKeys } from '../client/cancel-keys.js';
import type { Opening } from '../client/first-packet.js';
import { Errors, type PgwardError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  decodeBackendKeyData,
  decodeErrorFields,
  encodeBackendKeyData,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
} from '../protocol/backend-messages.js';
import { Backend, FRONTEND_TYPES, Frontend, typeTable } from '../protocol/codes.js';
import { encodeStartupMessage } from '../protocol/startup-packet.js';
import { describe, openUpstream, type UpstreamConnection, type UpstreamTarget } from '../upstream/connect.js';
import { Pump } from './pump.js';
import { ConnectionClosed, ProtocolError, SocketReader } from './socket-reader.js';

export type StartupOpening = Extract<Opening, { kind: 'startup' }>;

export interface SessionContext {
  upstream: UpstreamTarget;
  cancelKeys: CancelKeys;
  maxMessageSize: number;
  log: Logger;
}

/** Backend messages the relay looks at: errors (to notice FATALs) and ReadyForQuery (idle or not). */
const BACKEND_WATCH = typeTable([Backend.ErrorResponse, Backend.ReadyForQuery]);
const NOTHING = typeTable([]);
const TERMINATE = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);

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
    const client = opening.reader;
    try {
      // We speak 3.0 and no protocol extensions; the client carries on with those (protocol §55.2.1).
      if (opening.minor > 0 || opening.protocolOptions.length > 0) {
        this.client.write(encodeNegotiateProtocolVersion(0, opening.protocolOptions));
      }
      try {
        this.upstream = await openUpstream(context.upstream);
      } catch (error) {
        context.log.warn('upstream connection failed', { upstream: describe(context.upstream.address), error: (error as Error).message });
        return this.refuse(Errors.upstreamUnavailable((error as Error).message));
      }
      if (this.closing) return this.end('client closed');
      const upstreamSocket = this.upstream.socket;
      upstreamSocket.on('error', (error) => context.log.debug('upstream socket error', { error: error.message }));
      upstreamSocket.once('close', () => this.onUpstreamClosed());
      upstreamSocket.write(encodeStartupMessage(opening.parameters));
      const upstream = new SocketReader(upstreamSocket, context.maxMessageSize);

      const outcome = await relayAuthentication({
        client,
        clientEncrypted: opening.encrypted,
        upstream,
        upstreamCertificate: this.upstream.encrypted ? (upstreamSocket as TLSSocket).getPeerX509Certificate() : undefined,
      });
      if (outcome.kind === 'refused') return this.closeWith(outcome.errorFrame);
      if (outcome.kind === 'failed') {
        context.log.warn('authentication failed', { user: this.user, reason: outcome.detail });
        return this.refuse(outcome.error);
      }
      if (!(await this.relayStartupTail(upstream))) return;
      this.startRelay(client.detach(), upstream.detach());
    } catch (error) {
      if (error instanceof ProtocolError) return this.refuse(error.error);
      if (!(error instanceof ConnectionClosed)) context.log.warn('session startup failed', { error: (error as Error).message });
      this.end('startup failed');
    }
  }

  /** After AuthenticationOk: ParameterStatus, BackendKeyData (with our own key), then ReadyForQuery. */
  private async relayStartupTail(upstream: SocketReader): Promise<boolean> {
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
          return false;
        case Backend.ReadyForQuery:
          this.transactionStatus = frame[5]!;
          this.client.write(frame);
          return true;
        case Backend.NegotiateProtocolVersion:
          continue; // we asked for plain 3.0; nothing to tell the client
        default:
          this.client.write(frame);
      }
    }
  }

  private startRelay(fromClient: Buffer, fromUpstream: Buffer): void {
    const upstreamSocket = this.upstream!.socket;
    const maxMessageSize = this.context.maxMessageSize;
    this.toUpstream = new Pump(this.client, upstreamSocket, {
      maxMessageSize,
      validTypes: FRONTEND_TYPES,
      watch: NOTHING,
      onFrame: () => undefined,
      onInvalid: (error) => this.refuseMidSession(error),
    });
    this.toClient = new Pump(upstreamSocket, this.client, {
      maxMessageSize,
      watch: BACKEND_WATCH,
      onFrame: (type, frame) => {
        if (type === Backend.ReadyForQuery) this.transactionStatus = frame[5]!;
        else if (isFatal(frame)) this.upstreamSentFatal = true;
        return undefined;
      },
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
    // A FATAL from the server (e.g. pg_terminate_backend) already told the client why.
    if (!this.upstreamSentFatal && this.toClient?.scanner.atBoundary) {
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
    this.releaseCancelKey?.();
    const upstream = this.upstream?.socket;
    if (upstream && !upstream.destroyed) {
      // Let the upstream backend exit cleanly rather than log an unexpected EOF.
      if (this.toUpstream?.scanner.atBoundary) upstream.end(TERMINATE);
      else upstream.destroy();
    }
    if (!this.client.destroyed && this.client.writableEnded === false && reason === 'client closed') this.client.destroy();
    this.context.log.debug('session ended', { user: this.user, reason });
    this.onEnd(this);
  }
}

function isFatal(frame: Buffer): boolean {
  const severity = decodeErrorFields(frame).get('V');
  return severity === 'FATAL' || severity === 'PANIC';
}
