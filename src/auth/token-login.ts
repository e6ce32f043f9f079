import { Errors, type PgwardError } from '../errors.js';
import { encodeAuthentication, encodeAuthenticationSASL, passwordMessageBody } from '../protocol/backend-messages.js';
import { AuthCode } from '../protocol/codes.js';
import { ProtocolError, type SocketReader } from '../session/socket-reader.js';
import type { Identity } from './identity.js';
import { readPasswordFrame } from './password-frame.js';
import { isKvsepAcknowledgement, oauthBearerChallenge, parseOAuthBearerResponse } from './oauthbearer.js';
import type { OidcVerifier } from './oidc-verifier.js';

export interface TokenLoginOptions {
  verifier: OidcVerifier;
  startupUser: string;
  remoteAddress: string | undefined;
  /** Largest token accepted; a larger PasswordMessage is refused from its length word alone. */
  maxTokenBytes: number;
  /** When set, SASL OAUTHBEARER is offered instead of a cleartext password request. */
  oauthBearer?: { issuer: string; scope: string };
}

export type TokenLoginOutcome =
  | { kind: 'verified'; identity: Identity; cached: boolean }
  /** Refused: `error` goes to the client, `reason` and `detail` only to the log. */
  | { kind: 'refused'; error: PgwardError; reason: string; detail: string }
  /** An OAUTHBEARER discovery round trip: the client closes and comes back with a token. */
  | { kind: 'discovery' };

const SASL_MECHANISM = 'OAUTHBEARER';

/**
 * The client proves who it is with an OIDC token as its password: either the
 * PasswordMessage answer to AuthenticationCleartextPassword (over TLS only),
 * or the SASL OAUTHBEARER exchange of PostgreSQL 18. Every verification
 * failure looks the same to the client (28P01); the reason is for the log.
 */
export async function loginWithToken(client: SocketReader, options: TokenLoginOptions): Promise<TokenLoginOutcome> {
  // Room for the token plus the message framing, and no more.
  client.maxPacket = options.maxTokenBytes + 1024;
  const token = options.oauthBearer ? await readBearerToken(client, options.oauthBearer) : await readPasswordToken(client);
  if (typeof token !== 'string') return token;
  if (token.length === 0) return refused(options.startupUser, 'empty_token', 'the client sent an empty password');

  const result = await options.verifier.verify(token, options.startupUser, { remoteAddress: options.remoteAddress });
  if (result.ok) return { kind: 'verified', identity: result.identity, cached: result.cached };
  if (options.oauthBearer) {
    // RFC 7628 §3.2.2: fail with the error challenge, then the client acknowledges with a kvsep.
    client.socket.write(encodeAuthentication(AuthCode.SASLContinue, oauthBearerChallenge(options.oauthBearer.issuer, options.oauthBearer.scope)));
    await readSaslData(client);
  }
  return refused(options.startupUser, result.reason, result.detail);
}

async function readPasswordToken(client: SocketReader): Promise<string> {
  client.socket.write(encodeAuthentication(AuthCode.CleartextPassword));
  const body = passwordMessageBody(await readPasswordFrame(client));
  const end = body.indexOf(0);
  return body.toString('utf8', 0, end >= 0 ? end : body.length).trim();
}

async function readBearerToken(client: SocketReader, bearer: { issuer: string; scope: string }): Promise<string | TokenLoginOutcome> {
  client.socket.write(encodeAuthenticationSASL([SASL_MECHANISM]));
  const initial = passwordMessageBody(await readPasswordFrame(client));
  const nameEnd = initial.indexOf(0);
  if (nameEnd < 0 || initial.toString('utf8', 0, nameEnd) !== SASL_MECHANISM) throw new ProtocolError(Errors.invalidSaslMechanism());
  if (initial.length < nameEnd + 5) throw new ProtocolError(Errors.malformedOAuthBearer('The SASLInitialResponse is truncated.'));
  const length = initial.readInt32BE(nameEnd + 1);
  let data: Buffer;
  if (length === -1) {
    // No initial response: an empty challenge asks for it (RFC 4422 §5).
    client.socket.write(encodeAuthentication(AuthCode.SASLContinue));
    data = await readSaslData(client);
  } else {
    data = initial.subarray(nameEnd + 5, nameEnd + 5 + length);
    if (data.length !== length) throw new ProtocolError(Errors.malformedOAuthBearer('Message length does not match input length.'));
  }

  const response = parseOAuthBearerResponse(data);
  if (response.kind === 'malformed') throw new ProtocolError(Errors.malformedOAuthBearer(response.detail));
  if (response.kind === 'token') return response.token;
  client.socket.write(encodeAuthentication(AuthCode.SASLContinue, oauthBearerChallenge(bearer.issuer, bearer.scope)));
  const acknowledgement = await readSaslData(client);
  if (!isKvsepAcknowledgement(acknowledgement)) throw new ProtocolError(Errors.malformedOAuthBearer('Client did not send a kvsep response.'));
  return { kind: 'discovery' };
}

async function readSaslData(client: SocketReader): Promise<Buffer> {
  return passwordMessageBody(await readPasswordFrame(client));
}

function refused(user: string, reason: string, detail: string): TokenLoginOutcome {
  return { kind: 'refused', error: Errors.passwordFailed(user), reason, detail };
}
