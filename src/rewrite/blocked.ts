/**
 * The one list of catalog objects restricted identities may never touch,
 * whatever the policies say, because they execute SQL text, read files or
 * large objects, or reveal data values, other sessions' statements, or the
 * text of this session's rewritten statements (whose hash-mask salts must
 * stay secret from clients, POLICY-FORMAT.md).
 */

/**
 * Functions that run SQL given as text or a cursor, read files, large objects, change feeds or
 * statement texts, change settings, or signal other sessions.
 */
const BLOCKED_FUNCTIONS: ReadonlySet<string> = new Set([
  // SQL given as text or a cursor: the text is never seen by the rewriter.
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
  // search_path and other settings are pinned for restricted sessions.
  'set_config',
  // Server files.
  'pg_read_file',
  'pg_read_binary_file',
  'pg_stat_file',
  // Large objects: data outside every table's policies.
  'loread',
  'lowrite',
  // Reads a table named by text, past the rewrite: the latest version of the tuple at a tid.
  'currtid2',
  // Signals other backends of the same role: in OIDC mode every identity shares pgward's service role.
  'pg_cancel_backend',
  'pg_terminate_backend',
  // Other sessions' statement texts.
  'pg_stat_get_activity',
  'pg_stat_get_backend_activity',
  // This session's statement texts: the rewritten ones, which carry the salts of hash masks.
  'current_query',
  'pg_prepared_statement',
  'pg_cursor',
  'pg_get_backend_memory_contexts',
]);

/** Name prefixes blocked as families. */
const BLOCKED_FUNCTION_PREFIXES: readonly string[] = [
  'schema_to_xml',
  'database_to_xml',
  'pg_ls_', // pg_ls_dir, pg_ls_logdir, pg_ls_waldir, pg_ls_tmpdir, ...
  'lo_', // lo_import, lo_export, lo_get, lo_open, lo_from_bytea, lo_put, ...
  'pg_logical_slot_', // pg_logical_slot_get_changes, pg_logical_slot_peek_changes, ...
  'dblink', // extension: SQL run on a connection pgward does not see
  'pg_stat_statements', // extension: other sessions' statements
  'crosstab', // extension tablefunc: runs SQL given as text
  'connectby', // extension tablefunc: reads a table named by text
];

/**
 * Built-in functions that change state outside the statement's tables — sequences, advisory locks
 * other sessions wait on, notifications to other sessions' listeners, server administration — or,
 * in OIDC mode, do so with pgward's service role. Like LISTEN, they take the `misc` action.
 */
const SIDE_EFFECT_FUNCTIONS: ReadonlySet<string> = new Set([
  'nextval',
  'setval',
  'pg_notify',
  'pg_advisory_unlock_all',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_promote',
  'pg_log_backend_memory_contexts',
  'pg_logical_emit_message',
  'pg_import_system_collations',
  'pg_drop_replication_slot',
  'pg_replication_slot_advance',
]);

const SIDE_EFFECT_FUNCTION_PREFIXES: readonly string[] = [
  'pg_advisory_', // pg_advisory_lock, pg_advisory_xact_lock_shared, pg_advisory_unlock, ...
  'pg_try_advisory_',
  'pg_stat_reset', // pg_stat_reset, pg_stat_reset_shared, pg_stat_reset_single_table_counters, ...
  'pg_create_', // pg_create_logical_replication_slot, pg_create_physical_replication_slot, ...
  'pg_copy_', // pg_copy_logical_replication_slot, ...
  'pg_replication_origin_',
  'pg_backup_',
  'pg_wal_replay_',
];

export function hasSideEffects(name: string): boolean {
  return SIDE_EFFECT_FUNCTIONS.has(name) || SIDE_EFFECT_FUNCTION_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * Relations that leak data values (statistics hold most-common values and
 * histograms) or other sessions' statements. Matched in pg_catalog, and
 * pg_stat_statements in any schema (it is an extension).
 */
const BLOCKED_CATALOG_RELATIONS: ReadonlySet<string> = new Set([
  'pg_statistic',
  // pg_statistic_ext itself holds definitions only (psql's \d reads it); the values are in _data.
  'pg_statistic_ext_data',
  'pg_stats',
  'pg_stats_ext',
  'pg_stats_ext_exprs',
  'pg_stat_activity',
  'pg_largeobject',
  // This session's rewritten statements (see current_query above).
  'pg_prepared_statements',
  'pg_cursors',
  'pg_backend_memory_contexts',
]);

const BLOCKED_ANYWHERE_RELATIONS: ReadonlySet<string> = new Set(['pg_stat_statements', 'pg_stat_statements_info']);

/** Schemas whose relations stay readable (metadata for psql, drivers and ORMs), minus the blocked ones. */
export const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set(['pg_catalog', 'information_schema']);

export function isBlockedFunction(name: string): boolean {
  return BLOCKED_FUNCTIONS.has(name) || BLOCKED_FUNCTION_PREFIXES.some((p) => name.startsWith(p));
}

export function isBlockedRelation(schema: string, name: string): boolean {
  return (schema === 'pg_catalog' && BLOCKED_CATALOG_RELATIONS.has(name)) || BLOCKED_ANYWHERE_RELATIONS.has(name);
}
