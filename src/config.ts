import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { authConfigSchema } from './auth/oidc-config.js';

/**
 * Typed settings: defaults < config file < PGWARD_* environment < command-line flags.
 * This is the only module that reads process.env for settings.
 */

const UpstreamTlsMode = z.enum(['disable', 'require', 'verify-ca', 'verify-full']);
export type UpstreamTlsMode = z.infer<typeof UpstreamTlsMode>;

const port = z.number().int().min(0).max(65535);

const ConfigSchema = z
  .object({
    listen: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(6432),
        /** A sidecar listener: loopback only, and tokens may then arrive without TLS. */
        sidecar: z.boolean().default(false),
      })
      .strict()
      .prefault({})
      .refine((l) => !l.sidecar || isLoopbackHost(l.host), {
        message: 'sidecar: true requires a loopback host (127.0.0.1, ::1 or localhost)',
      }),
    tls: z
      .object({
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
        /** Refuse plaintext sessions (FATAL 28000). */
        required: z.boolean().default(true),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      })
      .strict()
      .prefault({})
      .refine((t) => (t.cert === undefined) === (t.key === undefined), {
        message: 'cert and key must be given together',
      }),
    upstream: z
      .object({
        /** postgres://host:port, or postgres:///?host=/socket/dir for a Unix socket. */
        url: z.string().min(1).optional(),
        /** Run the bundled PostgreSQL 18 with demo data instead of a real upstream. */
        embedded: z.boolean().default(false),
        tls: z
          .object({ mode: UpstreamTlsMode.default('require'), ca: z.string().min(1).optional() })
          .strict()
          .prefault({}),
        connectTimeoutMs: z.number().int().positive().default(10_000),
        /** The role pgward logs in as when it authenticates clients itself (auth.mode: oidc). */
        user: z.string().min(1).optional(),
        password: z.string().optional(),
        passwordFile: z.string().min(1).optional(),
      })
      .strict()
      .prefault({})
      .refine((u) => u.embedded !== (u.url !== undefined), {
        message: 'set exactly one of upstream.url or upstream.embedded: true',
      }),
    auth: authConfigSchema.prefault({}),
    admin: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(9187),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** Largest protocol message accepted in either direction, in bytes. */
        maxMessageSize: z.number().int().min(1024).max(2 ** 30 + 1024).default(2 ** 30),
        /** From connecting to ReadyForQuery, as PostgreSQL's authentication_timeout. */
        startupTimeoutSeconds: z.number().positive().max(600).default(60),
      })
      .strict()
      .prefault({}),
    shutdown: z
      .object({ graceSeconds: z.number().min(0).default(30) })
      .strict()
      .prefault({}),
    policies: z
      .object({
        /** Folder of policy YAML files; unset means no policy enforcement (a transparent proxy). */
        dir: z.string().min(1).optional(),
        /** The search_path restricted sessions are pinned to, as PostgreSQL writes it. */
        searchPath: z.array(z.string().min(1)).min(1).default(['"$user"', 'public']),
        planCacheSize: z.number().int().min(1).default(10_000),
        catalogMaxAgeSeconds: z.number().min(0).default(60),
        watch: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /** Where the embedded default keeps its database, credentials and dev certificates. */
    stateDir: z.string().min(1).default('.pgward'),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.auth.mode === 'oidc' && !config.upstream.embedded && config.upstream.user === undefined) {
      ctx.addIssue({ code: 'custom', path: ['upstream', 'user'], message: 'auth.mode oidc needs the role pgward logs in as' });
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

/** The demo policies that ship with pgward, for the embedded default. */
export const DEMO_POLICIES_DIR = fileURLToPath(new URL('../policies', import.meta.url));

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
    readonly source: string,
  ) {
    super(`${source}: ${field}: ${reason}`);
  }
}

/** Environment variables that override config fields, with how to read their text. */
const ENV_OVERRIDES: ReadonlyArray<readonly [name: string, field: string, kind: 'string' | 'number' | 'boolean']> = [
  ['PGWARD_LISTEN_HOST', 'listen.host', 'string'],
  ['PGWARD_LISTEN_PORT', 'listen.port', 'number'],
  ['PGWARD_TLS_CERT', 'tls.cert', 'string'],
  ['PGWARD_TLS_KEY', 'tls.key', 'string'],
  ['PGWARD_TLS_REQUIRED', 'tls.required', 'boolean'],
  ['PGWARD_UPSTREAM_URL', 'upstream.url', 'string'],
  ['PGWARD_UPSTREAM_TLS_MODE', 'upstream.tls.mode', 'string'],
  ['PGWARD_UPSTREAM_TLS_CA', 'upstream.tls.ca', 'string'],
  ['PGWARD_UPSTREAM_USER', 'upstream.user', 'string'],
  ['PGWARD_UPSTREAM_PASSWORD', 'upstream.password', 'string'],
  ['PGWARD_UPSTREAM_PASSWORD_FILE', 'upstream.passwordFile', 'string'],
  ['PGWARD_AUTH_MODE', 'auth.mode', 'string'],
  ['PGWARD_ADMIN_ENABLED', 'admin.enabled', 'boolean'],
  ['PGWARD_ADMIN_HOST', 'admin.host', 'string'],
  ['PGWARD_ADMIN_PORT', 'admin.port', 'number'],
  ['PGWARD_MAX_MESSAGE_SIZE', 'limits.maxMessageSize', 'number'],
  ['PGWARD_STARTUP_TIMEOUT_SECONDS', 'limits.startupTimeoutSeconds', 'number'],
  ['PGWARD_SHUTDOWN_GRACE_SECONDS', 'shutdown.graceSeconds', 'number'],
  ['PGWARD_STATE_DIR', 'stateDir', 'string'],
  ['PGWARD_POLICIES_DIR', 'policies.dir', 'string'],
];

export const ENV_VARIABLES = ENV_OVERRIDES.map(([name, field]) => ({ name, field }));

export interface LoadConfigOptions {
  /** Path of a YAML config file; without one pgward runs its embedded default. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Flag overrides, as dotted field paths. */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  let raw: Record<string, unknown> = {};
  let source = 'defaults';
  if (options.file) {
    source = options.file;
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (error) {
      throw new ConfigError('(file)', `cannot read: ${(error as Error).message}`, source);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text) ?? {};
    } catch (error) {
      throw new ConfigError('(file)', `invalid YAML: ${(error as Error).message}`, source);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError('(file)', 'expected a mapping at the top level', source);
    }
    raw = parsed as Record<string, unknown>;
  }

  for (const [name, field, kind] of ENV_OVERRIDES) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    setPath(raw, field, convertEnv(text, kind, name, field));
  }
  for (const [field, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) setPath(raw, field, value);
  }
  // No upstream anywhere: the embedded default (what `npm start` runs).
  const upstream = (raw.upstream ?? {}) as Record<string, unknown>;
  if (upstream.url === undefined && upstream.embedded === undefined) setPath(raw, 'upstream.embedded', true);
  // The embedded default shows the real thing: token logins from its development issuer.
  if ((raw.upstream as Record<string, unknown>).embedded === true && raw.auth === undefined) {
    raw.auth = { mode: 'oidc', oidc: { devIssuer: { enabled: true } } };
  }
  // ... and enforces the demo policies shipped with pgward.
  const policies = (raw.policies ?? {}) as Record<string, unknown>;
  if ((raw.upstream as Record<string, unknown>).embedded === true && policies.dir === undefined) {
    setPath(raw, 'policies.dir', DEMO_POLICIES_DIR);
  }

  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.join('.') || '(root)', issue.message, source);
  }
  const config = result.data;
  if (options.file) resolvePaths(config, path.dirname(path.resolve(options.file)));
  return config;
}

function convertEnv(text: string, kind: 'string' | 'number' | 'boolean', name: string, field: string): unknown {
  if (kind === 'string') return text;
  if (kind === 'number') {
    const value = Number(text);
    if (!Number.isFinite(value)) throw new ConfigError(field, `${name}=${text} is not a number`, 'environment');
    return value;
  }
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new ConfigError(field, `${name}=${text} is not a boolean`, 'environment');
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

/** File paths in a config file are relative to the file, as users expect. */
function resolvePaths(config: Config, base: string): void {
  const abs = (p: string | undefined): string | undefined => (p === undefined ? p : path.resolve(base, p));
  config.tls.cert = abs(config.tls.cert);
  config.tls.key = abs(config.tls.key);
  config.upstream.tls.ca = abs(config.upstream.tls.ca);
  config.upstream.passwordFile = abs(config.upstream.passwordFile);
  config.policies.dir = abs(config.policies.dir);
  config.stateDir = abs(config.stateDir)!;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface UpstreamAddress {
  /** TCP host, or a Unix socket directory when it starts with '/'. */
  host: string;
  port: number;
}

/** Parses a libpq-style URL into where to connect; credentials and database in it are ignored in passthrough. */
export function parseUpstreamUrl(url: string): UpstreamAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('upstream.url', `not a valid URL: ${url}`, 'config');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError('upstream.url', 'must start with postgres:// or postgresql://', 'config');
  }
  const socketDir = parsed.searchParams.get('host');
  const host = socketDir ?? (decodeURIComponent(parsed.hostname).replace(/^\[|\]$/g, '') || 'localhost');
  const port = parsed.port ? Number(parsed.port) : Number(parsed.searchParams.get('port') ?? 5432);
  return { host, port };
}
