import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectPg, errorOf, startPgward, type PgwardUnderTest } from '../helpers/pgward.js';
import { TEST_PASSWORDS } from '../helpers/test-servers.js';
import { psql } from '../helpers/psql.js';

const USER = 'scram_user';
const PASSWORD = TEST_PASSWORDS.scram_user;

describe.each(inject('servers'))('relay through pgward to PostgreSQL $major', (server) => {
  let pgward: PgwardUnderTest;
  let admin: pg.Client;
  beforeAll(async () => {
    pgward = await startPgward(server);
    admin = await connectPg(pgward, server.superuser, server.superuserPassword, { direct: true });
    await admin.query('create table if not exists relay_items (id int primary key, label text, payload bytea)');
    await admin.query('grant all on relay_items to public');
  });
  afterAll(async () => {
    await admin.end();
    await pgward.stop();
  });

  const sqlClient = (options: postgres.Options<{}> = {}) =>
    postgres({ host: pgward.host, port: pgward.port, user: USER, password: PASSWORD, database: 'app', ssl: pgward.ssl, max: 1, onnotice: () => {}, ...options });

  it('gives the same answers as the database for simple and multi-statement queries', async () => {
    const viaProxy = await connectPg(pgward, USER, PASSWORD);
    const direct = await connectPg(pgward, USER, PASSWORD, { direct: true });
    const text = "select 1 as a, 'x'::text as b, now()::date as d; select generate_series(1,3) as n";
    const [p1, p2] = (await viaProxy.query(text)) as unknown as pg.QueryResult[];
    const [d1, d2] = (await direct.query(text)) as unknown as pg.QueryResult[];
    expect(p1!.rows).toEqual(d1!.rows);
    expect(p2!.rows).toEqual(d2!.rows);
    expect(p1!.fields.map((f) => [f.name, f.dataTypeID])).toEqual(d1!.fields.map((f) => [f.name, f.dataTypeID]));
    const error = await errorOf(() => viaProxy.query('select * from no_such_table'));
    expect(error.code).toBe('42P01');
    // The session stays usable after an error.
    expect((await viaProxy.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    await viaProxy.end();
    await direct.end();
  });

  it('keeps pg_backend_pid consistent with the BackendKeyData the client got', async () => {
    const client = await connectPg(pgward, USER, PASSWORD);
    const { rows } = await client.query('select pg_backend_pid() as pid');
    expect(rows[0].pid).toBe((client as unknown as { processID: number }).processID);
    await client.end();
  });

  it('forwards startup options and application_name, and adds no client_encoding of its own', async () => {
    const result = await psql(
      pgward,
      `user=${USER} sslmode=require application_name=relaytest options='-c search_path=pg_catalog,public -c work_mem=8MB'`,
      ['-c', "select current_setting('search_path'), current_setting('work_mem'), current_setting('application_name')"],
      { env: { PGPASSWORD: PASSWORD } },
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('pg_catalog,public|8MB|relaytest');
  });

  it('reuses prepared statements across executes and returns binary-format results', async () => {
    const client = await connectPg(pgward, USER, PASSWORD);
    for (let i = 0; i < 5; i++) {
      const { rows } = await client.query({ name: 'add-one', text: 'select $1::int + 1 as n', values: [i] });
      expect(rows[0].n).toBe(i + 1);
    }
    await client.end();
    const binary = await connectPg(pgward, USER, PASSWORD, { binary: true } as pg.ClientConfig);
    const { rows } = await binary.query('select 42::int4 as n, 1.5::float8 as f, true as t');
    expect(rows[0]).toEqual({ n: 42, f: 1.5, t: true });
    await binary.end();
  });

  it('relays notices and parameter status changes', async () => {
    const client = await connectPg(pgward, USER, PASSWORD);
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    await client.query("do $$ begin raise notice 'hello from plpgsql'; end $$");
    expect(notices).toContain('hello from plpgsql');
    const statuses: Array<{ parameterName: string; parameterValue: string }> = [];
    const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
    connection.on('parameterStatus', (message) => statuses.push(message));
    await client.query("set application_name = 'changed'");
    expect(statuses).toContainEqual(expect.objectContaining({ parameterName: 'application_name', parameterValue: 'changed' }));
    await client.end();
  });

  it('delivers LISTEN/NOTIFY notifications', async () => {
    const listener = await connectPg(pgward, USER, PASSWORD);
    const notifier = await connectPg(pgward, USER, PASSWORD);
    await listener.query('listen relay_channel');
    const received = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve));
    await notifier.query("notify relay_channel, 'payload-1'");
    const notification = await received;
    expect(notification.channel).toBe('relay_channel');
    expect(notification.payload).toBe('payload-1');
    await listener.end();
    await notifier.end();
  });

  it('copies data in and out', async () => {
    const sql = sqlClient();
    await sql`delete from relay_items where id between 1000 and 2999`;
    const rows = Array.from({ length: 2000 }, (_, i) => `${1000 + i}\tlabel ${i}\t\\\\x${(i % 256).toString(16).padStart(2, '0')}\n`);
    const writable = await sql`copy relay_items (id, label, payload) from stdin`.writable();
    await pipeline(Readable.from(rows), writable);
    const [counted] = await sql`select count(*)::int as count from relay_items where id between 1000 and 2999`;
    expect(counted?.count).toBe(2000);

    const chunks: Buffer[] = [];
    const readable = await sql`copy (select id, label from relay_items where id between 1000 and 2999 order by id) to stdout`.readable();
    await pipeline(readable, new Writable({ write(chunk, _enc, done) { chunks.push(chunk); done(); } }));
    const lines = Buffer.concat(chunks).toString().trim().split('\n');
    expect(lines).toHaveLength(2000);
    expect(lines[0]).toBe('1000\tlabel 0');
    await sql.end();
  });

  it('reports a failed COPY and keeps the session usable', async () => {
    const result = await psql(pgward, `user=${USER} sslmode=require`, ['-c', '\\copy relay_items (id, label) from stdin', '-c', 'select 7'], {
      env: { PGPASSWORD: PASSWORD },
      input: 'not-a-number\tlabel\n\\.\n',
    });
    expect(result.stderr).toMatch(/invalid input syntax for type integer/);
    const client = await connectPg(pgward, USER, PASSWORD);
    expect((await client.query('select 1 as one')).rows[0].one).toBe(1);
    await client.end();
  });

  it('cancels a running query through its own cancel key', async () => {
    const sql = sqlClient();
    const query = sql`select pg_sleep(30)`;
    const started = Date.now();
    setTimeout(() => query.cancel(), 300);
    const error = await errorOf(() => query);
    expect(error.code).toBe('57014');
    expect(Date.now() - started).toBeLessThan(15_000);
    const [row] = await sql`select 1 as still_alive`;
    expect(row?.still_alive).toBe(1);
    await sql.end();
  });

  it('cancels with psql on SIGINT', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn('psql', [`host=${pgward.host} port=${pgward.port} dbname=app user=${USER} sslmode=require`, '-X', '-c', 'select pg_sleep(30)'], {
      env: { ...process.env, PGPASSWORD: PASSWORD },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise((r) => setTimeout(r, 1000));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/canceling statement due to user request/);
  });

  it('tells the client when its backend is terminated (57P01), as the database does', async () => {
    const victim = await connectPg(pgward, USER, PASSWORD);
    const { rows } = await victim.query('select pg_backend_pid() as pid');
    const ended = new Promise<Error & { code?: string }>((resolve) => victim.once('error', resolve));
    await admin.query('select pg_terminate_backend($1)', [rows[0].pid]);
    const error = await ended;
    expect(error.code).toBe('57P01');
  });

  it('moves a 10 MB row in both directions', async () => {
    const client = await connectPg(pgward, USER, PASSWORD);
    const big = 'y'.repeat(10 * 1024 * 1024);
    const { rows } = await client.query('select length($1::text) as n, md5($1::text) as h', [big]);
    expect(rows[0].n).toBe(big.length);
    const back = await client.query("select repeat('z', 10 * 1024 * 1024) as v");
    expect(back.rows[0].v.length).toBe(10 * 1024 * 1024);
    await client.end();
  });

  it('runs a psql large-object import, which uses the FunctionCall protocol', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'pgward-lo-')), 'blob.bin');
    writeFileSync(file, Buffer.alloc(100_000, 5));
    const result = await psql(pgward, `user=${server.superuser} sslmode=require`, ['-c', `\\lo_import '${file}'`], { env: { PGPASSWORD: server.superuserPassword } });
    expect(result.stderr).toBe('');
    const oid = /lo_import (\d+)/.exec(result.stdout)?.[1];
    expect(oid).toBeDefined();
    const { rows } = await admin.query('select length(lo_get($1::oid)) as n', [oid]);
    expect(rows[0].n).toBe(100_000);
    await admin.query('select lo_unlink($1::oid)', [oid]);
  });

  it('serves two psql sessions at once, each with its own backend', async () => {
    const query = ['-c', 'select pg_backend_pid()'];
    const env = { env: { PGPASSWORD: PASSWORD } };
    const [a, b] = await Promise.all([
      psql(pgward, `user=${USER} sslmode=require`, query, env),
      psql(pgward, `user=${USER} sslmode=require`, query, env),
    ]);
    expect(a.stdout.trim()).toMatch(/^\d+$/);
    expect(b.stdout.trim()).toMatch(/^\d+$/);
    expect(a.stdout.trim()).not.toBe(b.stdout.trim());
  });

  it('connects with PostgreSQL 17 direct TLS negotiation', async () => {
    const client = await connectPg(pgward, USER, PASSWORD, { sslnegotiation: 'direct' } as pg.ClientConfig);
    const { rows } = await client.query('select 1 as one');
    expect(rows[0].one).toBe(1);
    await client.end();
  });
});
