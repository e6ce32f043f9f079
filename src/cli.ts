#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.js';
import { runProxy } from './start.js';
import { mintDevToken, TOKEN_HELP, UsageError } from './token-command.js';
import { policyCommand, POLICY_HELP } from './policy-command.js';

const HELP = `pgward — a transparent, policy-enforcing PostgreSQL proxy

Usage:
  pgward start [--config pgward.yaml] [--listen host:port] [--upstream url]
      Run the proxy. Without a config file and without PGWARD_UPSTREAM_URL it runs
      in front of an embedded PostgreSQL 18 with demo data, and prints how to connect.
  ${TOKEN_HELP.trim().split('\n').join('\n  ')}
  ${POLICY_HELP.trim().split('\n').join('\n  ')}
  pgward version
  pgward --help

Configuration: see README.md (YAML file, PGWARD_* environment variables).
Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage.
`;

/** Exit code for invalid configuration or usage, as documented. */
const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? EXIT_USAGE : 0;
  }
  if (command === 'version' || command === '--version') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (command === 'start') return start(rest);
  if (command === 'token') return token(rest);
  if (command === 'policy') return policy(rest);
  process.stderr.write(`pgward: unknown command "${command}"\n\n${HELP}`);
  return EXIT_USAGE;
}

async function start(args: string[]): Promise<number> {
  let values: { config?: string; listen?: string; upstream?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        upstream: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`pgward start: ${(error as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const overrides: Record<string, unknown> = {};
  if (values.listen) {
    const match = /^(.*):(\d+)$/.exec(values.listen);
    if (!match) {
      process.stderr.write('pgward start: --listen takes host:port\n');
      return EXIT_USAGE;
    }
    overrides['listen.host'] = match[1]!.replace(/^\[|\]$/g, '');
    overrides['listen.port'] = Number(match[2]);
  }
  if (values.upstream) overrides['upstream.url'] = values.upstream;
  try {
    const config = loadConfig({ file: values.config, overrides });
    return await runProxy(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`pgward: invalid configuration: ${error.message}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`pgward: ${(error as Error).message}\n`);
    return 1;
  }
}

async function policy(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
    process.stdout.write(POLICY_HELP);
    return args.length === 0 ? EXIT_USAGE : 0;
  }
  try {
    return await policyCommand(args, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`pgward policy: ${(error as Error).message}\n`);
      return EXIT_USAGE;
    }
    throw error;
  }
}

async function token(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(TOKEN_HELP);
    return 0;
  }
  try {
    process.stdout.write(`${await mintDevToken(args)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`pgward token: ${(error as Error).message}\n`);
      return EXIT_USAGE;
    }
    throw error;
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`pgward: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
