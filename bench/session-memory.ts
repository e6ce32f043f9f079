/**
 * Memory per session: RSS of a proxy before and after holding N idle,
 * authenticated TLS sessions (each has run one query).
 */
import pg from 'pg';
import { readRssKiB, sleep } from './rss.js';
import { clientConfig, type Credentials, type Target } from './target.js';

export interface SessionMemory {
  sessions: number;
  beforeKiB: number;
  withSessionsKiB: number;
  afterCloseKiB: number;
  perSessionKiB: number;
}

/** Opening hundreds at once would measure the login storm, not the steady state. */
const OPEN_CONCURRENCY = 20;
const SETTLE_MS = 3_000;
const WARM_UP_SESSIONS = 3;

export async function measureSessionMemory(
  target: Target,
  pid: number,
  credentials: Credentials,
  count: number,
): Promise<SessionMemory> {
  // One-time costs (TLS context use, lazily loaded code) are not per-session.
  const warm = await openSessions(target, credentials, WARM_UP_SESSIONS);
  await closeSessions(warm);
  await sleep(SETTLE_MS);
  const beforeKiB = await readRssKiB(pid);

  const clients = await openSessions(target, credentials, count);
  let withSessionsKiB: number;
  try {
    await sleep(SETTLE_MS);
    withSessionsKiB = await readRssKiB(pid);
  } finally {
    await closeSessions(clients);
  }
  await sleep(SETTLE_MS);
  const afterCloseKiB = await readRssKiB(pid);
  return {
    sessions: count,
    beforeKiB,
    withSessionsKiB,
    afterCloseKiB,
    perSessionKiB: (withSessionsKiB - beforeKiB) / count,
  };
}

async function openSessions(target: Target, credentials: Credentials, count: number): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  let next = 0;
  let ready = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const client = new pg.Client(clientConfig(target, credentials));
      client.on('error', () => {});
      clients.push(client);
      await client.connect();
      await client.query('select 1');
      ready++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, worker));
  } catch (error) {
    await closeSessions(clients);
    throw new Error(`opening ${count} sessions through ${target.name} failed with ${ready} open: ${(error as Error).message}`);
  }
  return clients;
}

async function closeSessions(clients: pg.Client[]): Promise<void> {
  await Promise.all(clients.map((client) => client.end().catch(() => {})));
}
