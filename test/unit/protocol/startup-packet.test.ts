import { describe, expect, it } from 'vitest';
import { RequestCode } from '../../../src/protocol/codes.js';
import {
  encodeCancelRequest,
  encodeRequest,
  encodeStartupMessage,
  firstPacketLength,
  parseFirstPacket,
} from '../../../src/protocol/startup-packet.js';

describe('first packet', () => {
  it('round-trips a startup message without adding parameters', () => {
    const parameters = [['user', 'alice'], ['database', 'app'], ['options', '-c search_path=x']] as const;
    const packet = encodeStartupMessage(parameters);
    const parsed = parseFirstPacket(packet);
    expect(parsed).toEqual({ kind: 'startup', minor: 0, parameters, protocolOptions: [] });
    expect(packet.includes(Buffer.from('client_encoding'))).toBe(false);
  });

  it('recognises SSL, GSSENC and cancel requests', () => {
    expect(parseFirstPacket(encodeRequest(RequestCode.SSLRequest))).toEqual({ kind: 'ssl' });
    expect(parseFirstPacket(encodeRequest(RequestCode.GSSENCRequest))).toEqual({ kind: 'gssenc' });
    const key = Buffer.from([1, 2, 3, 4]);
    expect(parseFirstPacket(encodeCancelRequest(42, key))).toEqual({ kind: 'cancel', processId: 42, secretKey: key });
    // Protocol 3.2 cancel keys are longer.
    const longKey = Buffer.alloc(32, 9);
    expect(parseFirstPacket(encodeCancelRequest(7, longKey))).toMatchObject({ kind: 'cancel', secretKey: longKey });
  });

  it('separates _pq_ protocol options and keeps the minor version', () => {
    const packet = encodeStartupMessage([['user', 'u'], ['_pq_.test', 'x']]);
    packet.writeInt32BE((3 << 16) | 2, 4);
    expect(parseFirstPacket(packet)).toEqual({ kind: 'startup', minor: 2, parameters: [['user', 'u']], protocolOptions: ['_pq_.test'] });
  });

  it('rejects malformed packets', () => {
    const noUser = encodeStartupMessage([['database', 'x']]);
    expect(parseFirstPacket(noUser)).toMatchObject({ kind: 'invalid' });
    const truncated = encodeStartupMessage([['user', 'u']]);
    truncated[truncated.length - 1] = 0x41;
    expect(parseFirstPacket(truncated)).toMatchObject({ kind: 'invalid' });
    const v2 = encodeRequest(2 << 16);
    expect(parseFirstPacket(v2)).toEqual({ kind: 'unsupported', major: 2, minor: 0 });
    expect(firstPacketLength(Buffer.from([0, 0, 0, 3]))).toBe(0);
    expect(firstPacketLength(Buffer.from([0, 1, 0, 0]))).toBe(0);
  });
});
