import { describe, expect, it } from 'vitest';
import { AuthThrottle, throttleKeys } from '../../../src/auth/auth-throttle.js';
import { manualClock } from './fixtures.js';

function throttle(overrides: Partial<{ maxFailures: number; windowSeconds: number; lockoutSeconds: number; maxKeys: number }> = {}) {
  const clock = manualClock();
  const t = new AuthThrottle({ maxFailures: 3, windowSeconds: 60, lockoutSeconds: 120, now: clock.now, ...overrides });
  return { t, clock };
}

describe('AuthThrottle', () => {
  it('allows until maxFailures failures, then locks for lockoutSeconds', () => {
    const { t, clock } = throttle();
    const keys = ['addr:1.2.3.4'];
    t.recordFailure(keys);
    t.recordFailure(keys);
    expect(t.check(keys)).toEqual({ allowed: true });
    t.recordFailure(keys);
    expect(t.check(keys)).toEqual({ allowed: false, key: 'addr:1.2.3.4', retryAfterSeconds: 120 });
    clock.advance(119);
    expect(t.check(keys).allowed).toBe(false);
    clock.advance(1);
    expect(t.check(keys)).toEqual({ allowed: true });
  });

  it('counts failures in a sliding window only', () => {
    const { t, clock } = throttle();
    const keys = ['user:alice'];
    t.recordFailure(keys);
    clock.advance(40);
    t.recordFailure(keys);
    clock.advance(40); // the first failure has left the window
    t.recordFailure(keys);
    expect(t.check(keys).allowed).toBe(true);
    t.recordFailure(keys);
    expect(t.check(keys).allowed).toBe(false);
  });

  it('with no lockout, blocks until the oldest failure leaves the window', () => {
    const { t, clock } = throttle({ lockoutSeconds: 0 });
    const keys = ['k'];
    t.recordFailure(keys);
    clock.advance(10);
    t.recordFailure(keys);
    t.recordFailure(keys);
    expect(t.check(keys)).toMatchObject({ allowed: false, retryAfterSeconds: 50 });
    clock.advance(50);
    expect(t.check(keys).allowed).toBe(true);
  });

  it('blocks when any key is locked and reports the longest wait', () => {
    const { t, clock } = throttle();
    for (let i = 0; i < 3; i += 1) t.recordFailure(['addr:a']);
    clock.advance(30);
    for (let i = 0; i < 3; i += 1) t.recordFailure(['user:u']);
    expect(t.check(['addr:b', 'user:v']).allowed).toBe(true);
    expect(t.check(['addr:a', 'user:v'])).toMatchObject({ allowed: false, key: 'addr:a', retryAfterSeconds: 90 });
    expect(t.check(['addr:a', 'user:u'])).toMatchObject({ allowed: false, key: 'user:u', retryAfterSeconds: 120 });
  });

  it('reset forgets a key', () => {
    const { t } = throttle();
    for (let i = 0; i < 3; i += 1) t.recordFailure(['k']);
    t.reset('k');
    expect(t.check(['k']).allowed).toBe(true);
  });

  it('bounds memory with maxKeys', () => {
    const { t } = throttle({ maxKeys: 100 });
    for (let i = 0; i < 1000; i += 1) t.recordFailure([`addr:10.0.${i >> 8}.${i & 255}`]);
    expect(t.size).toBe(100);
  });
});

describe('throttleKeys', () => {
  it('keys by address and user', () => {
    expect(throttleKeys({ remoteAddress: '10.0.0.1', user: 'alice' })).toEqual(['addr:10.0.0.1', 'user:alice']);
    expect(throttleKeys({ user: 'alice' })).toEqual(['user:alice']);
    expect(throttleKeys({})).toEqual([]);
  });

  it('folds IPv4-mapped IPv6 onto IPv4', () => {
    expect(throttleKeys({ remoteAddress: '::ffff:10.0.0.1' })).toEqual(['addr:10.0.0.1']);
  });

  it('keys IPv6 clients by their /64', () => {
    const a = throttleKeys({ remoteAddress: '2001:db8:1:2:aaaa::1' });
    const b = throttleKeys({ remoteAddress: '2001:0DB8:0001:0002:ffff:ffff:ffff:ffff' });
    const c = throttleKeys({ remoteAddress: '2001:db8:1:3::1' });
    expect(a).toEqual(['addr:2001:db8:1:2::/64']);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(throttleKeys({ remoteAddress: '::1' })).toEqual(['addr:0:0:0:0::/64']);
    expect(throttleKeys({ remoteAddress: 'fe80::1%eth0' })).toEqual(['addr:fe80:0:0:0::/64']);
    expect(throttleKeys({ remoteAddress: '64:ff9b::192.0.2.1' })).toEqual(['addr:64:ff9b:0:0::/64']);
  });
});
