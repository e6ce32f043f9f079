import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { CancelKeys } from './client/cancel-keys.js';
import { readOpening } from './client/first-packet.js';
import { Errors } from './errors.js';
import type { Logger } from './log.js';
import { encodeErrorResponse } from './protocol/backend-messages.js';
import { Session, type PolicyRuntime, type SessionAuth } from './session/session.js';
import { sendUpstreamCancel, type UpstreamTarget } from './upstream/connect.js';

export interface ProxyServerOptions {
  auth: SessionAuth;
  /** Absent: no policy enforcement, every session is relayed untouched. */
  policies?: PolicyRuntime;
  listen: { host: string; port: number };
  tls: { cert?: string; key?: string; required: boolean; minVersion: tls.SecureVersion };
  upstream: UpstreamTarget;
  maxMessageSize: number;
  /** How long a client may take from connecting to ReadyForQuery. */
  startupTimeoutMs: number;
  log: Logger;
}

/**
 * The listener and the set of live sessions: accepts connections, hands each to
 * a Session, serves cancel requests, and shuts down gracefully.
 */
export class ProxyServer {
  private readonly server: net.Server;
  private readonly sessions = new Set<Session>();
  private readonly cancelKeys = new CancelKeys();
  private readonly secureContext: tls.SecureContext | undefined;
  private stopping = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    options.policies?.catalogs.onUpdate((database, catalog, readAt) => {
      for (const session of this.sessions) session.catalogUpdated(database, catalog, readAt);
    });
    const { cert, key, minVersion } = options.tls;
    this.secureContext =
      cert && key ? tls.createSecureContext({ cert: readFileSync(cert), key: readFileSync(key), minVersion }) : undefined;
    this.server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.accept(socket));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Bytes held in write buffers across all sessions: bounded by backpressure. */
  get bufferedBytes(): number {
    let total = 0;
    for (const session of this.sessions) total += session.bufferedBytes;
    return total;
  }

  /** Policies were reloaded: every live session re-decides under them. */
  policiesChanged(): void {
    for (const session of this.sessions) session.policiesChanged();
  }

  async listen(): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.listen.port, this.options.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as net.AddressInfo;
  }

  /**
   * Stops accepting, lets sessions finish for up to `graceMs`, then ends the
   * rest with FATAL 57P01.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.sessions.size > 0) {
      const allEnded = new Promise<void>((resolve) => {
        this.drained = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([allEnded, deadline]);
      clearTimeout(timer);
      for (const session of [...this.sessions]) session.terminate();
    }
    await closed;
  }

  private accept(socket: net.Socket): void {
    socket.on('error', (error) => this.options.log.debug('client socket error', { error: error.message }));
    if (this.stopping) {
      socket.end(encodeErrorResponse(Errors.shuttingDown()));
      return;
    }
    // A session's failure must never become an unhandled rejection that ends the process.
    this.open(socket).catch((error: unknown) => {
      this.options.log.error('session failed', { error: (error as Error).stack ?? String(error) });
      socket.destroy();
    });
  }

  private async open(socket: net.Socket): Promise<void> {
    // Like authentication_timeout: a client that never finishes logging in must not hold a socket forever.
    let session: Session | undefined;
    const timer = setTimeout(() => {
      this.options.log.info('startup timed out', { address: socket.remoteAddress });
      if (session) session.terminate(Errors.startupTimeout());
      else socket.destroy();
    }, this.options.startupTimeoutMs);
    try {
      const opening = await readOpening(socket, { secureContext: this.secureContext, required: this.options.tls.required });
      if (opening.kind === 'cancel') return await this.cancel(opening.processId, opening.secretKey);
      if (opening.kind === 'closed') return;
      if (this.stopping) {
        opening.socket.end(encodeErrorResponse(Errors.shuttingDown()));
        return;
      }
      session = new Session(
        opening,
        {
          auth: this.options.auth,
          policies: this.options.policies,
          upstream: this.options.upstream,
          cancelKeys: this.cancelKeys,
          maxMessageSize: this.options.maxMessageSize,
          log: this.options.log,
        },
        (ended) => this.forget(ended),
      );
      this.sessions.add(session);
      await session.run();
    } finally {
      clearTimeout(timer);
    }
  }

  private forget(session: Session): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0) this.drained?.();
  }

  private async cancel(processId: number, secretKey: Buffer): Promise<void> {
    const target = this.cancelKeys.lookup(processId, secretKey);
    if (!target) {
      this.options.log.debug('ignored cancel request with an unknown key', { processId });
      return;
    }
    try {
      await sendUpstreamCancel(this.options.upstream, target.processId, target.upstreamSecretKey);
    } catch (error) {
      this.options.log.warn('forwarding a cancel request failed', { processId, error: (error as Error).message });
    }
  }
}
