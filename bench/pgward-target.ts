/**
 * pgward as a separate process, exactly as an operator runs it:
 * `node dist/cli.js start --config <file>`, TLS to clients, plaintext loopback upstream.
 * By default the passthrough relay; a variant adds policies, the admin port or token logins.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CertificateFiles } from '../src/client/dev-certificates.js';
import { Service } from './processes.js';
import type { Target } from './target.js';

/** dist-bench/bench/ → the proxy built by `npm run build`. */
export const PGWARD_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface RunningPgward {
  service: Service;
  target: Target;
  /** Base URL of the admin port (`/metrics`), when it was enabled. */
  adminUrl: string | undefined;
  /** Log lines at level warn or error since start: under load they point at a bug. */
  problems: string[];
  stop(): Promise<void>;
}

/** What sets one pgward apart from the plain passthrough relay the matrix measures. */
export interface PgwardVariant {
  /** The target's label in reports; default `pgward`. */
  name?: string;
  /** `policies.dir`, loaded once (no watching: nothing changes during a run). */
  policiesDir?: string;
  /** Serve `/metrics` on a free loopback port. */
  admin?: boolean;
  /** The `auth` section; default passthrough. */
  auth?: Record<string, unknown>;
  /** The role pgward logs in as upstream (needed by `auth.mode: oidc`). */
  serviceLogin?: { user: string; password: string };
}

let started = 0;

export async function startPgward(
  dir: string,
  upstream: { host: string; port: number },
  certificates: CertificateFiles,
  variant: PgwardVariant = {},
): Promise<RunningPgward> {
  if (!existsSync(PGWARD_CLI)) throw new Error(`${PGWARD_CLI} is missing: build pgward first (npm run build)`);
  // JSON is YAML, and needs no quoting rules of its own.
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: certificates.certFile, key: certificates.keyFile, required: true },
    upstream: {
      url: `postgres://${upstream.host}:${upstream.port}`,
      tls: { mode: 'disable' },
      ...(variant.serviceLogin ? { user: variant.serviceLogin.user, password: variant.serviceLogin.password } : {}),
    },
    // Relaying the client's own login: the same work pgbouncer does with its auth_file.
    auth: variant.auth ?? { mode: 'passthrough' },
    // Port 0: the kernel picks a free port, which the "listening" log line reports.
    admin: variant.admin ? { enabled: true, host: '127.0.0.1', port: 0 } : { enabled: false },
    shutdown: { graceSeconds: 0 },
    ...(variant.policiesDir ? { policies: { dir: variant.policiesDir, watch: false } } : {}),
  };
  const file = join(dir, `pgward-${++started}.yaml`);
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);

  // No PGWARD_* from the caller's shell may change what is measured.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PGWARD_')) env[key] = value;
  const service = new Service('pgward', process.execPath, [PGWARD_CLI, 'start', '--config', file], { env });
  const problems: string[] = [];
  service.onLine((line) => {
    if (/"level":"(warn|error)"/.test(line) || !line.startsWith('{')) problems.push(line);
  });
  const stop = () => service.stop('SIGTERM');
  let listening: Listening;
  try {
    listening = await service.waitFor((line) => listeningLine(line), 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    service,
    target: { name: variant.name ?? 'pgward', host: '127.0.0.1', port: listening.port },
    adminUrl: listening.admin,
    problems,
    stop,
  };
}

interface Listening {
  port: number;
  admin: string | undefined;
}

function listeningLine(line: string): Listening | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(line) as { message?: unknown; port?: unknown; admin?: unknown };
    if (entry.message !== 'pgward listening' || typeof entry.port !== 'number') return undefined;
    return { port: entry.port, admin: typeof entry.admin === 'string' ? entry.admin : undefined };
  } catch {
    return undefined;
  }
}

/** Reads the admin port's Prometheus text into name → value (labels are not used by pgward). */
export async function readMetrics(adminUrl: string): Promise<Map<string, number>> {
  const response = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET ${adminUrl}/metrics: HTTP ${response.status}`);
  const metrics = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line.trim());
    if (match) metrics.set(match[1]!, Number(match[2]));
  }
  return metrics;
}
