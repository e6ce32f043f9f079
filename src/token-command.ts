import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DevIssuer } from './auth/dev-issuer.js';
import { loadConfig, type Config } from './config.js';

export const TOKEN_HELP = `pgward token --sub NAME [--groups a,b] [--claim key=value ...] [--ttl SECONDS] [--audience AUD]
             [--state-dir DIR | --config FILE]
  Mint a short-lived token from the development issuer of a running pgward
  (auth.oidc.devIssuer.enabled, which npm start turns on). Claim values that
  parse as JSON (numbers, true/false, arrays) keep their type; others are text.
`;

export class UsageError extends Error {}

/** File, under the dev issuer's folder, naming the running instance's issuer URL. */
export const DEV_ISSUER_STATE = 'issuer.json';

export function devIssuerDir(config: Config): string {
  const dir = path.join(path.resolve(config.stateDir), 'dev-issuer');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}


/** Mints a development token and returns it; `pgward token` prints it. */
export async function mintDevToken(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const { values } = parseArgs({
    args,
    options: {
      sub: { type: 'string' },
      groups: { type: 'string' },
      claim: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      audience: { type: 'string' },
      'state-dir': { type: 'string' },
      config: { type: 'string', short: 'c' },
    },
  });
  if (!values.sub) throw new UsageError('--sub is required');
  const overrides = values['state-dir'] ? { stateDir: values['state-dir'] } : {};
  const config = loadConfig({ file: values.config, env, overrides });
  const dir = devIssuerDir(config);
  const statePath = path.join(dir, DEV_ISSUER_STATE);
  if (!existsSync(statePath)) {
    throw new UsageError(`no development issuer has run from ${path.resolve(config.stateDir)}: start pgward first (npm start)`);
  }
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as { audience: string; baseUrl: string };
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl takes a positive number of seconds');
  const issuer = await DevIssuer.loadOrCreate(dir, { baseUrl: state.baseUrl });
  return issuer.mint({
    sub: values.sub,
    groups: values.groups ? values.groups.split(',').map((g) => g.trim()).filter(Boolean) : [],
    claims: parseClaims(values.claim ?? []),
    ttlSeconds: ttl,
    audience: values.audience ?? state.audience,
  });
}

/** `key=value` pairs as claims: values that parse as JSON (numbers, booleans, arrays) keep their type. */
export function parseClaims(pairs: readonly string[]): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--claim takes key=value, got "${pair}"`);
    const raw = pair.slice(eq + 1);
    let value: unknown = raw;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'string') value = parsed;
    } catch {
      // plain text
    }
    claims[pair.slice(0, eq)] = value;
  }
  return claims;
}
