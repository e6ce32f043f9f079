import { describe, expect, it } from 'vitest';
import { checkStartupSettings, parseOptions } from '../../../src/session/startup-parameters.js';

describe('startup settings of OIDC and restricted sessions', () => {
  it('splits options as the server does', () => {
    expect(parseOptions('-c statement_timeout=5s --application-name=my\\ app -cwork_mem=4MB')).toEqual([
      ['statement_timeout', '5s'],
      ['application_name', 'my app'],
      ['work_mem', '4MB'],
    ]);
    expect(parseOptions('-B 100')).toBeUndefined();
    expect(parseOptions('')).toEqual([]);
  });

  it('lets ordinary client settings through', () => {
    expect(checkStartupSettings([['user', 'u'], ['database', 'd'], ['application_name', 'psql'], ['client_encoding', 'UTF8'], ['DateStyle', 'ISO'], ['options', '-c statement_timeout=5s']])).toEqual({ ok: true });
  });

  it('refuses role changes, parsing changes and settings that echo statements', () => {
    expect(checkStartupSettings([['options', '-c role=admin']])).toEqual({ ok: false, setting: 'role' });
    expect(checkStartupSettings([['session_authorization', 'postgres']])).toEqual({ ok: false, setting: 'session_authorization' });
    expect(checkStartupSettings([['options', '-c standard_conforming_strings=off']])).toEqual({ ok: false, setting: 'standard_conforming_strings' });
    expect(checkStartupSettings([['options', '-c debug_print_plan=on']])).toEqual({ ok: false, setting: 'debug_print_plan' });
    expect(checkStartupSettings([['options', '-c client_min_messages=log']])).toEqual({ ok: false, setting: 'client_min_messages' });
    expect(checkStartupSettings([['client_min_messages', 'warning']])).toEqual({ ok: true });
    expect(checkStartupSettings([['replication', 'database']])).toEqual({ ok: false, setting: 'replication' });
    expect(checkStartupSettings([['options', '-B 100']])).toEqual({ ok: false, setting: 'options' });
  });
});
