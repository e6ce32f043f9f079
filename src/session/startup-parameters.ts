import type { StartupParameters } from '../protocol/startup-packet.js';

/**
 * What a client may set in its startup packet when pgward, not the client,
 * decides who it is upstream (OIDC mode) or its statements are rewritten
 * (restricted identities). Settings outside the list could change the role
 * (`role`, `session_authorization`), how the server reads statements
 * (`standard_conforming_strings`, `search_path`), or make the server echo the
 * rewritten statements with their mask expressions (`debug_print_*`, verbose
 * `client_min_messages`). Unrestricted passthrough sessions are not checked:
 * their startup goes upstream exactly as sent.
 */
const SETTABLE: ReadonlySet<string> = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'bytea_output',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'transaction_timeout',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'default_transaction_deferrable',
  'client_min_messages',
  'lc_messages',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'timezone_abbreviations',
  'xmlbinary',
  'xmloption',
  'gin_fuzzy_search_limit',
  'work_mem',
  'jit',
]);

/** Startup packet fields that are not settings. */
const PROTOCOL_FIELDS: ReadonlySet<string> = new Set(['user', 'database']);

/** Values of client_min_messages that cannot echo statements back (DEBUG and LOG would). */
const QUIET_MESSAGES: ReadonlySet<string> = new Set(['notice', 'warning', 'error']);

export type StartupCheck = { ok: true } | { ok: false; setting: string };

/**
 * Checks every setting a startup packet makes, directly or in `options`.
 * `search_path` is allowed only to unrestricted identities: restricted ones are pinned.
 */
export function checkStartupSettings(parameters: StartupParameters, options: { searchPath: boolean } = { searchPath: false }): StartupCheck {
  const settable = (name: string, value: string): boolean => {
    const setting = name.toLowerCase();
    return (options.searchPath && setting === 'search_path') || settableSetting(setting, value);
  };
  for (const [name, value] of parameters) {
    if (PROTOCOL_FIELDS.has(name)) continue;
    if (name === 'options') {
      const settings = parseOptions(value);
      if (settings === undefined) return { ok: false, setting: 'options' };
      for (const [setting, settingValue] of settings) {
        if (!settable(setting, settingValue)) return { ok: false, setting };
      }
      continue;
    }
    if (!settable(name, value)) return { ok: false, setting: name };
  }
  return { ok: true };
}

function settableSetting(setting: string, value: string): boolean {
  if (!SETTABLE.has(setting)) return false;
  if (setting === 'client_min_messages') return QUIET_MESSAGES.has(value.trim().toLowerCase());
  return true;
}

/**
 * The settings in an `options` string, split the way the server's
 * pg_split_opts does (whitespace separates, backslash escapes); undefined when
 * it holds anything but `-c name=value` / `--name=value`.
 */
export function parseOptions(options: string): Array<[string, string]> | undefined {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      word += options[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);

  const settings: Array<[string, string]> = [];
  for (let i = 0; i < words.length; i++) {
    let assignment: string | undefined;
    const current = words[i]!;
    if (current === '-c') assignment = words[++i];
    else if (current.startsWith('-c')) assignment = current.slice(2);
    else if (current.startsWith('--')) assignment = current.slice(2);
    const eq = assignment?.indexOf('=') ?? -1;
    if (assignment === undefined || eq <= 0) return undefined;
    settings.push([assignment.slice(0, eq).replace(/-/g, '_'), assignment.slice(eq + 1)]);
  }
  return settings;
}
