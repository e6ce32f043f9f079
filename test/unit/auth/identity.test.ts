import { describe, expect, it } from 'vitest';
import { passthroughIdentity, sessionDeadline, type Identity } from '../../../src/auth/identity.js';

describe('passthroughIdentity', () => {
  it('carries only the startup user', () => {
    const id = passthroughIdentity('app');
    expect(id).toEqual({ user: 'app', groups: [], claims: {}, source: 'passthrough' });
    expect(Object.isFrozen(id)).toBe(true);
    expect(Object.isFrozen(id.groups)).toBe(true);
    expect(Object.isFrozen(id.claims)).toBe(true);
  });
});

describe('sessionDeadline', () => {
  const oidc: Identity = { user: 'a', groups: [], claims: {}, source: 'oidc', expiresAt: 2_000 };

  it('ends at token expiry when terminateAtExpiry', () => {
    expect(sessionDeadline(oidc, { connectedAt: 1_000, terminateAtExpiry: true })).toBe(2_000);
    expect(sessionDeadline(oidc, { connectedAt: 1_000, terminateAtExpiry: false })).toBeUndefined();
  });

  it('takes the earlier of expiry and the lifetime cap', () => {
    expect(sessionDeadline(oidc, { connectedAt: 1_000, terminateAtExpiry: true, maxSessionLifetimeSeconds: 500 })).toBe(1_500);
    expect(sessionDeadline(oidc, { connectedAt: 1_000, terminateAtExpiry: true, maxSessionLifetimeSeconds: 5_000 })).toBe(2_000);
    expect(sessionDeadline(oidc, { connectedAt: 1_000, terminateAtExpiry: false, maxSessionLifetimeSeconds: 5_000 })).toBe(6_000);
  });

  it('passthrough sessions have no expiry of their own', () => {
    expect(sessionDeadline(passthroughIdentity('a'), { connectedAt: 1_000, terminateAtExpiry: true })).toBeUndefined();
  });
});
