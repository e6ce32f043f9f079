/**
 * The places pgbench and the probes connect to, and how to reach each with
 * libpq (environment) and with node-postgres (client config).
 */
import type pg from 'pg';

export const TARGET_NAMES = ['direct', 'pgbouncer', 'pgward'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface Target {
  /** One of TARGET_NAMES in the matrix; the policy and token phases label their own pgward variants. */
  name: string;
  host: string;
  port: number;
}

/** One SCRAM login used everywhere: PostgreSQL's superuser, listed in pgbouncer's auth_file too. */
export interface Credentials {
  user: string;
  password: string;
  database: string;
  /** PEM of the dev CA that signed the one certificate PostgreSQL, pgbouncer and pgward all present. */
  ca: string;
}

/** libpq settings for pgbench and psql: TLS required, nothing inherited from the caller's PG* variables. */
export function libpqEnv(target: Target, credentials: Credentials): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key];
  return {
    ...env,
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: credentials.user,
    PGPASSWORD: credentials.password,
    PGDATABASE: credentials.database,
    PGSSLMODE: 'require',
    PGCONNECT_TIMEOUT: '10',
  };
}

export function clientConfig(target: Target, credentials: Credentials): pg.ClientConfig {
  return {
    host: target.host,
    port: target.port,
    user: credentials.user,
    password: credentials.password,
    database: credentials.database,
    ssl: { ca: credentials.ca },
    connectionTimeoutMillis: 15_000,
  };
}
