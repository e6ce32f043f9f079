/**
 * Starts the real PostgreSQL servers the integration tests run against, once
 * per run, and hands their coordinates to test files via `inject('servers')`.
 * Missing prerequisites fail the run with the command that fixes them:
 * a skipped server would look like a passing one.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startTestServer, type TestServerName } from '../helpers/test-servers.js';

const MAJOR_TO_SERVER: Record<string, TestServerName> = { '18': 'pg18', '15': 'pg15' };

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const names = selectedServers(process.env['PGWARD_TEST_MAJORS'] ?? '18,15');
  requireOnPath('psql', '`apt-get install -y postgresql-client`');

  const started = await Promise.allSettled(names.map((name) => startTestServer(name)));
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failures = started.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length > 0) {
    await Promise.all(servers.map((s) => s.stop()));
    throw failures.length === 1 ? failures[0] : new AggregateError(failures, 'test PostgreSQL servers failed to start');
  }

  project.provide(
    'servers',
    servers.map((s) => s.info),
  );
  return async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
}

function selectedServers(spec: string): TestServerName[] {
  const majors = [...new Set(spec.split(',').map((m) => m.trim()).filter(Boolean))];
  if (majors.length === 0) throw new Error('PGWARD_TEST_MAJORS is empty; use e.g. 18 or 18,15');
  return majors.map((major) => {
    const name = MAJOR_TO_SERVER[major];
    if (!name) {
      throw new Error(`PGWARD_TEST_MAJORS lists ${major}; supported: ${Object.keys(MAJOR_TO_SERVER).join(', ')}`);
    }
    return name;
  });
}

function requireOnPath(command: string, install: string): void {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return;
    } catch {
      // keep looking
    }
  }
  throw new Error(`${command} not found on PATH: install it with ${install}`);
}
