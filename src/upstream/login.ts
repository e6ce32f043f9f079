import { createHash, type X509Certificate } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { authenticationCode, authenticationPayload, saslMechanisms } from '../protocol/backend-messages.js';
import { AuthCode, Backend } from '../protocol/codes.js';
import type { SocketReader } from '../session/socket-reader.js';
import { ScramClient } from './scram-client.js';

/** How pgward's own login to the upstream went. */
export type LoginOutcome =
  | { kind: 'authenticated' }
  /** The upstream refused; its ErrorResponse, to relay or to translate. */
  | { kind: 'refused'; errorFrame: Buffer }
  | { kind: 'failed'; detail: string };

/**
 * SCRAM-SHA-256 (with channel binding when the upstream link is TLS and offers
 * it) after an AuthenticationSASL, up to and including the verified SASLFinal.
 * Returns undefined on success; AuthenticationOk is still to come.
 */
export async function performScram(
  upstream: SocketReader,
  password: string,
  offered: readonly string[],
  certificate: X509Certificate | undefined,
): Promise<Exclude<LoginOutcome, { kind: 'authenticated' }> | undefined> {
  let scram: ScramClient;
  try {
    scram = new ScramClient(password, offered, certificate);
  } catch (error) {
    return { kind: 'failed', detail: (error as Error).message };
  }
  upstream.socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.clientFirstMessage()));

  const serverFirst = await upstream.readMessage();
  if (serverFirst[0] === Backend.ErrorResponse) return { kind: 'refused', errorFrame: serverFirst };
  if (!isAuthentication(serverFirst, AuthCode.SASLContinue)) return { kind: 'failed', detail: 'expected SASLContinue from the upstream' };
  try {
    upstream.socket.write(
      serialize.sendSCRAMClientFinalMessage(scram.clientFinalMessage(authenticationPayload(serverFirst).toString('utf8'))),
    );
  } catch (error) {
    return { kind: 'failed', detail: (error as Error).message };
  }

  const serverFinal = await upstream.readMessage();
  if (serverFinal[0] === Backend.ErrorResponse) return { kind: 'refused', errorFrame: serverFinal };
  if (!isAuthentication(serverFinal, AuthCode.SASLFinal)) return { kind: 'failed', detail: 'expected SASLFinal from the upstream' };
  try {
    scram.verifyServerFinal(authenticationPayload(serverFinal).toString('utf8'));
  } catch (error) {
    return { kind: 'failed', detail: (error as Error).message };
  }
  return undefined;
}

/**
 * pgward logs in to the upstream with its own credentials (after the StartupMessage
 * was sent), answering whatever method pg_hba.conf asks for, until AuthenticationOk.
 */
export async function loginAsService(
  upstream: SocketReader,
  credentials: { user: string; password: string | undefined },
  certificate: X509Certificate | undefined,
): Promise<LoginOutcome> {
  for (;;) {
    const frame = await upstream.readMessage();
    if (frame[0] === Backend.ErrorResponse) return { kind: 'refused', errorFrame: frame };
    if (frame[0] === Backend.NoticeResponse) continue;
    if (frame[0] !== Backend.Authentication) return { kind: 'failed', detail: `unexpected message type ${frame[0]} during login` };
    const code = authenticationCode(frame);
    if (code === AuthCode.Ok) return { kind: 'authenticated' };
    const password = credentials.password;
    if (password === undefined) return { kind: 'failed', detail: 'the upstream asks for a password but none is configured' };
    switch (code) {
      case AuthCode.CleartextPassword:
        upstream.socket.write(serialize.password(password));
        continue;
      case AuthCode.MD5Password:
        upstream.socket.write(serialize.password(md5Response(credentials.user, password, authenticationPayload(frame))));
        continue;
      case AuthCode.SASL: {
        const outcome = await performScram(upstream, password, saslMechanisms(frame), certificate);
        if (outcome) return outcome;
        continue;
      }
      default:
        return { kind: 'failed', detail: `unsupported upstream authentication method ${code}` };
    }
  }
}

/** PostgreSQL's md5 scheme: "md5" + md5(md5(password + user) + salt). */
function md5Response(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}

function isAuthentication(frame: Buffer, code: number): boolean {
  return frame[0] === Backend.Authentication && authenticationCode(frame) === code;
}
