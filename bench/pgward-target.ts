/**
 * pgward as a separate process, exactly as an operator runs it:
 * `node dist/cli.js start --config <file>`, TLS to clients, plaintext loopback upstream.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CertificateFiles } from '../src/client/dev-certificates.js';
import { Service } from './processes.js';
import type { Target } from './target.js';

/** dist-bench/bench/ → the proxy built by `npm run build`. */
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface RunningPgward {
  service: Service;
  target: Target;
  /** Log lines at level warn or error since start: under load they point at a bug. */
  problems: string[];
  stop(): Promise<void>;
}

let started = 0;

export async function startPgward(
  dir: string,
  upstream: { host: string; port: number },
  certificates: CertificateFiles,
): Promise<RunningPgward> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build pgward first (npm run build)`);
  // JSON is YAML, and needs no quoting rules of its own.
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: certificates.certFile, key: certificates.keyFile, required: true },
    upstream: { url: `postgres://${upstream.host}:${upstream.port}`, tls: { mode: 'disable' } },
    // Relaying the client's own login: the same work pgbouncer does with its auth_file.
    auth: { mode: 'passthrough' },
    admin: { enabled: false },
    shutdown: { graceSeconds: 0 },
  };
  const file = join(dir, `pgward-${++started}.yaml`);
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);

  // No PGWARD_* from the caller's shell may change what is measured.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PGWARD_')) env[key] = value;
  const service = new Service('pgward', process.execPath, [CLI, 'start', '--config', file], { env });
  const problems: string[] = [];
  service.onLine((line) => {
    if (/"level":"(warn|error)"/.test(line) || !line.startsWith('{')) problems.push(line);
  });
  const stop = () => service.stop('SIGTERM');
  let port: number;
  try {
    port = await service.waitFor((line) => listeningPort(line), 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { service, target: { name: 'pgward', host: '127.0.0.1', port }, problems, stop };
}

function listeningPort(line: string): number | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(line) as { message?: unknown; port?: unknown };
    return entry.message === 'pgward listening' && typeof entry.port === 'number' ? entry.port : undefined;
  } catch {
    return undefined;
  }
}
