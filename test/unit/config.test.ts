import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseUpstreamUrl } from '../../src/config.js';

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgward-config-'));
  const file = join(dir, 'pgward.yaml');
  writeFileSync(file, text);
  return file;
}

function configError(action: () => unknown): ConfigError {
  try {
    action();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('runs the embedded default when nothing names an upstream', () => {
    const config = loadConfig({ env: {} });
    expect(config.upstream.embedded).toBe(true);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 6432, sidecar: false });
    // The embedded default logs people in with tokens from its development issuer.
    expect(config.auth.mode).toBe('oidc');
    expect(config.auth.oidc?.devIssuer?.enabled).toBe(true);
    expect(config.tls.required).toBe(true);
    expect(config.limits.maxMessageSize).toBe(2 ** 30);
  });

  it('reads a file, resolving paths relative to it', () => {
    const file = configFile(`
listen: { host: 0.0.0.0, port: 7000 }
tls: { cert: certs/server.crt, key: certs/server.key }
upstream:
  url: postgres://db.internal:5433
  tls: { mode: verify-full, ca: ca.crt }
shutdown: { graceSeconds: 5 }
`);
    const config = loadConfig({ file, env: {} });
    expect(config.listen.port).toBe(7000);
    expect(config.upstream.embedded).toBe(false);
    expect(config.upstream.tls.mode).toBe('verify-full');
    expect(config.tls.cert).toBe(join(file, '..', 'certs/server.crt'));
    expect(config.upstream.tls.ca).toBe(join(file, '..', 'ca.crt'));
    expect(config.shutdown.graceSeconds).toBe(5);
  });

  it('lets PGWARD_* variables override the file, and flags override both', () => {
    const file = configFile('listen: { port: 7000 }\nupstream: { url: "postgres://a:1" }\n');
    const config = loadConfig({
      file,
      env: { PGWARD_LISTEN_PORT: '7100', PGWARD_TLS_REQUIRED: 'false', PGWARD_UPSTREAM_URL: 'postgres://b:2' },
      overrides: { 'upstream.url': 'postgres://c:3' },
    });
    expect(config.listen.port).toBe(7100);
    expect(config.tls.required).toBe(false);
    expect(config.upstream.url).toBe('postgres://c:3');
  });

  it('requires the service role for oidc with a real upstream, and a loopback host for sidecars', () => {
    const noRole = configError(() =>
      loadConfig({ file: configFile('upstream: { url: "postgres://a" }\nauth: { mode: oidc, oidc: { issuers: [{ issuer: "https://idp.example", audience: pgward }] } }'), env: {} }),
    );
    expect(noRole.field).toBe('upstream.user');
    const sidecar = configError(() => loadConfig({ file: configFile('listen: { host: 0.0.0.0, sidecar: true }'), env: {} }));
    expect(sidecar.field).toBe('listen');
  });

  it('names the field and the reason for invalid settings', () => {
    const badMode = configError(() => loadConfig({ file: configFile('upstream: { url: "postgres://a", tls: { mode: sometimes } }'), env: {} }));
    expect(badMode.field).toBe('upstream.tls.mode');
    expect(badMode.reason).toMatch(/disable|require/);

    const unknown = configError(() => loadConfig({ file: configFile('listen: { prot: 1 }'), env: {} }));
    expect(unknown.field).toBe('listen');
    expect(unknown.reason).toMatch(/prot/);

    const port = configError(() => loadConfig({ file: configFile('listen: { port: 70000 }'), env: {} }));
    expect(port.field).toBe('listen.port');

    const env = configError(() => loadConfig({ env: { PGWARD_LISTEN_PORT: 'many' } }));
    expect(env.field).toBe('listen.port');
    expect(env.reason).toMatch(/PGWARD_LISTEN_PORT=many is not a number/);

    const both = configError(() => loadConfig({ file: configFile('upstream: { url: "postgres://a", embedded: true }'), env: {} }));
    expect(both.field).toBe('upstream');

    const halfTls = configError(() => loadConfig({ file: configFile('tls: { cert: a.crt }'), env: {} }));
    expect(halfTls.field).toBe('tls');

    const yaml = configError(() => loadConfig({ file: configFile('listen: [unclosed'), env: {} }));
    expect(yaml.reason).toMatch(/invalid YAML/);
  });
});

describe('parseUpstreamUrl', () => {
  it('reads TCP hosts, IPv6 literals and Unix socket directories', () => {
    expect(parseUpstreamUrl('postgres://db:5433/app')).toEqual({ host: 'db', port: 5433 });
    expect(parseUpstreamUrl('postgresql://[::1]/app')).toEqual({ host: '::1', port: 5432 });
    expect(parseUpstreamUrl('postgres:///app?host=/var/run/postgresql&port=5444')).toEqual({ host: '/var/run/postgresql', port: 5444 });
  });

  it('refuses other schemes', () => {
    expect(configError(() => parseUpstreamUrl('mysql://x')).field).toBe('upstream.url');
  });
});
