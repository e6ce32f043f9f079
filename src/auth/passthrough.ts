import type { X509Certificate } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { Errors, type PgwardError } from '../errors.js';
import {
  authenticationCode,
  authenticationPayload,
  encodeAuthentication,
  encodeAuthenticationSASL,
  passwordMessageBody,
  saslMechanisms,
} from '../protocol/backend-messages.js';
import { AuthCode, Backend, Frontend } from '../protocol/codes.js';
import { ProtocolError, type SocketReader } from '../session/socket-reader.js';
import { ScramClient } from '../upstream/scram-client.js';

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
  peers.upstream.socket.write(await readClientAnswer(peers.client));
}

async function readClientAnswer(client: SocketReader): Promise<Buffer> {
  const answer = await client.readMessage();
  if (answer[0] !== Frontend.PasswordMessage) {
    throw new ProtocolError(
      Errors.protocolViolation(`expected password response, got message type ${answer[0]}`),
    );
  }
  return answer;
}

/** Returns undefined once SCRAM succeeded (AuthenticationOk follows from the upstream). */
async function scramOnBehalfOfClient(peers: PassthroughPeers, offered: string[]): Promise<PassthroughOutcome | undefined> {
  const { client, upstream } = peers;
  client.socket.write(encodeAuthentication(AuthCode.CleartextPassword));
  const body = passwordMessageBody(await readClientAnswer(client));
  const password = body.toString('utf8', 0, body.indexOf(0) >= 0 ? body.indexOf(0) : body.length);
  let scram: ScramClient;
  try {
    scram = new ScramClient(password, offered, peers.upstreamCertificate);
  } catch (error) {
    return failed(Errors.channelBindingUnavailable(), (error as Error).message);
  }
  upstream.socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.clientFirstMessage()));

  const serverFirst = await upstream.readMessage();
  if (serverFirst[0] === Backend.ErrorResponse) return { kind: 'refused', errorFrame: serverFirst };
  if (serverFirst[0] !== Backend.Authentication || authenticationCode(serverFirst) !== AuthCode.SASLContinue) {
    return failed(Errors.protocolViolation('unexpected upstream SCRAM message'), 'expected SASLContinue');
  }
  let clientFinal: string;
  try {
    clientFinal = scram.clientFinalMessage(authenticationPayload(serverFirst).toString('utf8'));
  } catch (error) {
    return failed(Errors.protocolViolation('invalid SCRAM exchange with the upstream'), (error as Error).message);
  }
  upstream.socket.write(serialize.sendSCRAMClientFinalMessage(clientFinal));

  const serverFinal = await upstream.readMessage();
  if (serverFinal[0] === Backend.ErrorResponse) return { kind: 'refused', errorFrame: serverFinal };
  if (serverFinal[0] !== Backend.Authentication || authenticationCode(serverFinal) !== AuthCode.SASLFinal) {
    return failed(Errors.protocolViolation('unexpected upstream SCRAM message'), 'expected SASLFinal');
  }
  try {
    scram.verifyServerFinal(authenticationPayload(serverFinal).toString('utf8'));
  } catch (error) {
    return failed(Errors.upstreamUnavailable('the upstream could not prove it knows the password'), (error as Error).message);
  }
  return undefined;
}

function failed(error: PgwardError, detail: string): PassthroughOutcome {
  return { kind: 'failed', error, detail };
}
