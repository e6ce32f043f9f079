import { describe, expect, it } from 'vitest';
import type { PgwardError } from '../../../src/errors.js';
import { FrameScanner, type FrameVerdict } from '../../../src/protocol/frame-scanner.js';
import { FRONTEND_TYPES, typeTable } from '../../../src/protocol/codes.js';
import { typedFrame } from '../../helpers/raw-client.js';

const frame = typedFrame;

interface Run {
  output: Buffer;
  seen: string[];
  errors: PgwardError[];
  writes: number;
}

function run(chunks: Buffer[], options: { watch?: string; decide?: (frame: Buffer) => FrameVerdict; max?: number } = {}): Run {
  const parts: Buffer[] = [];
  const seen: string[] = [];
  const errors: PgwardError[] = [];
  const scanner = new FrameScanner({
    maxMessageSize: options.max ?? 1 << 20,
    validTypes: FRONTEND_TYPES,
    watch: typeTable([...(options.watch ?? '')].map((c) => c.charCodeAt(0))),
    onFrame: (_type, f) => {
      seen.push(f.toString('latin1'));
      return options.decide?.(f);
    },
    forward: (bytes) => parts.push(Buffer.from(bytes)),
    onInvalid: (error) => errors.push(error),
  });
  for (const chunk of chunks) scanner.push(chunk);
  return { output: Buffer.concat(parts), seen, errors, writes: parts.length };
}

const stream = Buffer.concat([
  frame('Q', 'select 1\0'),
  frame('P', '\0select $1\0\0\0'),
  frame('B', Buffer.alloc(300, 7)),
  frame('S'),
  frame('d', Buffer.alloc(70_000, 1)),
  frame('c'),
  frame('X'),
]);
const watchedFrames = [frame('Q', 'select 1\0'), frame('S'), frame('X')].map((f) => f.toString('latin1'));

describe('FrameScanner', () => {
  it('forwards an unwatched chunk as the very same buffer', () => {
    const forwarded: Buffer[] = [];
    const scanner = new FrameScanner({
      maxMessageSize: 1 << 20,
      watch: typeTable([]),
      onFrame: () => undefined,
      forward: (b) => forwarded.push(b),
      onInvalid: () => {},
    });
    scanner.push(stream);
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]).toBe(stream);
  });

  it('reassembles the same bytes and sees every watched frame whole at every split point', () => {
    for (let split = 0; split <= stream.length; split += split < 400 ? 1 : 997) {
      const result = run([stream.subarray(0, split), stream.subarray(split)], { watch: 'QSX' });
      expect(result.errors).toEqual([]);
      expect(result.output.equals(stream), `split at ${split}`).toBe(true);
      expect(result.seen).toEqual(watchedFrames);
    }
  });

  it('handles every frame split into single bytes', () => {
    const small = stream.subarray(0, stream.length - 70_000 - 5 - 5 - 5);
    const chunks = [...small].map((byte) => Buffer.from([byte]));
    const result = run(chunks, { watch: 'QPBS' });
    expect(result.output.equals(small)).toBe(true);
    expect(result.seen).toHaveLength(4);
  });

  it('splits at every pair of boundaries in a short stream', () => {
    const short = Buffer.concat([frame('Q', 'x\0'), frame('S'), frame('H'), frame('E', 'abc')]);
    for (let a = 0; a <= short.length; a++) {
      for (let b = a; b <= short.length; b++) {
        const result = run([short.subarray(0, a), short.subarray(a, b), short.subarray(b)], { watch: 'SE' });
        expect(result.output.equals(short)).toBe(true);
        expect(result.seen).toEqual([frame('S').toString('latin1'), frame('E', 'abc').toString('latin1')]);
      }
    }
  });

  it('replaces and drops watched frames in place, at any split', () => {
    const input = Buffer.concat([frame('Q', 'a\0'), frame('H'), frame('Q', 'b\0'), frame('S')]);
    const expected = Buffer.concat([frame('Q', 'A\0'), frame('H'), frame('S')]);
    for (let split = 0; split <= input.length; split++) {
      const result = run([input.subarray(0, split), input.subarray(split)], {
        watch: 'Q',
        decide: (f) => (f[5] === 'a'.charCodeAt(0) ? frame('Q', 'A\0') : null),
      });
      expect(result.output.equals(expected), `split at ${split}`).toBe(true);
    }
  });

  it('tells types watched by type alone in order with whole frames, without assembling them, at any split', () => {
    for (let split = 0; split <= stream.length; split += split < 400 ? 1 : 997) {
      const order: string[] = [];
      const parts: Buffer[] = [];
      const scanner = new FrameScanner({
        maxMessageSize: 1 << 20,
        watch: typeTable([...'QS'].map((c) => c.charCodeAt(0)), [...'Bd'].map((c) => c.charCodeAt(0))),
        onFrame: (type) => void order.push(`whole ${String.fromCharCode(type)}`),
        onType: (type) => void order.push(`type ${String.fromCharCode(type)}`),
        forward: (bytes) => parts.push(bytes),
        onInvalid: () => {},
      });
      scanner.push(stream.subarray(0, split));
      scanner.push(stream.subarray(split));
      expect(order, `split at ${split}`).toEqual(['whole Q', 'type B', 'whole S', 'type d']);
      expect(Buffer.concat(parts).equals(stream)).toBe(true);
      // The 70 kB CopyData passes as slices of the input, never copied whole.
      expect(parts.every((p) => p.length < 70_000 || p.buffer === stream.buffer)).toBe(true);
    }
  });

  it('refuses an unknown frontend message type with 08P01 and forwards nothing after it', () => {
    const input = Buffer.concat([frame('S'), frame('~', 'zz'), frame('S')]);
    const result = run([input]);
    expect(result.errors.map((e) => e.code)).toEqual(['08P01']);
    expect(result.output.equals(frame('S'))).toBe(true);
  });

  it('refuses a length below 4 and a frame over the size limit', () => {
    const bad = Buffer.from([0x51, 0, 0, 0, 2]);
    expect(run([bad]).errors[0]?.message).toMatch(/invalid message length/);
    const big = frame('Q', Buffer.alloc(2000));
    const result = run([big.subarray(0, 10)], { max: 1024 });
    expect(result.errors[0]?.code).toBe('08P01');
    expect(result.errors[0]?.message).toMatch(/exceeds the limit of 1024/);
    expect(result.output.length).toBe(0);
  });

  it('refuses a header split across chunks when it is invalid', () => {
    const bad = Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff]);
    const result = run([bad.subarray(0, 2), bad.subarray(2)]);
    expect(result.errors).toHaveLength(1);
  });
});
