import type { Socket } from 'node:net';
import tls from 'node:tls';
import { Errors, type PgwardError } from '../errors.js';
import { encodeErrorResponse } from '../protocol/backend-messages.js';
import { TLS_HANDSHAKE_BYTE } from '../protocol/codes.js';
import { MAX_STARTUP_PACKET, parseFirstPacket, type StartupParameters } from '../protocol/startup-packet.js';
import { ConnectionClosed, ProtocolError, SocketReader } from '../session/socket-reader.js';

export interface ClientTlsOptions {
  /** Absent when pgward has no certificate: SSLRequest is then answered 'N'. */
  secureContext: tls.SecureContext | undefined;
  /** Refuse a startup packet that arrives over plaintext. */
  required: boolean;
}

/** How the opening exchange of a client connection ended. */
export type Opening =
  | {
      kind: 'startup';
      socket: Socket | tls.TLSSocket;
      reader: SocketReader;
      encrypted: boolean;
      minor: number;
      parameters: StartupParameters;
      protocolOptions: string[];
    }
  | { kind: 'cancel'; processId: number; secretKey: Buffer }
  | { kind: 'closed'; reason: string };

/**
 * Runs the pre-startup negotiation of protocol §55.2.1 (SSLRequest, GSSENCRequest,
 * CancelRequest, PostgreSQL 17 direct TLS) until a StartupMessage or CancelRequest.
 * Errors are answered with a FATAL ErrorResponse and the connection is closed.
 */
export async function readOpening(raw: Socket, options: ClientTlsOptions): Promise<Opening> {
  let socket: Socket | tls.TLSSocket = raw;
  let reader = new SocketReader(raw, MAX_STARTUP_PACKET);
  let encrypted = false;
  let negotiatedEncryption = false;
  try {
    if (options.secureContext && (await reader.peekByte()) === TLS_HANDSHAKE_BYTE) {
      // Direct TLS (PostgreSQL 17): the ClientHello comes first; give its bytes back to the TLS layer.
      const hello = reader.detach();
      raw.unshift(hello);
      socket = await startServerTls(raw, options.secureContext);
      if ((socket as tls.TLSSocket).alpnProtocol !== 'postgresql') {
        return refuse(socket, Errors.directTlsWithoutAlpn());
      }
      reader = new SocketReader(socket, MAX_STARTUP_PACKET);
      encrypted = true;
      negotiatedEncryption = true;
    }
    for (;;) {
      const packet = parseFirstPacket(await reader.readUntyped(8));
      switch (packet.kind) {
        case 'ssl':
        case 'gssenc': {
          if (negotiatedEncryption) return refuse(socket, Errors.protocolViolation('encryption was already negotiated'));
          const offerTls = packet.kind === 'ssl' && options.secureContext !== undefined;
          // Bytes after the request but before the handshake could be injected by a
          // man in the middle and read as if they were encrypted (CVE-2021-23214).
          if (reader.pending > 0) {
            return refuse(socket, Errors.protocolViolation('received unencrypted data after SSL request'));
          }
          socket.write(offerTls ? 'S' : 'N');
          if (!offerTls) continue;
          reader.detach();
          socket = await startServerTls(raw, options.secureContext!);
          reader = new SocketReader(socket, MAX_STARTUP_PACKET);
          encrypted = true;
          negotiatedEncryption = true;
          continue;
        }
        case 'cancel':
          socket.destroy();
          return { kind: 'cancel', processId: packet.processId, secretKey: packet.secretKey };
        case 'unsupported':
          return refuse(socket, Errors.unsupportedProtocol(packet.major, packet.minor));
        case 'invalid':
          return refuse(socket, Errors.protocolViolation(packet.reason));
        case 'startup':
          if (!encrypted && options.required) return refuse(socket, Errors.tlsRequired());
          return {
            kind: 'startup',
            socket,
            reader,
            encrypted,
            minor: packet.minor,
            parameters: packet.parameters,
            protocolOptions: packet.protocolOptions,
          };
      }
    }
  } catch (error) {
    if (error instanceof ProtocolError) return refuse(socket, error.error);
    if (!(error instanceof ConnectionClosed)) socket.destroy();
    return { kind: 'closed', reason: (error as Error).message };
  }
}

function startServerTls(raw: Socket, secureContext: tls.SecureContext): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext,
      ALPNProtocols: ['postgresql'],
    });
    const onError = (error: Error): void => {
      secure.destroy();
      reject(error);
    };
    secure.once('error', onError);
    secure.once('secure', () => {
      secure.off('error', onError);
      resolve(secure);
    });
  });
}

function refuse(socket: Socket | tls.TLSSocket, error: PgwardError): Opening {
  socket.end(encodeErrorResponse(error));
  return { kind: 'closed', reason: error.message };
}
