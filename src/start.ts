import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startAdminServer } from './admin-server.js';
import { ConfigError, parseUpstreamUrl, type Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { ProxyServer } from './proxy-server.js';
import { startEmbeddedDefault, type EmbeddedDefault } from './upstream/demo-database.js';
import type { UpstreamTarget } from './upstream/connect.js';

/**
 * Runs pgward until SIGTERM/SIGINT: the embedded database when configured, the
 * proxy listener and the admin port. Resolves with the process exit code.
 */
export async function runProxy(config: Config, log: Logger = createLogger()): Promise<number> {
  let embedded: EmbeddedDefault | undefined;
  let upstream: UpstreamTarget;
  let tlsFiles = { cert: config.tls.cert, key: config.tls.key };

  if (config.upstream.embedded) {
    const stateDir = path.resolve(config.stateDir);
    embedded = await startEmbeddedDefault(stateDir, (message) => log.info(message));
    // The proxy reaches its own embedded server over the Unix socket: no TCP, no TLS needed.
    upstream = {
      address: { host: embedded.server.socketDir, port: embedded.server.port },
      tlsMode: 'disable',
      connectTimeoutMs: config.upstream.connectTimeoutMs,
    };
    if (!tlsFiles.cert) tlsFiles = { cert: embedded.certificates.certFile, key: embedded.certificates.keyFile };
  } else {
    upstream = {
      address: parseUpstreamUrl(config.upstream.url!),
      tlsMode: config.upstream.tls.mode,
      ca: config.upstream.tls.ca ? readFileSync(config.upstream.tls.ca) : undefined,
      connectTimeoutMs: config.upstream.connectTimeoutMs,
    };
    if ((config.upstream.tls.mode === 'verify-ca' || config.upstream.tls.mode === 'verify-full') && !config.upstream.tls.ca) {
      throw new ConfigError('upstream.tls.ca', `required with mode ${config.upstream.tls.mode}`, 'config');
    }
  }
  if (config.tls.required && !tlsFiles.cert) {
    await embedded?.server.stop();
    throw new ConfigError('tls.cert', 'a certificate and key are required while tls.required is true', 'config');
  }

  const proxy = new ProxyServer({
    listen: config.listen,
    tls: { cert: tlsFiles.cert, key: tlsFiles.key, required: config.tls.required, minVersion: config.tls.minVersion },
    upstream,
    maxMessageSize: config.limits.maxMessageSize,
    log,
  });
  const address = await proxy.listen();
  let stopping = false;
  const admin = config.admin.enabled
    ? await startAdminServer(config.admin.host, config.admin.port, {
        ready: () => !stopping,
        metrics: () => ({ pgward_sessions: proxy.sessionCount, pgward_buffered_bytes: proxy.bufferedBytes }),
      })
    : undefined;
  log.info('pgward listening', {
    host: address.address,
    port: address.port,
    admin: admin ? `${admin.address.address}:${admin.address.port}` : undefined,
  });
  if (embedded) printConnectHelp(embedded, address.port, config.listen.host);

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down', { signal, graceSeconds: config.shutdown.graceSeconds });
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await proxy.stop(config.shutdown.graceSeconds * 1000);
  await admin?.close();
  await embedded?.server.stop();
  log.info('stopped');
  return 0;
}

function printConnectHelp(embedded: EmbeddedDefault, port: number, host: string): void {
  const connectHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  process.stdout.write(
    [
      '',
      'pgward is running in front of an embedded PostgreSQL 18 with demo data.',
      'Connect with psql:',
      '',
      `  PGPASSWORD='${embedded.password}' psql "host=${connectHost} port=${port} dbname=${embedded.database} user=${embedded.user} sslmode=require"`,
      '',
      'Then try: SELECT full_name, email, ssn, region FROM customers LIMIT 5;',
      'Stop with Ctrl-C.',
      '',
    ].join('\n'),
  );
}
