import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ALGORITHMS,
  authConfigSchema,
  compileUserMapPattern,
  oidcConfigSchema,
  parseAuthConfig,
  parseOidcConfig,
} from '../../../src/auth/oidc-config.js';

const ISSUER = { issuer: 'https://login.example.com', audience: 'pgward' };

function problems(input: unknown): string[] {
  const r = oidcConfigSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('auth config', () => {
  it('defaults to passthrough', () => {
    expect(parseAuthConfig({})).toEqual({ mode: 'passthrough' });
  });

  it('requires an oidc section in oidc mode', () => {
    expect(authConfigSchema.safeParse({ mode: 'oidc' }).success).toBe(false);
    expect(parseAuthConfig({ mode: 'oidc', oidc: { issuers: [ISSUER] } }).mode).toBe('oidc');
  });

  it('rejects unknown keys so typos in security settings are loud', () => {
    expect(authConfigSchema.safeParse({ mode: 'passthrough', odic: {} }).success).toBe(false);
    expect(problems({ issuers: [{ ...ISSUER, usernameclaim: 'x' }] })).not.toEqual([]);
  });
});

describe('oidc config defaults', () => {
  it('fills every default', () => {
    const cfg = parseOidcConfig({ issuers: [ISSUER] });
    expect(cfg).toMatchObject({
      clockToleranceSeconds: 30,
      algorithms: [...DEFAULT_ALGORITHMS],
      tokenCacheSize: 10_000,
      maxTokenBytes: 65_536,
      jwksCooldownSeconds: 30,
      jwksCacheMaxAgeSeconds: 600,
      userBinding: { mode: 'match' },
      terminateAtExpiry: true,
      throttle: { maxFailures: 5, windowSeconds: 60, lockoutSeconds: 60 },
    });
    expect(cfg.maxSessionLifetimeSeconds).toBeUndefined();
    expect(cfg.issuers[0]).toEqual({
      issuer: 'https://login.example.com',
      audience: ['pgward'],
      usernameClaims: ['preferred_username'],
      groupsClaims: ['groups'],
      allowInsecureHttp: false,
    });
  });

  it('keeps partial throttle settings and fills the rest', () => {
    expect(parseOidcConfig({ issuers: [ISSUER], throttle: { maxFailures: 3 } }).throttle).toEqual({
      maxFailures: 3, windowSeconds: 60, lockoutSeconds: 60,
    });
  });

  it('accepts audience lists and claim lists', () => {
    const cfg = parseOidcConfig({
      issuers: [{ ...ISSUER, audience: ['a', 'b'], usernameClaim: ['email', 'sub'], groupsClaim: 'realm_access.roles' }],
    });
    expect(cfg.issuers[0]).toMatchObject({ audience: ['a', 'b'], usernameClaims: ['email', 'sub'], groupsClaims: ['realm_access.roles'] });
  });

  it('lets groupsClaim be switched off', () => {
    expect(parseOidcConfig({ issuers: [{ ...ISSUER, groupsClaim: null }] }).issuers[0]!.groupsClaims).toEqual([]);
    expect(parseOidcConfig({ issuers: [{ ...ISSUER, groupsClaim: false }] }).issuers[0]!.groupsClaims).toEqual([]);
  });
});

describe('issuer presets', () => {
  it('kubernetes: user from sub, no groups', () => {
    const iss = parseOidcConfig({ issuers: [{ ...ISSUER, preset: 'kubernetes' }] }).issuers[0]!;
    expect(iss).toMatchObject({ preset: 'kubernetes', usernameClaims: ['sub'], groupsClaims: [] });
  });

  it('azure: upn falling back to preferred_username, groups and roles', () => {
    const iss = parseOidcConfig({ issuers: [{ ...ISSUER, preset: 'azure' }] }).issuers[0]!;
    expect(iss).toMatchObject({ usernameClaims: ['upn', 'preferred_username'], groupsClaims: ['groups', 'roles'] });
  });

  it('explicit claims override the preset', () => {
    const iss = parseOidcConfig({ issuers: [{ ...ISSUER, preset: 'azure', usernameClaim: 'oid', groupsClaim: 'wids' }] }).issuers[0]!;
    expect(iss).toMatchObject({ usernameClaims: ['oid'], groupsClaims: ['wids'] });
  });
});

describe('algorithm allow-list', () => {
  it.each(['none', 'NONE', 'HS256', 'HS384', 'HS512', 'hs256'])('refuses %s', (alg) => {
    expect(problems({ issuers: [ISSUER], algorithms: [alg] }).join('\n')).toMatch(/never accepted/);
  });

  it('refuses algorithms jose cannot verify from a JWKS', () => {
    expect(problems({ issuers: [ISSUER], algorithms: ['RSA-OAEP'] }).join('\n')).toMatch(/unsupported algorithm/);
  });

  it('refuses an empty list', () => {
    expect(problems({ issuers: [ISSUER], algorithms: [] })).not.toEqual([]);
  });

  it('accepts a narrowed asymmetric list', () => {
    expect(parseOidcConfig({ issuers: [ISSUER], algorithms: ['ES256', 'EdDSA'] }).algorithms).toEqual(['ES256', 'EdDSA']);
  });
});

describe('issuer URLs', () => {
  it('requires https except on loopback', () => {
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'http://idp.internal' }] }).join()).toMatch(/https/);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'http://127.0.0.1:8080' }] })).toEqual([]);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'http://localhost:8080/realms/x' }] })).toEqual([]);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'http://[::1]:8080' }] })).toEqual([]);
  });

  it('allows plain http only with an explicit opt-in', () => {
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'http://keycloak:8080', allowInsecureHttp: true }] })).toEqual([]);
  });

  it('checks jwksUri the same way', () => {
    expect(problems({ issuers: [{ ...ISSUER, jwksUri: 'http://keys.example.com/jwks' }] }).join()).toMatch(/jwksUri/);
    expect(problems({ issuers: [{ ...ISSUER, jwksUri: 'https://keys.example.com/jwks' }] })).toEqual([]);
  });

  it('refuses query, fragment, credentials, non-URLs', () => {
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'https://x.example.com/?a=1' }] })).not.toEqual([]);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'https://x.example.com/#f' }] })).not.toEqual([]);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'https://u:p@x.example.com' }] })).not.toEqual([]);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'not a url' }] })).not.toEqual([]);
    expect(problems({ issuers: [{ ...ISSUER, issuer: 'ftp://x.example.com' }] })).not.toEqual([]);
  });

  it('refuses duplicate issuers', () => {
    expect(problems({ issuers: [ISSUER, ISSUER] }).join()).toMatch(/duplicate/);
  });
});

describe('dev issuer and issuer list', () => {
  it('needs an issuer unless the dev issuer is on', () => {
    expect(problems({}).join()).toMatch(/at least one issuer/);
    expect(problems({ devIssuer: { enabled: false } }).join()).toMatch(/at least one issuer/);
    expect(problems({ devIssuer: { enabled: true } })).toEqual([]);
  });

  it('refuses the dev issuer together with real issuers', () => {
    expect(problems({ issuers: [ISSUER], devIssuer: { enabled: true } }).join()).toMatch(/devIssuer/);
  });
});

describe('limits', () => {
  it('maxTokenBytes accepts at least 16 KiB', () => {
    expect(problems({ issuers: [ISSUER], maxTokenBytes: 16_383 })).not.toEqual([]);
    expect(problems({ issuers: [ISSUER], maxTokenBytes: 16_384 })).toEqual([]);
  });

  it('refuses negative or non-integer numbers', () => {
    expect(problems({ issuers: [ISSUER], tokenCacheSize: -1 })).not.toEqual([]);
    expect(problems({ issuers: [ISSUER], clockToleranceSeconds: 1.5 })).not.toEqual([]);
    expect(problems({ issuers: [ISSUER], throttle: { maxFailures: 0 } })).not.toEqual([]);
  });
});

describe('user binding', () => {
  it('map mode requires entries', () => {
    expect(problems({ issuers: [ISSUER], userBinding: { mode: 'map' } })).not.toEqual([]);
    expect(problems({ issuers: [ISSUER], userBinding: { mode: 'map', map: [] } })).not.toEqual([]);
  });

  it('validates the regex and its back-references', () => {
    expect(problems({ issuers: [ISSUER], userBinding: { mode: 'map', map: [{ token: '(', user: 'x' }] } }).join()).toMatch(/invalid regex/);
    expect(problems({ issuers: [ISSUER], userBinding: { mode: 'map', map: [{ token: '(.*)@corp', user: '\\2' }] } }).join()).toMatch(/capture group/);
    expect(problems({ issuers: [ISSUER], userBinding: { mode: 'map', map: [{ token: '(.*)@corp', user: '\\1' }] } })).toEqual([]);
  });

  it('refuses map entries in other modes', () => {
    expect(problems({ issuers: [ISSUER], userBinding: { mode: 'match', map: [{ token: 'a', user: 'b' }] } })).not.toEqual([]);
  });

  it('anchors map patterns at both ends', () => {
    const re = compileUserMapPattern('alice');
    expect(re.test('alice')).toBe(true);
    expect(re.test('malice')).toBe(false);
    expect(re.test('alice2')).toBe(false);
    expect(compileUserMapPattern('a|b').test('ab')).toBe(false);
  });
});
