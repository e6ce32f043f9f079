import { Errors } from '../errors.js';
import { Frontend } from '../protocol/codes.js';
import { ProtocolError, type SocketReader } from '../session/socket-reader.js';

/**
 * Reads the client's answer to an authentication request: a PasswordMessage,
 * SASLInitialResponse or SASLResponse, which all share type 'p'. Anything else
 * is a protocol violation.
 */
export async function readPasswordFrame(client: SocketReader): Promise<Buffer> {
  const frame = await client.readMessage();
  if (frame[0] !== Frontend.PasswordMessage) {
    throw new ProtocolError(Errors.protocolViolation(`expected password response, got message type ${frame[0]}`));
  }
  return frame;
}
