import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startAdminServer } from './admin-server.js';
import { DEV_ISSUER_DEFAULT_AUDIENCE, DEV_ISSUER_PATH, DevIssuer } from './auth/dev-issuer.js';
import type { IssuerConfig } from './auth/oidc-config.js';
import { OidcVerifier } from './auth/oidc-verifier.js';
import type { PolicyRuntime, SessionAuth } from './session/session.js';
import { PolicyStore } from './policy/store.js';
import { loadSqlParser } from './policy/row-filter.js';
import { CatalogCache, type CatalogLoader } from './rewrite/catalog-cache.js';
import { loadCatalogAsService } from './upstream/catalog-loader.js';
import { PlanCache } from './rewrite/plan-cache.js';
import { DEV_ISSUER_STATE, devIssuerDir } from './token-command.js';
import { ConfigError, DEMO_POLICIES_DIR, parseUpstreamUrl, type Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { ProxyServer } from './proxy-server.js';
import { startEmbeddedDefault, type EmbeddedDefault } from './upstream/demo-database.js';
import type { UpstreamTarget } from './upstream/connect.js';

interface Running {
  proxy: ProxyServer;
  policies: PolicyRuntime | undefined;
  admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  /** Flips readiness to false so load balancers stop sending new clients. */
  markStopping(): void;
}

/**
 * Runs pgward until SIGTERM/SIGINT: the embedded database when configured, the
 * proxy listener and the admin port. Resolves with the process exit code.
 */
export async function runProxy(config: Config, log: Logger = createLogger()): Promise<number> {
  const embedded = config.upstream.embedded
    ? await startEmbeddedDefault(path.resolve(config.stateDir), (message) => log.info(message))
    : undefined;
  let running: Running;
  try {
    running = await serve(config, embedded, log);
  } catch (error) {
    // The embedded server would otherwise keep the process alive after a failed start.
    await embedded?.server.stop();
    throw error;
  }
  const reloadOnHangup = (): void => void running.policies?.store.reload();
  process.on('SIGHUP', reloadOnHangup);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  process.off('SIGHUP', reloadOnHangup);
  running.policies?.store.close();
  running.markStopping();
  log.info('shutting down', { signal, graceSeconds: config.shutdown.graceSeconds });
  await running.proxy.stop(config.shutdown.graceSeconds * 1000);
  await running.admin?.close();
  await embedded?.server.stop();
  log.info('stopped');
  return 0;
}

async function serve(config: Config, embedded: EmbeddedDefault | undefined, log: Logger): Promise<Running> {
  const target = upstreamTarget(config, embedded);
  const tlsFiles = config.tls.cert
    ? { cert: config.tls.cert, key: config.tls.key }
    : { cert: embedded?.certificates.certFile, key: embedded?.certificates.keyFile };
  if (config.tls.required && !tlsFiles.cert) {
    throw new ConfigError('tls.cert', 'a certificate and key are required while tls.required is true', 'config');
  }

  let documents = new Map<string, unknown>();
  const state: { proxy?: ProxyServer; stopping: boolean } = { stopping: false };
  const policies = await policyRuntime(config, log, catalogLoader(config, embedded));
  const admin = config.admin.enabled
    ? await startAdminServer(config.admin.host, config.admin.port, {
        ready: () => !state.stopping && state.proxy !== undefined,
        metrics: () => ({
          pgward_sessions: state.proxy?.sessionCount ?? 0,
          pgward_buffered_bytes: state.proxy?.bufferedBytes ?? 0,
          pgward_plan_cache_hits_total: policies?.planCache.hits ?? 0,
          pgward_plan_cache_misses_total: policies?.planCache.misses ?? 0,
          pgward_plan_cache_template_hits_total: policies?.planCache.templateHits ?? 0,
          pgward_plan_cache_entries: policies?.planCache.size ?? 0,
        }),
        documents: () => documents,
      })
    : undefined;
  try {
    const adminBase = admin ? `http://${loopbackFor(admin.address.address)}:${admin.address.port}` : undefined;
    const auth = await sessionAuth(config, embedded, adminBase, log, (published) => {
      documents = published;
    });
    const proxy = new ProxyServer({
      auth,
      policies,
      listen: config.listen,
      tls: { cert: tlsFiles.cert, key: tlsFiles.key, required: config.tls.required, minVersion: config.tls.minVersion },
      upstream: target,
      maxMessageSize: config.limits.maxMessageSize,
      startupTimeoutMs: config.limits.startupTimeoutSeconds * 1000,
      log,
    });
    const address = await proxy.listen();
    state.proxy = proxy;
    policies?.store.onChange(() => {
      proxy.policiesChanged();
      // Policies may name tables the snapshots were not read for: refresh them too.
      policies.catalogs.markAllStale();
    });
    log.info('pgward listening', { host: address.address, port: address.port, auth: auth.mode, admin: adminBase });
    if (embedded) printConnectHelp(embedded, address.port, config, auth.mode);
    return {
      proxy,
      policies,
      admin,
      markStopping: () => {
        state.stopping = true;
      },
    };
  } catch (error) {
    await admin?.close();
    policies?.store.close();
    throw error;
  }
}

/** Policies, when a folder is configured: loaded (invalid ones stop startup), watched, and the caches they use. */
async function policyRuntime(config: Config, log: Logger, loader: CatalogLoader | undefined): Promise<PolicyRuntime | undefined> {
  if (config.policies.dir === undefined) return undefined;
  await loadSqlParser();
  const store = await PolicyStore.open(config.policies.dir, log);
  if (config.policies.watch) store.watch();
  return {
    store,
    searchPath: config.policies.searchPath,
    planCache: new PlanCache(config.policies.planCacheSize),
    catalogs: new CatalogCache(config.policies.catalogMaxAgeSeconds * 1000, loader, (database, error) =>
      log.warn('catalog refresh failed; sessions keep their snapshot', { database, error: error.message }),
    ),
  };
}

/** With a service login of its own (OIDC mode), pgward refreshes catalogs in the background. */
function catalogLoader(config: Config, embedded: EmbeddedDefault | undefined): CatalogLoader | undefined {
  if (config.auth.mode !== 'oidc') return undefined;
  const target = upstreamTarget(config, embedded);
  const service = embedded
    ? { user: embedded.user, password: embedded.password }
    : { user: config.upstream.user!, password: upstreamPassword(config) };
  return (database) => loadCatalogAsService(target, service, database);
}

function upstreamTarget(config: Config, embedded: EmbeddedDefault | undefined): UpstreamTarget {
  if (embedded) {
    // pgward reaches its own embedded server over the Unix socket: no TCP, no TLS needed.
    return {
      address: { host: embedded.server.socketDir, port: embedded.server.port },
      tlsMode: 'disable',
      connectTimeoutMs: config.upstream.connectTimeoutMs,
    };
  }
  const { mode, ca } = config.upstream.tls;
  if ((mode === 'verify-ca' || mode === 'verify-full') && !ca) {
    throw new ConfigError('upstream.tls.ca', `required with mode ${mode}`, 'config');
  }
  return {
    address: parseUpstreamUrl(config.upstream.url!),
    tlsMode: mode,
    ca: ca ? readFileSync(ca) : undefined,
    connectTimeoutMs: config.upstream.connectTimeoutMs,
  };
}

/** Builds what sessions need to authenticate clients, per `auth.mode`. */
async function sessionAuth(
  config: Config,
  embedded: EmbeddedDefault | undefined,
  adminBase: string | undefined,
  log: Logger,
  publish: (documents: Map<string, unknown>) => void,
): Promise<SessionAuth> {
  if (config.auth.mode === 'passthrough') return { mode: 'passthrough' };
  const oidc = config.auth.oidc!;
  let issuers: readonly IssuerConfig[] = oidc.issuers;
  if (oidc.devIssuer?.enabled) {
    if (!adminBase) throw new ConfigError('auth.oidc.devIssuer', 'the development issuer is served on the admin port: enable admin', 'config');
    const dir = devIssuerDir(config);
    const dev = await DevIssuer.loadOrCreate(dir);
    issuers = [dev.issuerConfig(adminBase)];
    publish(
      new Map<string, unknown>([
        [`${DEV_ISSUER_PATH}/.well-known/openid-configuration`, dev.openidConfiguration(adminBase)],
        [`${DEV_ISSUER_PATH}/jwks`, dev.jwks()],
      ]),
    );
    // `pgward token` reads this to mint tokens for the running instance, whatever its ports.
    writeFileSync(path.join(dir, DEV_ISSUER_STATE), JSON.stringify({ issuer: dev.issuerUrl(adminBase), audience: DEV_ISSUER_DEFAULT_AUDIENCE, baseUrl: adminBase }));
    log.warn('development token issuer enabled: anyone who can read its key can mint identities', { issuer: dev.issuerUrl(adminBase) });
  }
  const verifier = new OidcVerifier({ ...oidc, issuers }, { log: (level, event, fields) => log[level](event, fields) });
  const service = embedded
    ? { user: embedded.user, password: embedded.password }
    : { user: config.upstream.user!, password: upstreamPassword(config) };
  return {
    mode: 'oidc',
    verifier,
    maxTokenBytes: oidc.maxTokenBytes,
    oauthBearer: oidc.oauthBearer.enabled ? { issuer: oidc.oauthBearer.issuer ?? issuers[0]!.issuer, scope: oidc.oauthBearer.scope } : undefined,
    plaintextAllowed: config.listen.sidecar,
    service,
    terminateAtExpiry: oidc.terminateAtExpiry,
    maxSessionLifetimeSeconds: oidc.maxSessionLifetimeSeconds,
  };
}

function upstreamPassword(config: Config): string | undefined {
  if (config.upstream.password !== undefined) return config.upstream.password;
  if (config.upstream.passwordFile === undefined) return undefined;
  try {
    return readFileSync(config.upstream.passwordFile, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new ConfigError('upstream.passwordFile', `cannot read: ${(error as Error).message}`, 'config');
  }
}

function loopbackFor(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function printConnectHelp(embedded: EmbeddedDefault, port: number, config: Config, mode: SessionAuth['mode']): void {
  const host = loopbackFor(config.listen.host);
  const conninfo = (user: string) => `"host=${host} port=${port} dbname=${embedded.database} user=${user} sslmode=require"`;
  const stateFlag = path.resolve(config.stateDir) === path.resolve('.pgward') ? '' : ` --state-dir '${path.resolve(config.stateDir)}'`;
  const login = (user: string, flags: string) => [
    `  export PGPASSWORD="$(npx pgward token --sub ${user}${flags}${stateFlag})"`,
    `  psql ${conninfo(user)}`,
  ];
  const demoPolicies = config.policies.dir === DEMO_POLICIES_DIR;
  let lines: string[];
  if (mode !== 'oidc') {
    lines = ['Connect with psql:', '', `  PGPASSWORD='${embedded.password}' psql ${conninfo(embedded.user)}`];
  } else if (demoPolicies) {
    lines = [
      `The demo policies in ${config.policies.dir} protect it. Log in with a token from the`,
      'development issuer as the password (the user name is the token subject).',
      '',
      'As an administrator (raw data):',
      ...login('alice', ' --groups dba'),
      '',
      'As an analyst in region eu (masked values, eu customers only, no card numbers):',
      ...login('bob', ' --groups analyst --claim region=eu'),
    ];
  } else {
    lines = ['Log in with a token from the development issuer (the user name is the token subject):', '', ...login('alice', '')];
  }
  process.stdout.write(
    [
      '',
      'pgward is running in front of an embedded PostgreSQL 18 with demo data.',
      ...lines,
      '',
      'Then try: SELECT full_name, email, ssn, region, salary FROM customers LIMIT 5;',
      'Stop with Ctrl-C.',
      '',
    ].join('\n'),
  );
}
