import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RequestCode } from '../../src/protocol/codes.js';
import { encodeCancelRequest, encodeRequest, encodeStartupMessage } from '../../src/protocol/startup-packet.js';
import { connectPg, errorOf, startPgward, type PgwardUnderTest } from '../helpers/pgward.js';
import { RawClient, typedFrame } from '../helpers/raw-client.js';
import { startTcpHop } from '../helpers/tcp-hop.js';
import { TEST_PASSWORDS } from '../helpers/test-servers.js';

const TRUSTED: Array<[string, string]> = [['user', 'trust_user'], ['database', 'app']];

/** A raw TLS session through pgward, authenticated and ready for queries. */
async function readySession(pgward: PgwardUnderTest): Promise<RawClient> {
  const client = await RawClient.connect(pgward.port, { tls: { ca: pgward.ssl.ca } });
  client.startup(TRUSTED);
  await client.until('Z');
  return client;
}

describe.each(inject('servers'))('client-side protocol handling (PostgreSQL $major upstream)', (server) => {
  let pgward: PgwardUnderTest;
  beforeAll(async () => {
    pgward = await startPgward(server);
  });
  afterAll(() => pgward.stop());

  it('refuses a plaintext startup with 28000 and a hint', async () => {
    const client = await RawClient.connect(pgward.port);
    client.startup(TRUSTED);
    const error = await client.error();
    expect(error.get('S')).toBe('FATAL');
    expect(error.get('C')).toBe('28000');
    expect(error.get('H')).toMatch(/sslmode=require/);
    await client.closed();
  });

  it('answers GSSENCRequest with N and then accepts an SSLRequest', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: pgward.port });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(encodeRequest(RequestCode.GSSENCRequest));
    expect((await new Promise<Buffer>((resolve) => socket.once('data', resolve))).toString()).toBe('N');
    socket.write(encodeRequest(RequestCode.SSLRequest));
    expect((await new Promise<Buffer>((resolve) => socket.once('data', resolve))).toString()).toBe('S');
    const secure = tls.connect({ socket, ca: pgward.ssl.ca, servername: 'localhost' });
    await new Promise((resolve) => secure.once('secureConnect', resolve));
    secure.write(encodeStartupMessage(TRUSTED));
    const first = await new Promise<Buffer>((resolve) => secure.once('data', resolve));
    expect(String.fromCharCode(first[0]!)).toBe('R');
    secure.destroy();
  });

  it('refuses bytes sent after an SSLRequest before the handshake (CVE-2021-23214)', async () => {
    const client = await RawClient.connect(pgward.port);
    client.write(Buffer.concat([encodeRequest(RequestCode.SSLRequest), encodeStartupMessage(TRUSTED)]));
    const error = await client.error();
    expect(error.get('C')).toBe('08P01');
    expect(error.get('M')).toMatch(/unencrypted data after SSL request/);
  });

  it('negotiates protocol 3.2 and unknown _pq_ options down to 3.0', async () => {
    const client = await RawClient.connect(pgward.port, { tls: { ca: pgward.ssl.ca } });
    client.startup([...TRUSTED, ['_pq_.bogus_option', 'on']], 2);
    const negotiate = await client.message();
    expect(String.fromCharCode(negotiate[0]!)).toBe('v');
    expect(negotiate.readInt32BE(5)).toBe(3 << 16);
    expect(negotiate.readInt32BE(9)).toBe(1);
    expect(negotiate.toString('utf8', 13, negotiate.length - 1)).toBe('_pq_.bogus_option');
    const key = await client.until('K');
    // 3.0 cancel keys are four bytes.
    expect(key.readInt32BE(1)).toBe(12);
    await client.until('Z');
    client.close();
  });

  it('refuses malformed startup packets with 08P01 and unsupported protocols with 0A000', async () => {
    const short = await RawClient.connect(pgward.port);
    short.write(Buffer.from([0, 0, 0, 3, 0, 0, 0, 0]));
    expect((await short.error()).get('C')).toBe('08P01');

    const huge = await RawClient.connect(pgward.port);
    huge.write(Buffer.from([0x7f, 0, 0, 0, 0, 3, 0, 0]));
    expect((await huge.error()).get('C')).toBe('08P01');

    const v2 = await RawClient.connect(pgward.port);
    v2.write(encodeRequest(2 << 16));
    expect((await v2.error()).get('C')).toBe('0A000');
  });

  it('closes only the offending session on an unknown message type (08P01)', async () => {
    const bystander = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user);
    const offender = await readySession(pgward);
    offender.write(typedFrame('~', 'garbage'));
    const error = await offender.error();
    expect(error.get('C')).toBe('08P01');
    expect(error.get('M')).toMatch(/invalid message type/);
    await offender.closed();
    expect((await bystander.query('select 1 as ok')).rows[0].ok).toBe(1);
    await bystander.end();
  });

  it('ignores cancel requests with keys it never issued', async () => {
    const victim = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user);
    const pid = (victim as unknown as { processID: number }).processID;
    const running = victim.query('select pg_sleep(1.5) as slept');
    for (const key of [Buffer.from([0, 0, 0, 0]), Buffer.from([1, 2, 3, 4])]) {
      const socket = net.connect({ host: '127.0.0.1', port: pgward.port });
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.end(encodeCancelRequest(pid, key));
      await new Promise((resolve) => socket.once('close', resolve));
    }
    const { rows } = await running;
    expect(rows).toHaveLength(1);
    await victim.end();
  });

  it('refuses direct TLS without the postgresql ALPN protocol', async () => {
    const secure = tls.connect({ host: '127.0.0.1', port: pgward.port, ca: pgward.ssl.ca, servername: 'localhost' });
    await new Promise((resolve) => secure.once('secureConnect', resolve));
    const data = await new Promise<Buffer>((resolve) => secure.once('data', resolve));
    expect(String.fromCharCode(data[0]!)).toBe('E');
    expect(data.toString()).toMatch(/ALPN/);
    secure.destroy();
  });

  it('holds a slow reader: the backend waits on ClientWrite instead of pgward buffering the result', async () => {
    const client = await readySession(pgward);
    const { rows } = await (async () => {
      const pidClient = client;
      pidClient.write(typedFrame('Q', 'select pg_backend_pid()\0'));
      const row = await pidClient.until('D');
      await pidClient.until('Z');
      return { rows: [Number(row.toString('utf8', 11))] };
    })();
    const pid = rows[0]!;
    client.reader.detach(); // stop reading: the socket stays paused
    client.write(typedFrame('Q', "select repeat('x', 1000) from generate_series(1, 2000000)\0"));
    const admin = await connectPg(pgward, server.superuser, server.superuserPassword, { direct: true });
    // The backend must sit in ClientWrite, sample after sample, while pgward holds little.
    let consecutive = 0;
    let maxBuffered = 0;
    for (let i = 0; i < 100 && consecutive < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const result = await admin.query('select wait_event from pg_stat_activity where pid = $1', [pid]);
      consecutive = result.rows[0]?.wait_event === 'ClientWrite' ? consecutive + 1 : 0;
      if (consecutive > 0) maxBuffered = Math.max(maxBuffered, pgward.proxy.bufferedBytes);
    }
    expect(consecutive).toBe(10);
    expect(maxBuffered).toBeLessThan(4 * 1024 * 1024);
    client.close();
    await admin.end();
  });

  it('holds a fast writer: a COPY into a busy backend backs up in the client, not in pgward', async () => {
    const admin = await connectPg(pgward, server.superuser, server.superuserPassword, { direct: true });
    await admin.query('create table if not exists copy_target (line text)');
    await admin.query('grant all on copy_target to public');
    await admin.query('begin');
    await admin.query('lock table copy_target in access exclusive mode');
    const client = await readySession(pgward);
    client.write(typedFrame('Q', 'copy copy_target from stdin\0'));
    const row = typedFrame('d', `${'z'.repeat(1000)}\n`);
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => row));
    for (let i = 0; i < 64; i++) client.write(batch); // ~64 MB
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // With the backend blocked on the lock, only socket buffers may hold data: most of it must still sit in the client.
    expect(client.socket.writableLength).toBeGreaterThan(32 * 1024 * 1024);
    await admin.query('rollback');
    client.write(typedFrame('c'));
    const complete = await client.until('C');
    expect(complete.toString('utf8', 5, complete.length - 1)).toBe('COPY 64000');
    await client.until('Z');
    client.close();
    await admin.end();
  });
});

describe.each(inject('servers'))('session lifecycle (PostgreSQL $major upstream)', (server) => {
  it('accepts plaintext when tls.required is false', async () => {
    const pgward = await startPgward(server, { tlsRequired: false });
    const client = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user, { ssl: false });
    expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
    await client.end();
    await pgward.stop();
  });

  it('drops a client that does not finish its startup in time', async () => {
    const pgward = await startPgward(server, { startupTimeoutMs: 300 });
    const silent = await RawClient.connect(pgward.port);
    await silent.closed();
    const stalled = await RawClient.connect(pgward.port, { tls: { ca: pgward.ssl.ca } });
    stalled.startup([['user', 'scram_user'], ['database', 'app']]);
    const error = await stalled.error();
    expect(error.get('C')).toBe('57014');
    expect(error.get('M')).toBe('canceling authentication due to timeout');
    await pgward.stop();
  });

  it('refuses frames over the configured maximum size with 08P01', async () => {
    const pgward = await startPgward(server, { maxMessageSize: 4096 });
    const client = await readySession(pgward);
    client.write(typedFrame('Q', `select '${'x'.repeat(10_000)}'\0`));
    const error = await client.error();
    expect(error.get('C')).toBe('08P01');
    expect(error.get('M')).toMatch(/exceeds the limit of 4096/);
    await pgward.stop();
  });

  it('ends sessions with 57P01 after the shutdown grace period and refuses new ones', async () => {
    const pgward = await startPgward(server);
    const client = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user);
    const ended = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
    const stopping = pgward.stop(300);
    const error = await ended;
    expect(error.code).toBe('57P01');
    await stopping;
    const refused = await errorOf(() => connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user));
    expect(refused.message).toMatch(/ECONNREFUSED/);
  });

  it('lets sessions finish within the grace period', async () => {
    const pgward = await startPgward(server);
    const client = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user);
    const query = client.query('select pg_sleep(0.5) as done');
    const stopping = pgward.stop(10_000);
    await query;
    await client.end();
    await stopping;
  });

  it('reports an unreachable upstream with 08001', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const pgward = await startPgward({ ...server, port });
    const error = await errorOf(() => connectPg(pgward, 'scram_user', 'x'));
    expect(error.code).toBe('08001');
    await pgward.stop();
  });

  it('reports a lost upstream link with 08006 and keeps serving others', async () => {
    // A TCP hop between pgward and the server that the test can cut.
    const hop = await startTcpHop(server.port);
    const pgward = await startPgward({ ...server, port: hop.port }, { upstreamTls: 'disable' });
    const client = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user);
    const lost = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
    hop.cutAll();
    const error = await lost;
    expect(error.code).toBe('08006');
    const again = await connectPg(pgward, 'scram_user', TEST_PASSWORDS.scram_user);
    expect((await again.query('select 1 as ok')).rows[0].ok).toBe(1);
    await again.end();
    await pgward.stop();
    await hop.close();
  });
});

