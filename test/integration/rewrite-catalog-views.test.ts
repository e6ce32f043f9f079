/**
 * Deparse fidelity on real-world SQL: the definitions of every pg_catalog
 * and information_schema view (as the server itself prints them) are planned
 * for a restricted identity that may read and call everything. Nothing in
 * them is protected, so each must be forwarded or rewritten (schema
 * qualification only) — never refused for failing verification — and the
 * rewritten text must return what the original returns.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Identity } from '../../src/auth/identity.js';
import { createPolicyContext } from '../../src/policy/decide.js';
import { parsePolicyText } from '../../src/policy/load.js';
import { buildCatalog, CATALOG_SQL } from '../../src/rewrite/catalog.js';
import { loadSqlParser } from '../../src/rewrite/placeholders.js';
import { describeDecision, planRewrite } from '../../src/rewrite/plan.js';
import { TEST_DATABASE, type TestServerInfo } from '../helpers/test-servers.js';

const servers = inject('servers');

const POLICIES = `
apiVersion: pgward.dev/v1
kind: PolicySet
metadata: { name: readers }
spec:
  defaultAction: deny
  subjects: { readers: { anyOf: [ { group: reader } ] } }
  rules:
    - name: read-and-call-everything
      effect: allow
      subjects: [readers]
      actions: [select, function]
      resources: { tables: ["*.*"] }
`;

const reader: Identity = { user: 'rita', groups: ['reader'], claims: {}, source: 'oidc' };

/** Views whose contents change between two reads (activity, locks, statistics counters, memory). */
const VOLATILE = /^pg_(stat|statio|locks|backend_memory|shmem|prepared|cursors|replication|wait|timezone|settings|file_settings|aios|hba|ident|config)/;

describe.each(servers.map((s) => [s.name, s] as const))('%s', (_name, server: TestServerInfo) => {
  let client: pg.Client;

  beforeAll(async () => {
    await loadSqlParser();
    client = new pg.Client({ host: server.host, port: server.port, database: TEST_DATABASE, user: server.superuser, password: server.superuserPassword, ssl: { ca: readFileSync(server.caFile) } });
    await client.connect();
    await client.query('SET search_path = public');
  });

  afterAll(async () => {
    await client?.end();
  });

  it('plans, verifies and runs every system view definition', async () => {
    const catalog = buildCatalog((await client.query(CATALOG_SQL)).rows as Record<string, unknown>[]);
    const loaded = await parsePolicyText(POLICIES, 'readers.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const policy = createPolicyContext(loaded.policies, reader, loaded.version);
    const views = (
      await client.query<{ schema: string; name: string; definition: string }>(
        `SELECT schemaname AS schema, viewname AS name, definition FROM pg_views WHERE schemaname IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
      )
    ).rows;
    expect(views.length).toBeGreaterThan(100);
    const failures: string[] = [];
    let refused = 0;
    let compared = 0;
    for (const v of views) {
      const sql = v.definition.trim().replace(/;$/, '');
      const d = planRewrite({ sql, protocol: 'simple', policy, bundle: loaded.policies, identity: reader, catalog, searchPath: ['public'] });
      if (d.kind === 'deny') {
        // The blocked list refuses views over statistics and statement texts; nothing else may be refused.
        if (d.sqlstate === '42501' && /reveals data values|not available to restricted identities/.test(d.message)) {
          refused++;
          continue;
        }
        failures.push(`${v.schema}.${v.name}: ${describeDecision(d)}`);
        continue;
      }
      const text = d.kind === 'rewrite' ? d.sql : sql;
      try {
        const rewritten = await client.query({ text, rowMode: 'array' });
        if (!VOLATILE.test(v.name)) {
          const original = await client.query({ text: sql, rowMode: 'array' });
          const canonical = (rows: unknown[][]) => rows.map((r) => JSON.stringify(r)).sort();
          if (JSON.stringify(canonical(rewritten.rows)) !== JSON.stringify(canonical(original.rows))) failures.push(`${v.schema}.${v.name}: different rows`);
          compared++;
        }
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        // Some views fail on this machine whatever the text (e.g. NUMA support): only a new error counts.
        const original = await client.query(sql).then(
          () => undefined,
          (e: unknown) => (e instanceof Error ? e.message : String(e)),
        );
        if (original !== message) failures.push(`${v.schema}.${v.name}: ${message}\n${text}`);
      }
    }
    expect(failures).toEqual([]);
    expect(compared).toBeGreaterThan(60);
    expect(refused).toBeGreaterThan(0);
  });
});
