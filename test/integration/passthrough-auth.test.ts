import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectPg, errorOf, startPgward, type PgwardUnderTest } from '../helpers/pgward.js';
import { psql } from '../helpers/psql.js';
import { TEST_PASSWORDS } from '../helpers/test-servers.js';

// Every password method, with the upstream link in plaintext (SCRAM relayed
// end to end) and in TLS (SCRAM performed by pgward with channel binding).
const UPSTREAM_MODES = ['disable', 'verify-full'] as const;

describe.each(inject('servers'))('passthrough authentication against PostgreSQL $major', (server) => {
  for (const upstreamTls of UPSTREAM_MODES) {
    describe(`upstream TLS ${upstreamTls}`, () => {
      let pgward: PgwardUnderTest;
      beforeAll(async () => {
        pgward = await startPgward(server, { upstreamTls });
      });
      afterAll(() => pgward.stop());

      it.each([
        ['scram_user', TEST_PASSWORDS.scram_user],
        ['md5_user', TEST_PASSWORDS.md5_user],
        ['password_user', TEST_PASSWORDS.password_user],
        ['trust_user', undefined],
      ] as const)('authenticates %s with node-postgres', async (user, password) => {
        const client = await connectPg(pgward, user, password);
        const { rows } = await client.query('select current_user as who, ssl from pg_stat_ssl where pid = pg_backend_pid()');
        expect(rows[0].who).toBe(user);
        expect(rows[0].ssl).toBe(upstreamTls !== 'disable');
        await client.end();
      });

      it.each([
        ['scram_user', TEST_PASSWORDS.scram_user],
        ['md5_user', TEST_PASSWORDS.md5_user],
        ['password_user', TEST_PASSWORDS.password_user],
      ] as const)('authenticates %s with psql and sslmode=require', async (user, password) => {
        const result = await psql(pgward, `user=${user} sslmode=require`, ['-c', 'select current_user'], { env: { PGPASSWORD: password } });
        expect(result.stderr).toBe('');
        expect(result.stdout.trim()).toBe(user);
      });

      it('reports a wrong password exactly as the database does (28P01)', async () => {
        for (const user of ['scram_user', 'md5_user', 'password_user']) {
          const viaProxy = await errorOf(() => connectPg(pgward, user, 'wrong'));
          const direct = await errorOf(() => connectPg(pgward, user, 'wrong', { direct: true }));
          expect(viaProxy.code).toBe('28P01');
          expect(viaProxy.message).toBe(direct.message);
        }
      });

      it('refuses channel_binding=require with a clear error, since binding cannot cross pgward', async () => {
        const result = await psql(pgward, 'user=scram_user sslmode=require channel_binding=require', ['-c', 'select 1'], {
          env: { PGPASSWORD: TEST_PASSWORDS.scram_user },
        });
        expect(result.code).not.toBe(0);
        expect(result.stderr).toMatch(/channel binding/);
      });

      it('authenticates with postgres.js', async () => {
        const postgres = (await import('postgres')).default;
        const sql = postgres({
          host: pgward.host,
          port: pgward.port,
          user: 'scram_user',
          password: TEST_PASSWORDS.scram_user,
          database: 'app',
          ssl: pgward.ssl,
          max: 1,
        });
        const [row] = await sql`select current_user as who`;
        expect(row?.who).toBe('scram_user');
        await sql.end();
      });
    });
  }
});
