import net from 'node:net';
import tls from 'node:tls';
import type { UpstreamAddress, UpstreamTlsMode } from '../config.js';
import { RequestCode } from '../protocol/codes.js';
import { encodeCancelRequest, encodeRequest } from '../protocol/startup-packet.js';

export interface UpstreamTarget {
  address: UpstreamAddress;
  tlsMode: UpstreamTlsMode;
  /** PEM of the CA that signs the upstream's certificate (verify-ca, verify-full). */
  ca?: string | Buffer;
  connectTimeoutMs: number;
}

export interface UpstreamConnection {
  socket: net.Socket | tls.TLSSocket;
  encrypted: boolean;
}

export class UpstreamConnectError extends Error {}

const isUnixSocket = (address: UpstreamAddress): boolean => address.host.startsWith('/');

/**
 * Opens a connection to the upstream database and, per the TLS mode, negotiates
 * TLS with an SSLRequest as libpq does. Unix sockets never use TLS (libpq ignores
 * sslmode there too).
 */
export async function openUpstream(target: UpstreamTarget): Promise<UpstreamConnection> {
  const socket = await connectSocket(target);
  if (target.tlsMode === 'disable' || isUnixSocket(target.address)) return { socket, encrypted: false };
  try {
    const secure = await negotiateTls(socket, target);
    return { socket: secure, encrypted: true };
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

function connectSocket(target: UpstreamTarget): Promise<net.Socket> {
  const { address } = target;
  return new Promise((resolve, reject) => {
    const socket = isUnixSocket(address)
      ? net.connect({ path: `${address.host}/.s.PGSQL.${address.port}` })
      : net.connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamConnectError(`timed out after ${target.connectTimeoutMs} ms connecting to ${describe(address)}`));
    }, target.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      resolve(socket);
    });
    const onError = (error: Error): void => {
      clearTimeout(timer);
      reject(new UpstreamConnectError(`${describe(address)}: ${error.message}`));
    };
    socket.once('error', onError);
  });
}

function negotiateTls(socket: net.Socket, target: UpstreamTarget): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const fail = (message: string): void => {
      cleanup();
      reject(new UpstreamConnectError(message));
    };
    const onData = (answer: Buffer): void => {
      cleanup();
      // Anything after the one-byte answer would be unencrypted data injected before the handshake.
      if (answer.length !== 1) return fail('upstream sent unexpected data after its SSL response');
      if (answer[0] !== 0x53 /* S */) {
        return fail(`upstream ${describe(target.address)} does not accept TLS (upstream.tls.mode is ${target.tlsMode})`);
      }
      const verify = target.tlsMode === 'verify-ca' || target.tlsMode === 'verify-full';
      const servername = net.isIP(target.address.host) ? undefined : target.address.host;
      const secure = tls.connect({
        socket,
        servername,
        ca: target.ca,
        rejectUnauthorized: verify,
        // verify-ca checks the chain but not the host name, as in libpq.
        checkServerIdentity: target.tlsMode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
      });
      secure.once('secureConnect', () => {
        secure.off('error', onTlsError);
        resolve(secure);
      });
      const onTlsError = (error: Error): void => reject(new UpstreamConnectError(`TLS to upstream failed: ${error.message}`));
      secure.once('error', onTlsError);
    };
    const onError = (error: Error): void => fail(error.message);
    const onClose = (): void => fail('upstream closed the connection during TLS negotiation');
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.once('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.write(encodeRequest(RequestCode.SSLRequest));
  });
}

/** Sends a CancelRequest on a connection of its own; the server answers by closing it. */
export async function sendUpstreamCancel(target: UpstreamTarget, processId: number, secretKey: Buffer): Promise<void> {
  const { socket } = await openUpstream(target);
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
    socket.end(encodeCancelRequest(processId, secretKey));
  });
}

export function describe(address: UpstreamAddress): string {
  return isUnixSocket(address) ? `${address.host}/.s.PGSQL.${address.port}` : `${address.host}:${address.port}`;
}
