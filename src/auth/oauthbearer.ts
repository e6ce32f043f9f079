/**
 * The server side of the SASL OAUTHBEARER client response (RFC 7628 §3.1), as
 * PostgreSQL 18 and its libpq speak it:
 *   client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
 * An empty `auth` value is a discovery request (the client learns the issuer
 * and scope from the error JSON and comes back with a token).
 */
export type OAuthBearerResponse =
  | { kind: 'token'; token: string }
  | { kind: 'discovery' }
  | { kind: 'malformed'; detail: string };

const KVSEP = '\x01';
const BEARER = /^Bearer +(\S+)$/i;

export function parseOAuthBearerResponse(data: Buffer): OAuthBearerResponse {
  const text = data.toString('latin1');
  if (text.length === 0) return malformed('The message is empty.');
  if (text.includes('\0')) return malformed('Message length does not match input length.');
  let pos = 0;
  const flag = text[pos];
  if (flag === 'p') return malformed('The server does not support channel binding for OAuth.');
  if (flag !== 'n' && flag !== 'y') return malformed('Unexpected channel-binding flag.');
  pos++;
  if (text[pos] !== ',') return malformed('Comma expected after the channel-binding flag.');
  pos++;
  if (text[pos] === 'a') return malformed('Authorization identities are not supported.');
  if (text[pos] !== ',') return malformed('Unexpected attribute in client-first-message.');
  pos++;
  if (text[pos] !== KVSEP) return malformed('Key-value separator expected.');
  pos++;

  let auth: string | undefined;
  for (;;) {
    const end = text.indexOf(KVSEP, pos);
    if (end < 0) return malformed('Message contains an unterminated key/value pair.');
    if (end === pos) {
      if (end + 1 !== text.length) return malformed('Message contains additional data after the final terminator.');
      break;
    }
    const pair = text.slice(pos, end);
    const eq = pair.indexOf('=');
    if (eq < 0) return malformed('Message contains a key without a value.');
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (!/^[A-Za-z]+$/.test(key)) return malformed('Message contains an invalid key name.');
    if (!/^[\x21-\x7e \t\r\n]*$/.test(value)) return malformed('Message contains an invalid value.');
    if (key === 'auth') {
      if (auth !== undefined) return malformed('Message contains multiple auth values.');
      auth = value;
    }
    pos = end + 1;
  }
  if (auth === undefined) return malformed('Message does not contain an auth value.');
  if (auth === '') return { kind: 'discovery' };
  const bearer = BEARER.exec(auth);
  if (!bearer) return malformed('The auth value is not a Bearer token.');
  return { kind: 'token', token: bearer[1]! };
}

/** The error challenge of RFC 7628 §3.2.2, pointing the client at the issuer's discovery document. */
export function oauthBearerChallenge(issuer: string, scope: string): Buffer {
  const discovery = issuer.includes('/.well-known/') ? issuer : `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  return Buffer.from(JSON.stringify({ status: 'invalid_token', 'openid-configuration': discovery, scope }));
}

/** The only valid client answer after an error challenge: a lone kvsep. */
export function isKvsepAcknowledgement(data: Buffer): boolean {
  return data.length === 1 && data[0] === 0x01;
}

function malformed(detail: string): OAuthBearerResponse {
  return { kind: 'malformed', detail };
}
