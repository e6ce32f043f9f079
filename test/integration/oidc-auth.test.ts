import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT, type JWK } from 'jose';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { OidcConfigInput } from '../../src/auth/oidc-config.js';
import { decodeErrorFields } from '../../src/protocol/backend-messages.js';
import type { SessionAuth } from '../../src/session/session.js';
import { privateJwk, startOidcProvider, type RunningProvider } from '../helpers/oidc-provider.js';
import { connectPg, errorOf, oidcSessionAuth, startPgward, type PgwardUnderTest } from '../helpers/pgward.js';
import { psql } from '../helpers/psql.js';
import { RawClient, typedFrame } from '../helpers/raw-client.js';
import { startTcpHop, type TcpHop } from '../helpers/tcp-hop.js';
import { TEST_PASSWORDS, type TestServerInfo } from '../helpers/test-servers.js';

const USER = 'svc-reporting';
const SERVICE = { user: 'scram_user', password: TEST_PASSWORDS.scram_user };

function oidcAuth(issuer: string, overrides: Partial<OidcConfigInput> = {}, extra: Partial<Extract<SessionAuth, { mode: 'oidc' }>> = {}): SessionAuth {
  return oidcSessionAuth(issuer, SERVICE, overrides, extra);
}

/** Signs a token with one of the provider's own private keys, with claims of the test's choosing. */
async function forge(key: JWK, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iat: now, exp: now + 600, preferred_username: USER, aud: 'pgward', ...claims })
    .setProtectedHeader({ alg: key.alg as string, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(await importJWK(key, key.alg));
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

describe.each(inject('servers'))('OIDC tokens as passwords (PostgreSQL $major upstream)', (server: TestServerInfo) => {
  let provider: RunningProvider;
  let signingKey: JWK;
  let hop: TcpHop;
  let pgward: PgwardUnderTest;

  beforeAll(async () => {
    signingKey = await privateJwk('rsa-1', 'RS256');
    provider = await startOidcProvider([signingKey, await privateJwk('ec-1', 'ES256')]);
    // Every upstream connection passes the hop, so a test can prove a refused client never reached the database.
    hop = await startTcpHop(server.port);
    pgward = await startPgward({ ...server, port: hop.port }, { upstreamTls: 'disable', auth: oidcAuth(provider.issuer) });
  });
  afterAll(async () => {
    await pgward.stop();
    await hop.close();
    await provider.close();
  });

  /** Asserts the token is refused with the generic 28P01 and that nothing reached the upstream. */
  async function expectRefused(token: string, user = USER): Promise<void> {
    const before = hop.accepted;
    const error = await errorOf(() => connectPg(pgward, user, token));
    expect(error.code).toBe('28P01');
    expect(error.message).toBe(`password authentication failed for user "${user}"`);
    expect(hop.accepted).toBe(before);
  }

  it('logs in with a provider token through psql, as the configured service role', async () => {
    const token = await provider.token();
    const result = await psql(pgward, `user=${USER} sslmode=require`, ['-c', 'select current_user'], { env: { PGPASSWORD: token } });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe(SERVICE.user);
  });

  it('logs in with node-postgres and keeps the client database', async () => {
    const client = await connectPg(pgward, USER, await provider.token());
    const { rows } = await client.query('select current_user as who, current_database() as db');
    expect(rows[0]).toEqual({ who: SERVICE.user, db: 'app' });
    await client.end();
  });

  it('does not let the client choose the upstream role or other unlisted settings at startup', async () => {
    for (const options of ['-c role=postgres', '-c session_authorization=postgres', '-c debug_print_plan=on']) {
      const error = await errorOf(async () => connectPg(pgward, USER, await provider.token(), { options } as pg.ClientConfig));
      expect(error.code).toBe('42501');
      expect(error.message).toMatch(/is not allowed through pgward/);
    }
    const allowed = await connectPg(pgward, USER, await provider.token(), { options: '-c statement_timeout=5s' } as pg.ClientConfig);
    expect((await allowed.query('show statement_timeout')).rows[0].statement_timeout).toBe('5s');
    await allowed.end();
  });

  it('refuses a token minted for another audience, and a token for another user', async () => {
    await expectRefused(await provider.token('reporting', 'urn:other'));
    await expectRefused(await provider.token('etl'));
    await expectRefused(await provider.token(), 'postgres');
  });

  it('refuses alg none, HS256 keyed with the public key, and a tampered payload', async () => {
    const token = await provider.token();
    const [header, payload, signature] = token.split('.');
    const claims = decodeJwt(token);
    await expectRefused(`${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`);
    const publicKey = JSON.stringify({ kty: signingKey.kty, n: signingKey.n, e: signingKey.e });
    const hs = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', kid: signingKey.kid }).sign(new TextEncoder().encode(publicKey));
    await expectRefused(hs);
    await expectRefused(`${header}.${b64({ ...claims, groups: ['dba'] })}.${signature}`);
    expect(decodeProtectedHeader(token).alg).toBe('RS256');
  });

  it('refuses expired, not-yet-valid, wrong-issuer and unknown-key tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    const iss = provider.issuer;
    await expectRefused(await forge(signingKey, { iss, iat: now - 7200, exp: now - 3600 }));
    await expectRefused(await forge(signingKey, { iss, nbf: now + 3600 }));
    await expectRefused(await forge(signingKey, { iss: 'https://evil.example' }));
    await expectRefused(await forge(await privateJwk('not-published', 'RS256'), { iss }));
  });

  it('refuses a token sent over plaintext with 28000, before reading it', async () => {
    const plain = await startPgward({ ...server, port: hop.port }, { upstreamTls: 'disable', tlsRequired: false, auth: oidcAuth(provider.issuer) });
    const before = hop.accepted;
    const error = await errorOf(() => connectPg(plain, USER, 'x', { ssl: false }));
    expect(error.code).toBe('28000');
    expect(hop.accepted).toBe(before);
    await plain.stop();
  });

  it('refuses an oversized token from its length alone', async () => {
    const client = await RawClient.connect(pgward.port, { tls: { ca: pgward.ssl.ca } });
    client.startup([['user', USER], ['database', 'app']]);
    expect(String.fromCharCode((await client.message())[0]!)).toBe('R');
    // Only the header of a 1 MiB PasswordMessage is sent: the refusal must not wait for the body.
    const header = Buffer.alloc(5);
    header[0] = 'p'.charCodeAt(0);
    header.writeInt32BE(1024 * 1024, 1);
    client.write(header);
    const error = await client.error();
    expect(error.get('C')).toBe('08P01');
    expect(error.get('M')).toMatch(/exceeds the limit/);
  });

  it('keeps connecting clients while the provider rotates its signing key', async () => {
    // A fresh pgward whose keys were just fetched: the rotation lands right after a routine fetch.
    const fresh = await startPgward({ ...server, port: hop.port }, { upstreamTls: 'disable', auth: oidcAuth(provider.issuer) });
    const before = await provider.token();
    await (await connectPg(fresh, USER, before)).end();
    const rotated = await privateJwk('rsa-2', 'RS256');
    provider.useKeys([rotated, signingKey]);
    try {
      const after = await provider.token();
      expect(decodeProtectedHeader(after).kid).toBe('rsa-2');
      const clients = await Promise.all([after, before, after].map((token) => connectPg(fresh, USER, token)));
      for (const client of clients) expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
      await Promise.all(clients.map((c) => c.end()));
    } finally {
      provider.useKeys([signingKey]);
      await fresh.stop();
    }
  });

  it('serves a repeated token from the cache without fetching keys again', async () => {
    const token = await provider.token();
    await (await connectPg(pgward, USER, token)).end();
    const fetches = provider.requests.length;
    await (await connectPg(pgward, USER, token)).end();
    expect(provider.requests.length).toBe(fetches);
  });

  it('ends the session with 57P01 when the token expires', async () => {
    const now = Math.floor(Date.now() / 1000);
    const client = await connectPg(pgward, USER, await forge(signingKey, { iss: provider.issuer, exp: now + 2 }));
    const ended = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
    const error = await ended;
    expect(error.code).toBe('57P01');
    expect(error.message).toMatch(/access token expired/);
  });

  it('ends the session at the configured maximum lifetime', async () => {
    const short = await startPgward({ ...server, port: hop.port }, {
      upstreamTls: 'disable',
      auth: oidcAuth(provider.issuer, { maxSessionLifetimeSeconds: 1 }),
    });
    const client = await connectPg(short, USER, await provider.token());
    const error = await new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
    expect(error.code).toBe('57P01');
    expect(error.message).toMatch(/maximum lifetime/);
    await short.stop();
  });

  it('throttles repeated failures from one address, even for a then-valid token', async () => {
    const guarded = await startPgward({ ...server, port: hop.port }, {
      upstreamTls: 'disable',
      auth: oidcAuth(provider.issuer, { throttle: { maxFailures: 3, windowSeconds: 60, lockoutSeconds: 60 } }),
    });
    for (let i = 0; i < 3; i++) await errorOf(() => connectPg(guarded, USER, `not-a-token-${i}`));
    const error = await errorOf(async () => connectPg(guarded, USER, await provider.token()));
    expect(error.code).toBe('28P01');
    await guarded.stop();
  });

  describe('SASL OAUTHBEARER (RFC 7628), as PostgreSQL 18 libpq speaks it', () => {
    let bearer: PgwardUnderTest;
    beforeAll(async () => {
      bearer = await startPgward({ ...server, port: hop.port }, {
        upstreamTls: 'disable',
        auth: oidcAuth(provider.issuer, {}, { oauthBearer: { issuer: provider.issuer, scope: 'openid db' } }),
      });
    });
    afterAll(() => bearer.stop());

    /** A SASLInitialResponse for OAUTHBEARER carrying `data` (or none, for length -1). */
    function initialResponse(data: string | undefined): Buffer {
      const mechanism = Buffer.from('OAUTHBEARER\0');
      const length = Buffer.alloc(4);
      length.writeInt32BE(data === undefined ? -1 : Buffer.byteLength(data));
      return typedFrame('p', Buffer.concat([mechanism, length, Buffer.from(data ?? '')]));
    }

    async function offer(): Promise<RawClient> {
      const client = await RawClient.connect(bearer.port, { tls: { ca: bearer.ssl.ca } });
      client.startup([['user', USER], ['database', 'app']]);
      const sasl = await client.message();
      expect(sasl.readInt32BE(5)).toBe(10);
      expect(sasl.toString('utf8', 9)).toBe('OAUTHBEARER\0\0');
      return client;
    }

    it('logs in with auth=Bearer in the initial response', async () => {
      const client = await offer();
      client.write(initialResponse(`n,,\x01auth=Bearer ${await provider.token()}\x01\x01`));
      const ok = await client.message();
      expect(ok.readInt32BE(5)).toBe(0);
      await client.until('Z');
      client.write(typedFrame('Q', 'select current_user\0'));
      const row = await client.until('D');
      expect(row.toString('utf8', 11)).toBe(SERVICE.user);
      client.close();
    });

    it('answers a discovery request with the issuer and scope, then closes', async () => {
      const client = await offer();
      client.write(initialResponse(undefined));
      const empty = await client.message();
      expect(empty.readInt32BE(5)).toBe(11);
      client.write(typedFrame('p', 'n,,\x01auth=\x01\x01'));
      const challenge = await client.message();
      expect(challenge.readInt32BE(5)).toBe(11);
      expect(JSON.parse(challenge.toString('utf8', 9))).toEqual({
        status: 'invalid_token',
        'openid-configuration': `${provider.issuer}/.well-known/openid-configuration`,
        scope: 'openid db',
      });
      client.write(typedFrame('p', '\x01'));
      await client.closed();
    });

    it('refuses a bad bearer token after the error challenge with 28P01', async () => {
      const client = await offer();
      const before = hop.accepted;
      client.write(initialResponse(`n,,\x01auth=Bearer not.a.token\x01\x01`));
      const challenge = await client.message();
      expect(JSON.parse(challenge.toString('utf8', 9)).status).toBe('invalid_token');
      client.write(typedFrame('p', '\x01'));
      const error = decodeErrorFields(await client.until('E'));
      expect(error.get('C')).toBe('28P01');
      expect(hop.accepted).toBe(before);
    });

    it('refuses malformed OAUTHBEARER messages with 08P01', async () => {
      const client = await offer();
      client.write(initialResponse('p=tls-server-end-point,,\x01auth=Bearer x\x01\x01'));
      const error = await client.error();
      expect(error.get('C')).toBe('08P01');
      expect(error.get('M')).toBe('malformed OAUTHBEARER message');
    });
  });
});

describe('pgward start with an external OIDC provider, given only its issuer URL and audience', () => {
  const run = promisify(execFile);
  it('accepts the provider tokens through psql', async () => {
    const server = inject('servers')[0]!;
    const provider = await startOidcProvider();
    const dir = mkdtempSync(join(tmpdir(), 'pgward-oidc-'));
    const config = join(dir, 'pgward.yaml');
    writeFileSync(
      config,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        `tls: { cert: ${server.certFile}, key: ${server.keyFile} }`,
        `upstream: { url: "postgres://localhost:${server.port}", tls: { mode: verify-full, ca: ${server.caFile} }, user: scram_user, password: ${TEST_PASSWORDS.scram_user} }`,
        'admin: { enabled: false }',
        `auth: { mode: oidc, oidc: { issuers: [ { issuer: "${provider.issuer}", audience: pgward } ] } }`,
      ].join('\n'),
    );
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../dist/cli.js'), 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          const match = /"message":"pgward listening".*?"port":(\d+)/.exec(stderr);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`pgward exited with ${code}: ${stderr}`)));
      });
      const { stdout } = await run('psql', [`host=127.0.0.1 port=${port} dbname=app user=${USER} sslmode=require`, '-X', '-A', '-t', '-c', 'select current_user'], {
        env: { ...process.env, PGPASSWORD: await provider.token() },
      });
      expect(stdout.trim()).toBe('scram_user');
    } finally {
      child.kill('SIGTERM');
      await provider.close();
    }
  });
});
