import type { X509Certificate } from 'node:crypto';
import { Errors, type PgwardError } from '../errors.js';
import {
  authenticationCode,
  encodeAuthentication,
  encodeAuthenticationSASL,
  passwordMessageBody,
  saslMechanisms,
} from '../protocol/backend-messages.js';
import { AuthCode, Backend } from '../protocol/codes.js';
import type { SocketReader } from '../session/socket-reader.js';
import { performScram } from '../upstream/login.js';
import { readPasswordFrame } from './password-frame.js';

export interface PassthroughPeers {
  client: SocketReader;
  clientEncrypted: boolean;
  upstream: SocketReader;
  /** The upstream's TLS certificate when the upstream link is encrypted. */
  upstreamCertificate: X509Certificate | undefined;
}

/** How the upstream's authentication exchange ended. */
export type PassthroughOutcome =
  | { kind: 'authenticated' }
  /** The upstream refused: its ErrorResponse goes to the client as it is. */
  | { kind: 'refused'; errorFrame: Buffer }
  /** pgward itself refused. */
  | { kind: 'failed'; error: PgwardError; detail: string };

/**
 * Lets the database authenticate the client: its authentication requests go to
 * the client and the client's answers go back, until AuthenticationOk.
 *
 * SCRAM channel binding cannot cross a TLS-terminating hop, so SCRAM-SHA-256-PLUS
 * is never offered to the client. When both links are TLS, a client that supports
 * binding would answer with gs2 flag 'y', which a TLS upstream must reject
 * (RFC 5802 §6); then pgward asks the client for its password over TLS instead
 * and performs SCRAM with the upstream itself, with channel binding to the
 * upstream link. md5, password and trust are relayed unchanged.
 */
export async function relayAuthentication(peers: PassthroughPeers): Promise<PassthroughOutcome> {
  const { client, upstream } = peers;
  for (;;) {
    const frame = await upstream.readMessage();
    const type = frame[0];
    if (type === Backend.ErrorResponse) return { kind: 'refused', errorFrame: frame };
    if (type === Backend.NoticeResponse) {
      client.socket.write(frame);
      continue;
    }
    if (type !== Backend.Authentication) {
      return failed(Errors.protocolViolation('unexpected message from the upstream during authentication'), `type ${type}`);
    }
    const code = authenticationCode(frame);
    switch (code) {
      case AuthCode.Ok:
        client.socket.write(frame);
        return { kind: 'authenticated' };
      case AuthCode.SASLFinal:
        client.socket.write(frame);
        continue;
      case AuthCode.SASL: {
        const offered = saslMechanisms(frame);
        if (peers.clientEncrypted && peers.upstreamCertificate) {
          const outcome = await scramOnBehalfOfClient(peers, offered);
          if (outcome) return outcome;
          continue;
        }
        const relayable = offered.filter((name) => !name.endsWith('-PLUS'));
        if (relayable.length === 0) return failed(Errors.channelBindingUnavailable(), offered.join(', '));
        client.socket.write(encodeAuthenticationSASL(relayable));
        await relayClientAnswer(peers);
        continue;
      }
      default:
        // Cleartext, MD5, SASLContinue, GSS: the client answers with a PasswordMessage-type frame.
        client.socket.write(frame);
        await relayClientAnswer(peers);
    }
  }
}

async function relayClientAnswer(peers: PassthroughPeers): Promise<void> {
  peers.upstream.socket.write(await readPasswordFrame(peers.client));
}

/** Returns undefined once SCRAM succeeded (AuthenticationOk follows from the upstream). */
async function scramOnBehalfOfClient(peers: PassthroughPeers, offered: string[]): Promise<PassthroughOutcome | undefined> {
  peers.client.socket.write(encodeAuthentication(AuthCode.CleartextPassword));
  const body = passwordMessageBody(await readPasswordFrame(peers.client));
  const end = body.indexOf(0);
  const password = body.toString('utf8', 0, end >= 0 ? end : body.length);
  const outcome = await performScram(peers.upstream, password, offered, peers.upstreamCertificate);
  if (outcome?.kind === 'failed') return failed(Errors.upstreamUnavailable('SCRAM exchange with the upstream failed'), outcome.detail);
  return outcome;
}

function failed(error: PgwardError, detail: string): PassthroughOutcome {
  return { kind: 'failed', error, detail };
}
