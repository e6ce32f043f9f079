/**
 * The test servers themselves: every role can log in with its own password
 * method, over TLS and in plain text, on every PostgreSQL major under test.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { TEST_DATABASE, TEST_PASSWORDS, TEST_ROLES, type TestRole, type TestServerInfo } from '../helpers/test-servers.js';

const servers = inject('servers');

function connect(server: TestServerInfo, user: TestRole, tls: boolean, password?: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    database: TEST_DATABASE,
    user,
    password: password ?? (user === 'trust_user' ? undefined : TEST_PASSWORDS[user]),
    ssl: tls ? { ca: readFileSync(server.caFile) } : false,
  });
  return client.connect().then(() => client);
}

describe('test server list', () => {
  it('has at least one server', () => {
    expect(servers.length).toBeGreaterThan(0);
  });
});

describe.each(servers.map((s) => [s.name, s] as const))('%s', (_name, server) => {
  describe.each([
    ['over TLS', true],
    ['in plain text', false],
  ] as const)('%s', (_transport, tls) => {
    it.each(TEST_ROLES)('logs in as %s', async (role) => {
      const client = await connect(server, role, tls);
      try {
        const { rows } = await client.query<{ user: string; version: string; ssl: boolean }>(
          'SELECT current_user AS user, version() AS version, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
        );
        expect(rows[0]?.user).toBe(role);
        expect(rows[0]?.version).toContain(`PostgreSQL ${server.major}.`);
        expect(rows[0]?.ssl).toBe(tls);
      } finally {
        await client.end();
      }
    });

    it.each(['md5_user', 'password_user', 'scram_user'] as const)('rejects a wrong password for %s with 28P01', async (role) => {
      const failure = await connect(server, role, tls, 'not-the-password').then(
        async (client) => {
          await client.end();
          return undefined;
        },
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(pg.DatabaseError);
      expect((failure as pg.DatabaseError).code).toBe('28P01');
    });
  });

  it('stores an md5 hash only for md5_user and allows 200 connections', async () => {
    const admin = new pg.Client({
      host: server.host,
      port: server.port,
      database: 'postgres',
      user: server.superuser,
      password: server.superuserPassword,
      ssl: { ca: readFileSync(server.caFile) },
    });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ rolname: string; hash: string | null }>(
        `SELECT rolname, left(rolpassword, 13) AS hash FROM pg_authid
          WHERE rolname IN ('md5_user', 'password_user', 'scram_user', 'trust_user') ORDER BY rolname`,
      );
      const stored = Object.fromEntries(rows.map((r) => [r.rolname, r.hash]));
      expect(stored['md5_user']).toMatch(/^md5/);
      expect(stored['password_user']).toBe('SCRAM-SHA-256');
      expect(stored['scram_user']).toBe('SCRAM-SHA-256');
      expect(stored['trust_user']).toBeNull();
      const { rows: max } = await admin.query<{ max_connections: string }>('SHOW max_connections');
      expect(max[0]?.max_connections).toBe('200');
    } finally {
      await admin.end();
    }
  });
});
