import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { decodeParse, decodeQuery, encodeParse, encodeQuery } from '../../../src/protocol/frontend-messages.js';

describe('frontend messages', () => {
  it('decodes what node-postgres encodes, and encodes the same bytes', () => {
    const query = serialize.query("select 'é', $1");
    expect(decodeQuery(query)).toBe("select 'é', $1");
    expect(encodeQuery("select 'é', $1").equals(query)).toBe(true);

    const parse = serialize.parse({ name: 's1', text: 'select $1::int, $2', types: [23, 0] });
    expect(decodeParse(parse)).toEqual({ name: 's1', query: 'select $1::int, $2', parameterTypes: [23, 0] });
    expect(encodeParse({ name: 's1', query: 'select $1::int, $2', parameterTypes: [23, 0] }).equals(parse)).toBe(true);
  });

  it('keeps type OIDs above 2^31 and refuses malformed Parse messages', () => {
    const big = encodeParse({ name: '', query: 'x', parameterTypes: [4_000_000_000] });
    expect(decodeParse(big)?.parameterTypes).toEqual([4_000_000_000]);
    const truncated = big.subarray(0, big.length - 1);
    expect(decodeParse(truncated)).toBeUndefined();
    expect(decodeParse(Buffer.from([0x50, 0, 0, 0, 5, 0x61]))).toBeUndefined();
  });
});
