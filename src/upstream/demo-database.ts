/**
 * The embedded default behind `npm start` with no upstream configured: a
 * PostgreSQL 18 from the bundled binaries, TLS on with the dev certificates,
 * holding a small `demo` database of fake personal data for policies to mask.
 *
 * Layout of stateDir (./.pgward by default):
 *   postgres/          the cluster
 *   certs/             dev CA + server certificate (pgward's own listener uses them too)
 *   credentials.json   superuser and its generated password (0600)
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { ensureDevCertificates, type CertificateFiles } from '../client/dev-certificates.js';
import { embeddedPostgresBinDir, startPostgres, type RunningPostgres } from './postgres-server.js';

export interface EmbeddedDefault {
  /** postgres://user:pass@127.0.0.1:port/demo */
  url: string;
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  certificates: CertificateFiles;
  server: RunningPostgres;
}

const SUPERUSER = 'pgward_admin';
const DATABASE = 'demo';

export async function startEmbeddedDefault(stateDir: string, log: (msg: string) => void): Promise<EmbeddedDefault> {
  const root = resolve(stateDir);
  // 0711: when pgward runs as root, PostgreSQL runs as another user and must
  // traverse this directory to reach postgres/, without listing it.
  await mkdir(root, { recursive: true, mode: 0o711 });
  const certificates = await ensureDevCertificates(join(root, 'certs'));
  const credentials = await loadOrCreateCredentials(join(root, 'credentials.json'));

  const server = await startPostgres({
    binDir: embeddedPostgresBinDir(),
    dataDir: join(root, 'postgres'),
    superuser: credentials.user,
    superuserPassword: credentials.password,
    tls: { certFile: certificates.certFile, keyFile: certificates.keyFile },
    log: (line) => log(`postgres: ${line}`),
  });
  try {
    const ca = await readFile(certificates.caFile);
    const connect = (database: string) =>
      new pg.Client({
        host: server.host,
        port: server.port,
        user: credentials.user,
        password: credentials.password,
        database,
        ssl: { ca },
      });
    await createDemoDatabase(connect, log);
    await seedDemoDatabase(connect, log);
  } catch (err) {
    await server.stop();
    throw err;
  }

  const { user, password } = credentials;
  return {
    url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${server.host}:${server.port}/${DATABASE}`,
    host: server.host,
    port: server.port,
    database: DATABASE,
    user,
    password,
    certificates,
    server,
  };
}

// ---------------------------------------------------------------------------
// Credentials

interface Credentials {
  user: string;
  password: string;
}

/** Generated on first run and kept: the cluster stores the password initdb was given. */
async function loadOrCreateCredentials(file: string): Promise<Credentials> {
  try {
    return parseCredentials(file, await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const fresh: Credentials = { user: SUPERUSER, password: randomBytes(24).toString('base64url') };
  try {
    await writeFile(file, JSON.stringify(fresh, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    return fresh;
  } catch (err) {
    // Lost a race with another starter: use what it wrote.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return parseCredentials(file, await readFile(file, 'utf8'));
    throw err;
  }
}

function parseCredentials(file: string, text: string): Credentials {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON`);
  }
  const { user, password } = (value ?? {}) as Partial<Record<keyof Credentials, unknown>>;
  if (typeof user !== 'string' || typeof password !== 'string' || !user || !password) {
    throw new Error(`${file} must hold {"user": "...", "password": "..."}`);
  }
  return { user, password };
}

// ---------------------------------------------------------------------------
// Schema and seed

type Connect = (database: string) => pg.Client;

async function createDemoDatabase(connect: Connect, log: (msg: string) => void): Promise<void> {
  const client = connect('postgres');
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (found.rowCount) return;
    log(`creating database ${DATABASE}`);
    await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS customers (
  id            serial PRIMARY KEY,
  full_name     text NOT NULL,
  email         text NOT NULL UNIQUE,
  ssn           text,            -- US social security number style: 123-45-6789
  region        text NOT NULL,   -- eu | us | apac
  salary        numeric(10,2),
  card_number   text,            -- 16 digits, grouped with spaces or dashes
  date_of_birth date,
  created_at    timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
  id          serial PRIMARY KEY,
  customer_id int REFERENCES customers,
  amount      numeric(10,2),
  status      text,
  ordered_at  timestamptz
);

CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);
`;

const INSERT_CUSTOMER = `
INSERT INTO customers (full_name, email, ssn, region, salary, card_number, date_of_birth, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id`;

const INSERT_ORDER = `
INSERT INTO orders (customer_id, amount, status, ordered_at)
VALUES ($1, $2, $3, $4)`;

async function seedDemoDatabase(connect: Connect, log: (msg: string) => void): Promise<void> {
  const client = connect(DATABASE);
  await client.connect();
  try {
    await seedDemoData(client, log);
  } finally {
    await client.end();
  }
}

/**
 * Creates the demo tables if missing and fills them only while customers is
 * empty, so restarts never duplicate rows. Takes a connected client to the
 * database to fill (tests seed their own databases with it).
 */
export async function seedDemoData(client: pg.Client, log: (msg: string) => void = () => {}): Promise<void> {
  try {
    await client.query('BEGIN');
    await client.query(SCHEMA_SQL);
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM customers');
    if (rows[0]?.n === '0') {
      const { customers, orders } = demoRows();
      const ids: number[] = [];
      for (const c of customers) {
        const inserted = await client.query<{ id: number }>(INSERT_CUSTOMER, [
          c.fullName,
          c.email,
          c.ssn,
          c.region,
          c.salary,
          c.cardNumber,
          c.dateOfBirth,
          c.createdAt,
        ]);
        ids.push(inserted.rows[0]!.id);
      }
      for (const o of orders) {
        await client.query(INSERT_ORDER, [ids[o.customer], o.amount, o.status, o.orderedAt]);
      }
      log(`seeded ${client.database ?? 'demo'}: ${customers.length} customers, ${orders.length} orders`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Fake people: deterministic, so every fresh demo database looks the same.

interface DemoCustomer {
  fullName: string;
  email: string;
  ssn: string;
  region: 'eu' | 'us' | 'apac';
  salary: string;
  cardNumber: string;
  dateOfBirth: string;
  createdAt: string;
}

interface DemoOrder {
  /** Index into the customers array. */
  customer: number;
  amount: string;
  status: string;
  orderedAt: string;
}

const NAMES: Record<DemoCustomer['region'], { first: string[]; last: string[] }> = {
  eu: {
    first: ['Sophie', 'Lukas', 'Camille', 'Matteo', 'Ingrid', 'Mateusz', 'Elena', 'Jonas', 'Chiara', 'Pieter', 'Aoife', 'Henrik'],
    last: ['Dubois', 'Müller', 'Rossi', 'Kowalski', 'Jansen', 'Lindqvist', 'García', 'Novak', "O'Brien", 'Schmidt', 'Moreau', 'Fischer'],
  },
  us: {
    first: ['Emily', 'James', 'Olivia', 'Marcus', 'Ava', 'Daniel', 'Grace', 'Tyler', 'Hannah', 'Carlos', 'Madison', 'Ethan'],
    last: ['Johnson', 'Carter', 'Nguyen', 'Williams', 'Brooks', 'Martinez', 'Patel', 'Thompson', 'Reed', 'Coleman', 'Hayes', 'Bennett'],
  },
  apac: {
    first: ['Hiroshi', 'Priya', 'Wei', 'Min-jun', 'Aiko', 'Arjun', 'Mei', 'Siti', 'Kenji', 'Ananya', 'Jia', 'Rahul'],
    last: ['Tanaka', 'Sharma', 'Chen', 'Kim', 'Watanabe', 'Singh', 'Lim', 'Rahman', 'Nakamura', 'Wong', 'Park', 'Iyer'],
  },
};
const REGIONS = ['eu', 'us', 'apac'] as const;
// Reserved for documentation (RFC 2606), so no demo address can reach a real inbox.
const EMAIL_DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example'];
const ORDER_STATUSES: Array<[status: string, weight: number]> = [
  ['paid', 40],
  ['shipped', 30],
  ['pending', 15],
  ['refunded', 8],
  ['cancelled', 7],
];
const CUSTOMER_COUNT = 30;
const ORDER_COUNT = 80;
const DAY_MS = 86_400_000;

export function demoRows(): { customers: DemoCustomer[]; orders: DemoOrder[] } {
  const random = mulberry32(0x9e3779b9);
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const pad = (n: number, width: number) => String(n).padStart(width, '0');

  const customers: DemoCustomer[] = [];
  const usedNames = new Set<string>();
  for (let i = 0; i < CUSTOMER_COUNT; i++) {
    const region = REGIONS[i % REGIONS.length]!;
    let first: string;
    let last: string;
    do {
      first = pick(NAMES[region].first);
      last = pick(NAMES[region].last);
    } while (usedNames.has(`${first} ${last}`));
    usedNames.add(`${first} ${last}`);

    const created = Date.UTC(2024, 0, 3) + i * 11 * DAY_MS + int(0, 86_399) * 1000;
    customers.push({
      fullName: `${first} ${last}`,
      email: `${asciiLocalPart(first)}.${asciiLocalPart(last)}@${pick(EMAIL_DOMAINS)}`,
      // Areas 000, 666 and 9xx are never issued; stay in the ordinary range so it looks real.
      ssn: `${pad(int(100, 665), 3)}-${pad(int(1, 99), 2)}-${pad(int(1, 9999), 4)}`,
      region,
      salary: (int(3_800_000, 18_500_000) / 100).toFixed(2),
      cardNumber: cardNumber(random, i % 2 === 0 ? ' ' : '-'),
      dateOfBirth: `${int(1955, 2002)}-${pad(int(1, 12), 2)}-${pad(int(1, 28), 2)}`,
      createdAt: new Date(created).toISOString(),
    });
  }

  const totalWeight = ORDER_STATUSES.reduce((sum, [, w]) => sum + w, 0);
  const orders: DemoOrder[] = [];
  for (let i = 0; i < ORDER_COUNT; i++) {
    const customer = int(0, CUSTOMER_COUNT - 1);
    let roll = random() * totalWeight;
    const status = ORDER_STATUSES.find(([, w]) => (roll -= w) < 0)?.[0] ?? 'paid';
    const after = Date.parse(customers[customer]!.createdAt) + int(1, 400) * DAY_MS + int(0, 86_399) * 1000;
    orders.push({
      customer,
      amount: (int(499, 95_000) / 100).toFixed(2),
      status,
      orderedAt: new Date(after).toISOString(),
    });
  }
  orders.sort((a, b) => a.orderedAt.localeCompare(b.orderedAt));
  return { customers, orders };
}

/** "Müller" -> "muller", "O'Brien" -> "obrien", "Min-jun" -> "minjun". */
function asciiLocalPart(name: string): string {
  return name
    .normalize('NFD')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();
}

/** A Luhn-valid 16-digit number with a Visa (4) or Mastercard (51-55) prefix, in groups of four. */
function cardNumber(random: () => number, separator: string): string {
  const digits = random() < 0.5 ? [4] : [5, 1 + Math.floor(random() * 5)];
  while (digits.length < 15) digits.push(Math.floor(random() * 10));
  // Luhn: double every second digit from the right, counting the check digit as first.
  let sum = 0;
  for (let i = 0; i < 15; i++) {
    let d = digits[14 - i]!;
    if (i % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  digits.push((10 - (sum % 10)) % 10);
  const text = digits.join('');
  return [0, 4, 8, 12].map((at) => text.slice(at, at + 4)).join(separator);
}

/** Small seeded PRNG: the same sequence on every machine. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
