/**
 * The rewriter: decides, for a restricted identity, what happens to the SQL
 * text of one Query or Parse message — forwarded as is, replaced by a
 * rewritten text, or refused with a SQLSTATE.
 *
 * Each statement is parsed with PostgreSQL's own grammar (libpg-query),
 * classified, analyzed and protected in place (analyze.ts, protect.ts);
 * statements that changed are deparsed, the whole text is parsed again and
 * compared with the trees that were built, so the server runs exactly what
 * the policy check saw (STYLE.md: trust no deparser blindly). Everything that
 * cannot be parsed, resolved or proven safe is refused: never forwarded.
 *
 * Synchronous: the parser must have been loaded once (`loadSqlParser()`).
 */
import { parseSync } from 'libpg-query';
import type { CopyStmt, CreateTableAsStmt, ExplainStmt, Node, RawStmt, SelectStmt, VariableSetStmt } from 'libpg-query';
import { QuoteUtils } from 'pgsql-deparser';
import type { Identity } from '../auth/identity.js';
import { statementAccess, tableAccess, type PolicyContext } from '../policy/decide.js';
import type { PolicyBundle } from '../policy/load.js';
import type { Action } from '../policy/schema.js';
import { Analyzer, outputColumns, type OutputColumn, type TableUse } from './analyze.js';
import { ancestors, descendants, type Catalog } from './catalog.js';
import { deparseStatement, sameTree, stripPositions } from './deparse.js';
import { chainAccess } from './protect.js';
import { privilege, quoted, refuse, Refusal, RewriteSqlState, unsupported } from './refusal.js';

export type { ColumnSource, OutputColumn, TableUse } from './analyze.js';

export interface RewriteInput {
  /** A Query message's text (may hold several statements) or a Parse message's text (at most one). */
  readonly sql: string;
  readonly protocol: 'simple' | 'extended';
  readonly policy: PolicyContext;
  readonly bundle: PolicyBundle;
  readonly identity: Identity;
  readonly catalog: Catalog;
  /** The pinned search_path, `"$user"` already expanded. */
  readonly searchPath: readonly string[];
}

export interface StatementPlan {
  /** PostgreSQL's command name, e.g. SELECT, COPY, EXPLAIN, DECLARE CURSOR, SET, BEGIN. */
  readonly command: string;
  readonly action: Action;
  readonly tables: readonly TableUse[];
  /** Provenance of the result columns, for statements that return rows; [] otherwise (or when not known). */
  readonly columns: readonly OutputColumn[];
  /** DECLARE CURSOR and PREPARE: the columns a later FETCH / EXECUTE of `name` returns. */
  readonly deferred?: { readonly kind: 'cursor' | 'prepared'; readonly name: string; readonly columns: readonly OutputColumn[] };
  /** EXECUTE, also inside EXPLAIN or CREATE TABLE AS: the prepared statement it runs. */
  readonly executes?: string;
  /** FETCH and MOVE: the cursor (portal) they read, which may be a protocol-level portal. */
  readonly fetches?: string;
}

export type RewriteDecision =
  | { readonly kind: 'forward'; readonly statements: readonly StatementPlan[] }
  | { readonly kind: 'rewrite'; readonly sql: string; readonly statements: readonly StatementPlan[] }
  | {
      readonly kind: 'deny';
      readonly sqlstate: string;
      readonly message: string;
      readonly detail?: string;
      readonly rule?: string;
      /** 0-based index of the refused statement in the message's text. */
      readonly statementIndex: number;
    };

// ---------------------------------------------------------------------------
// Statement kinds

/** Schema and object changes: allowed only with the `ddl` action. */
const DDL_STATEMENTS: ReadonlySet<string> = new Set([
  'CreateSchemaStmt', 'AlterTableStmt', 'ReplicaIdentityStmt', 'AlterCollationStmt', 'AlterDomainStmt', 'GrantStmt',
  'GrantRoleStmt', 'AlterDefaultPrivilegesStmt', 'CreateStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt',
  'AlterTableSpaceOptionsStmt', 'AlterTableMoveAllStmt', 'CreateExtensionStmt', 'AlterExtensionStmt',
  'AlterExtensionContentsStmt', 'CreateFdwStmt', 'AlterFdwStmt', 'CreateForeignServerStmt', 'AlterForeignServerStmt',
  'CreateForeignTableStmt', 'CreateUserMappingStmt', 'AlterUserMappingStmt', 'DropUserMappingStmt',
  'ImportForeignSchemaStmt', 'CreatePolicyStmt', 'AlterPolicyStmt', 'CreateAmStmt', 'CreateTrigStmt',
  'CreateEventTrigStmt', 'AlterEventTrigStmt', 'CreatePLangStmt', 'CreateRoleStmt', 'AlterRoleStmt',
  'AlterRoleSetStmt', 'DropRoleStmt', 'CreateSeqStmt', 'AlterSeqStmt', 'DefineStmt', 'CreateDomainStmt',
  'CreateOpClassStmt', 'CreateOpFamilyStmt', 'AlterOpFamilyStmt', 'DropStmt', 'CommentStmt', 'SecLabelStmt',
  'IndexStmt', 'CreateStatsStmt', 'AlterStatsStmt', 'CreateFunctionStmt', 'AlterFunctionStmt', 'RenameStmt',
  'AlterObjectDependsStmt', 'AlterObjectSchemaStmt', 'AlterOwnerStmt', 'AlterOperatorStmt', 'AlterTypeStmt',
  'RuleStmt', 'CompositeTypeStmt', 'CreateEnumStmt', 'CreateRangeStmt', 'AlterEnumStmt', 'ViewStmt',
  'CreatedbStmt', 'AlterDatabaseStmt', 'AlterDatabaseRefreshCollStmt', 'AlterDatabaseSetStmt', 'DropdbStmt',
  'AlterSystemStmt', 'ClusterStmt', 'RefreshMatViewStmt', 'ReindexStmt', 'CreateConversionStmt', 'CreateCastStmt',
  'CreateTransformStmt', 'DropOwnedStmt', 'ReassignOwnedStmt', 'AlterTSDictionaryStmt', 'AlterTSConfigurationStmt',
  'CreatePublicationStmt', 'AlterPublicationStmt', 'CreateSubscriptionStmt', 'AlterSubscriptionStmt',
  'DropSubscriptionStmt',
]);

/** Maintenance and signalling statements: allowed only with the `misc` action. */
const MISC_CHECKED: Readonly<Record<string, string>> = {
  // Reaches other sessions' listeners, as pg_notify does (blocked.ts).
  NotifyStmt: 'NOTIFY',
  VacuumStmt: 'VACUUM',
  CheckPointStmt: 'CHECKPOINT',
  LockStmt: 'LOCK TABLE',
};

/** Statements clients send all the time that read no data: forwarded unchecked. */
const MISC_FORWARDED: Readonly<Record<string, string>> = {
  VariableShowStmt: 'SHOW',
  DiscardStmt: 'DISCARD',
  UnlistenStmt: 'UNLISTEN',
  ConstraintsSetStmt: 'SET CONSTRAINTS',
  ClosePortalStmt: 'CLOSE CURSOR',
  DeallocateStmt: 'DEALLOCATE',
};

/** Statements that run code or load libraries pgward cannot see into. */
const REFUSED: Readonly<Record<string, string>> = {
  DoStmt: 'DO',
  CallStmt: 'CALL',
  LoadStmt: 'LOAD',
};

const TRANSACTION_COMMANDS: Readonly<Record<string, string>> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'START TRANSACTION',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION',
  TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED',
  TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
};

/** Settings that decide name resolution or who the session is. */
const PINNED_SETTINGS: ReadonlySet<string> = new Set(['search_path', 'role', 'session_authorization']);

/**
 * Settings that change how the server reads SQL text. pgward parses text as
 * UTF-8 with standard_conforming_strings on; a server reading the same bytes
 * in another encoding, or with backslash escapes in plain literals, would run
 * a different statement than the one checked. Only these values may be set.
 */
const LEXICAL_SETTINGS: Readonly<Record<string, (value: string) => boolean>> = {
  // PostgreSQL compares encoding names ignoring case and punctuation (clean_encoding_name).
  client_encoding: (v) => ['utf8', 'unicode'].includes(v.toLowerCase().replace(/[^a-z0-9]/g, '')),
  standard_conforming_strings: (v) => ['on', 'true', 'yes', '1', 't', 'y'].includes(v.toLowerCase()),
};

/**
 * Settings that make the server send this session's statements back to the
 * client: below NOTICE, client_min_messages lets through the DEBUG messages
 * that quote every statement the extended protocol parses, binds and
 * executes, and the LOG messages of debug_print_parse/rewritten/plan, which
 * print whole query trees. Those are the rewritten statements, with their
 * mask expressions — hash salts included (POLICY-FORMAT.md: the salt
 * protects against clients). Only these values may be set.
 */
const ECHO_SETTINGS: Readonly<Record<string, (value: string) => boolean>> = {
  client_min_messages: (v) => ['notice', 'warning', 'error'].includes(v.toLowerCase()),
};

/** Command names the node type does not spell out. */
const COMMAND_NAMES: Readonly<Record<string, string>> = {
  CreateStmt: 'CREATE TABLE',
  IndexStmt: 'CREATE INDEX',
  ViewStmt: 'CREATE VIEW',
  RuleStmt: 'CREATE RULE',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateSeqStmt: 'CREATE SEQUENCE',
  AlterSeqStmt: 'ALTER SEQUENCE',
  CreatedbStmt: 'CREATE DATABASE',
  DropdbStmt: 'DROP DATABASE',
  CreatePLangStmt: 'CREATE LANGUAGE',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  RenameStmt: 'ALTER',
  DefineStmt: 'CREATE',
  SecLabelStmt: 'SECURITY LABEL',
};

/** `CreateFunctionStmt` → `CREATE FUNCTION`: good enough for plans and messages. */
function commandOf(node: Node, type: string): string {
  if ('GrantStmt' in node) return node.GrantStmt.is_grant ? 'GRANT' : 'REVOKE';
  if ('GrantRoleStmt' in node) return node.GrantRoleStmt.is_grant ? 'GRANT ROLE' : 'REVOKE ROLE';
  return (
    COMMAND_NAMES[type] ??
    type
      .replace(/Stmt$/, '')
      .replace(/([a-z])([A-Z])/g, '$1 $2')
      .toUpperCase()
  );
}

function nodeType(node: Node): string {
  return Object.keys(node)[0] ?? '';
}

interface Draft {
  readonly command: string;
  readonly action: Action;
  readonly columns?: readonly OutputColumn[];
  readonly deferred?: StatementPlan['deferred'];
  readonly executes?: string;
  readonly fetches?: string;
}

const COMPUTED = { kind: 'computed' } as const;

/** Classifies, checks and rewrites (in place) one statement. Throws a Refusal. */
function statement(a: Analyzer, node: Node): Draft {
  const input = a.input;
  const type = nodeType(node);
  if ('SelectStmt' in node) {
    const s = node.SelectStmt;
    if (s.intoClause) {
      requireAction(input.policy, 'ddl', 'SELECT INTO');
      a.select(s, undefined, undefined);
      return { command: 'SELECT INTO', action: 'ddl' };
    }
    return { command: 'SELECT', action: 'select', columns: outputColumns(a.select(s, undefined, undefined)) };
  }
  if ('InsertStmt' in node) return { command: 'INSERT', action: 'insert', columns: outputColumns(a.insert(node.InsertStmt, undefined, undefined)) };
  if ('UpdateStmt' in node) return { command: 'UPDATE', action: 'update', columns: outputColumns(a.update(node.UpdateStmt, undefined, undefined)) };
  if ('DeleteStmt' in node) return { command: 'DELETE', action: 'delete', columns: outputColumns(a.delete(node.DeleteStmt, undefined, undefined)) };
  if ('MergeStmt' in node) return { command: 'MERGE', action: 'update', columns: outputColumns(a.merge(node.MergeStmt, undefined, undefined)) };
  if ('ExplainStmt' in node) return explain(a, node.ExplainStmt);
  if ('DeclareCursorStmt' in node) {
    const d = node.DeclareCursorStmt;
    const columns = outputColumns(a.query(d.query, undefined, undefined));
    return { command: 'DECLARE CURSOR', action: 'select', deferred: { kind: 'cursor', name: d.portalname ?? '', columns } };
  }
  if ('PrepareStmt' in node) {
    const p = node.PrepareStmt;
    if (!p.query) return unsupported('PREPARE without a statement');
    const inner = statement(a, p.query);
    return { command: 'PREPARE', action: inner.action, deferred: { kind: 'prepared', name: p.name ?? '', columns: inner.columns ?? [] } };
  }
  if ('ExecuteStmt' in node) {
    // What it runs was rewritten at PREPARE; its parameters are expressions and may hold subqueries.
    a.freeExpressions(node.ExecuteStmt.params);
    return { command: 'EXECUTE', action: 'misc', executes: node.ExecuteStmt.name ?? '' };
  }
  if ('FetchStmt' in node) return { command: node.FetchStmt.ismove ? 'MOVE' : 'FETCH', action: 'misc', fetches: node.FetchStmt.portalname ?? '' };
  if ('CopyStmt' in node) return copy(a, node.CopyStmt);
  if ('VariableSetStmt' in node) return setting(node.VariableSetStmt);
  if ('TransactionStmt' in node) return { command: TRANSACTION_COMMANDS[node.TransactionStmt.kind ?? ''] ?? 'TRANSACTION', action: 'misc' };
  if ('VariableShowStmt' in node) {
    const name = node.VariableShowStmt.name ?? '';
    const columns = name.toLowerCase() === 'all' ? ['name', 'setting', 'description'] : [name];
    return { command: 'SHOW', action: 'misc', columns: columns.map((n) => ({ name: n, source: COMPUTED })) };
  }
  if ('TruncateStmt' in node) {
    for (const r of node.TruncateStmt.relations ?? []) {
      if (!('RangeVar' in r)) continue;
      const rel = a.resolve(r.RangeVar);
      // TRUNCATE reaches every descendant unless ONLY: each must allow it.
      const affected = r.RangeVar.inh !== true ? [rel] : [rel, ...descendants(input.catalog, rel)];
      for (const target of affected) chainAccess(input, target, 'truncate');
    }
    return { command: 'TRUNCATE TABLE', action: 'truncate' };
  }
  if ('CreateTableAsStmt' in node) return createTableAs(a, node.CreateTableAsStmt);
  if ('ListenStmt' in node) {
    // Notifications carry whatever other sessions (applications, triggers) put in their payloads,
    // computed from any data and past every policy: receiving them takes the misc action.
    const v = statementAccess(input.policy, 'misc');
    if (v.effect === 'deny') privilege(`LISTEN is not allowed for restricted identities without the misc action: notification payloads come from other sessions, unmasked`, v.rule);
    return { command: 'LISTEN', action: 'misc' };
  }
  if (MISC_FORWARDED[type] !== undefined) return { command: MISC_FORWARDED[type], action: 'misc' };
  if (MISC_CHECKED[type] !== undefined) {
    requireAction(input.policy, 'misc', MISC_CHECKED[type]);
    return { command: MISC_CHECKED[type], action: 'misc' };
  }
  if (REFUSED[type] !== undefined) privilege(`${REFUSED[type]} is not allowed for restricted identities: pgward cannot check the code it runs`);
  if (DDL_STATEMENTS.has(type)) {
    const command = commandOf(node, type);
    requireAction(input.policy, 'ddl', command);
    return { command, action: 'ddl' };
  }
  return unsupported(`${commandOf(node, type)} statements are not supported for restricted identities`);
}

function requireAction(ctx: PolicyContext, action: 'ddl' | 'misc', command: string): void {
  const v = statementAccess(ctx, action);
  if (v.effect === 'deny') privilege(`${command}: ${v.message ?? 'permission denied'}`, v.rule);
}

function explain(a: Analyzer, e: ExplainStmt): Draft {
  for (const o of e.options ?? []) {
    if ('DefElem' in o && o.DefElem.defname?.toLowerCase() === 'analyze') {
      privilege('EXPLAIN ANALYZE is not allowed for restricted identities: its row counts reveal rows the policies hide');
    }
  }
  // Plans print expressions (sort keys, filters, VERBOSE target lists), of EXECUTEd statements too:
  // a hash mask's salt must never reach the client it protects against.
  if (a.input.policy.masks.some((m) => m.mask.type === 'hash')) {
    privilege('EXPLAIN is not allowed for identities with hash masks: plans print mask expressions, salts included');
  }
  if (!e.query) return unsupported('EXPLAIN without a statement');
  const inner = statement(a, e.query);
  // The planner works from statistics gathered over every row: for a row-filtered table they describe
  // the hidden rows too (most common values, histogram bounds). Estimates print them nearly as they
  // are, and even with COSTS OFF the chosen plan shape flips where an estimate crosses a threshold,
  // so a search over constants reads them out. No option makes such a plan safe to show.
  if ('ExecuteStmt' in e.query && a.input.policy.rules.some((r) => r.rowFilter !== undefined)) {
    privilege('EXPLAIN EXECUTE is not allowed for identities with row filters: the prepared statement may read a row-filtered table, and its plan follows statistics over the hidden rows');
  }
  const filtered = rowFilteredTable(a);
  if (filtered) {
    privilege(`EXPLAIN of a statement that reads ${filtered} is not allowed for restricted identities: its plan follows statistics over every row, including the rows the row filter hides`);
  }
  return { command: 'EXPLAIN', action: inner.action, columns: [{ name: 'QUERY PLAN', source: COMPUTED }], ...(inner.executes !== undefined ? { executes: inner.executes } : {}) };
}

/** The first table the statement reads through a row filter, as schema.name. */
function rowFilteredTable(a: Analyzer): string | undefined {
  for (const [oid, use] of a.tables) {
    if (!use.protected) continue;
    const rel = a.input.catalog.relations.get(oid);
    if (!rel || a.protection(rel).filters.length > 0) return `${use.schema}.${use.table}`;
  }
  return undefined;
}

function createTableAs(a: Analyzer, c: CreateTableAsStmt): Draft {
  const command = c.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : c.is_select_into ? 'SELECT INTO' : 'CREATE TABLE AS';
  requireAction(a.input.policy, 'ddl', command);
  const inner = c.query ? statement(a, c.query) : undefined;
  return { command, action: 'ddl', ...(inner?.executes !== undefined ? { executes: inner.executes } : {}) };
}

function setting(s: VariableSetStmt): Draft {
  const command = s.kind === 'VAR_RESET' || s.kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET';
  if (s.kind === 'VAR_RESET_ALL') privilege('RESET ALL is not allowed for restricted identities: it would reset the search_path pgward pins');
  // GUC names are case-insensitive, even quoted.
  const name = (s.name ?? '').toLowerCase();
  if (PINNED_SETTINGS.has(name)) {
    privilege(
      name === 'search_path'
        ? 'search_path is pinned by pgward for restricted identities'
        : `${command} ${name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'} is not allowed for restricted identities`,
    );
  }
  const lexical = LEXICAL_SETTINGS[name];
  if (lexical && s.kind === 'VAR_SET_VALUE') {
    const values = (s.args ?? []).map(constantText);
    if (values.length !== 1 || values[0] === undefined || !lexical(values[0])) {
      privilege(`${name} is pinned by pgward for restricted identities: pgward reads statements as UTF-8 with standard_conforming_strings on`);
    }
  }
  const echo = ECHO_SETTINGS[name];
  if (echo && s.kind === 'VAR_SET_VALUE') {
    const values = (s.args ?? []).map(constantText);
    if (values.length !== 1 || values[0] === undefined || !echo(values[0])) {
      privilege(`${name} below notice is not allowed for restricted identities: the server would send the rewritten statements back`);
    }
  }
  return { command, action: 'misc' };
}

/** The text of a constant as SET reads it (protobuf JSON omits zero values: `{ ival: {} }` is 0). */
function constantText(node: Node): string | undefined {
  if (!('A_Const' in node)) return undefined;
  const c = node.A_Const;
  if (c.sval) return c.sval.sval ?? '';
  if (c.ival) return String(c.ival.ival ?? 0);
  if (c.fval) return c.fval.fval ?? '';
  if (c.boolval) return String(c.boolval.boolval ?? false);
  return undefined;
}

/** COPY: query form rewritten, table form turned into a query when the table is protected. */
function copy(a: Analyzer, c: CopyStmt): Draft {
  const input = a.input;
  if (c.filename !== undefined || c.is_program) {
    privilege('COPY to or from a server file or program is not allowed for restricted identities');
  }
  if (c.is_from) {
    a.copyFrom(c);
    return { command: 'COPY', action: 'copy_from' };
  }
  let columns: readonly OutputColumn[];
  if (c.query) {
    columns = outputColumns(a.query(c.query, undefined, undefined));
  } else {
    const rv = c.relation;
    if (!rv) return unsupported('COPY without a table or query');
    const rel = a.resolve(rv);
    if (rel.kind !== 'table') {
      const what = rel.kind === 'partitioned' ? 'partitioned table' : rel.kind === 'matview' ? 'materialized view' : rel.kind === 'foreign' ? 'foreign table' : rel.kind;
      refuse(RewriteSqlState.WrongObjectType, `cannot copy from ${what} ${quoted(rel.name)}`, { detail: 'Try the COPY (SELECT ...) TO variant.' });
    }
    const p = a.protection(rel);
    const wanted = (c.attlist ?? []).map((n) => ('String' in n ? n.String.sval : undefined) ?? '');
    const named = wanted.length > 0 ? wanted : rel.columns.map((col) => col.name);
    for (const name of named) {
      const policy = p.columns.get(name);
      if (!policy) refuse('42703', `column ${quoted(name)} of relation ${quoted(rel.name)} does not exist`);
      if (policy.denied) throw new Refusal(policy.denied);
    }
    if (p.protected) {
      // COPY t TO copies t's own rows only, as SELECT ... FROM ONLY t does.
      const list = wanted.length > 0 ? wanted.map((n) => QuoteUtils.quoteIdentifier(n)).join(', ') : '*';
      const parsed = parseSync(`SELECT ${list} FROM ONLY ${QuoteUtils.quoteIdentifier(rel.schema)}.${QuoteUtils.quoteIdentifier(rel.name)}`);
      const stmt = parsed.stmts?.[0]?.stmt;
      if (!stmt || !('SelectStmt' in stmt)) throw new Error('COPY query did not parse');
      const query = stripPositions(stmt) as { SelectStmt: SelectStmt };
      columns = outputColumns(a.select(query.SelectStmt, undefined, undefined));
      c.query = query;
      delete c.relation;
      delete c.attlist;
    } else {
      a.tables.set(rel.oid, { schema: rel.schema, table: rel.name, protected: false });
      rv.schemaname = rel.schema;
      delete rv.catalogname;
      columns = named.map((name) => {
        const policy = p.columns.get(name);
        return {
          name,
          source: { kind: 'column', schema: rel.schema, table: rel.name, column: name, masked: policy?.maskRule, encrypted: policy?.encrypted ?? false },
        };
      });
    }
  }
  // A deny rule may close COPY TO while leaving SELECT open.
  for (const t of a.tables.values()) {
    const rel = input.catalog.bySchema.get(t.schema)?.get(t.table);
    if (!rel) continue;
    for (const level of [rel, ...ancestors(input.catalog, rel)]) {
      const v = tableAccess(input.policy, { schema: level.schema, table: level.name }, 'copy_to');
      if (v.effect === 'deny' && v.rule !== undefined) privilege(v.message ?? `COPY TO is not allowed for ${t.schema}.${t.table}`, v.rule);
    }
  }
  return { command: 'COPY', action: 'copy_to', columns };
}

/**
 * Old-style COPY options (`csv header`) parse to `header` with a Boolean
 * true argument, which the deparser prints as a bare `HEADER` (no argument):
 * the same meaning (a missing argument is true), so normalize before deparse.
 */
function normalizeForDeparse(node: Node): void {
  const c = 'CopyStmt' in node ? node.CopyStmt : undefined;
  for (const o of c?.options ?? []) {
    if ('DefElem' in o && o.DefElem.arg && 'Boolean' in o.DefElem.arg && o.DefElem.arg.Boolean.boolval === true) delete o.DefElem.arg;
  }
}

// ---------------------------------------------------------------------------

function deny(refusal: Refusal, statementIndex: number): RewriteDecision {
  const d = refusal.denial;
  return {
    kind: 'deny',
    sqlstate: d.sqlstate,
    message: d.message,
    ...(d.detail !== undefined ? { detail: d.detail } : {}),
    ...(d.rule !== undefined ? { rule: d.rule } : {}),
    statementIndex,
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface Done {
  readonly raw: RawStmt;
  readonly expected: Node;
  readonly changed: boolean;
  readonly plan: StatementPlan;
}

/** The text of an unchanged statement as the client wrote it (positions are UTF-8 byte offsets). */
function originalText(bytes: Buffer, raw: RawStmt): string {
  const start = raw.stmt_location ?? 0;
  const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
  return bytes.subarray(start, end).toString('utf8').trim();
}

/**
 * Decides one Query or Parse message for a restricted identity. A deny in
 * any statement refuses the whole message.
 */
export function planRewrite(input: RewriteInput): RewriteDecision {
  try {
    return planStatements(input);
  } catch (err) {
    // Whatever escaped the per-statement checks (a tree too deep for the recursive walks, a bug)
    // refuses the statement: it must neither be forwarded nor take the session or process down.
    if (err instanceof RangeError) {
      return { kind: 'deny', sqlstate: StatementTooComplex, message: 'statement is too deeply nested for pgward to check', statementIndex: 0 };
    }
    return { kind: 'deny', sqlstate: 'XX000', message: `pgward could not analyze the statement: ${errorText(err)}`, statementIndex: 0 };
  }
}

/** PostgreSQL's statement_too_complex, which it raises itself for expressions nested too deeply. */
const StatementTooComplex = '54001';

function planStatements(input: RewriteInput): RewriteDecision {
  // The server answers an empty query with EmptyQueryResponse; the parser refuses it.
  if (input.sql.trim() === '') return { kind: 'forward', statements: [] };
  let parsed;
  try {
    parsed = parseSync(input.sql);
  } catch (err) {
    return { kind: 'deny', sqlstate: RewriteSqlState.SyntaxError, message: errorText(err), statementIndex: 0 };
  }
  const raws = parsed.stmts ?? [];
  if (input.protocol === 'extended' && raws.length > 1) {
    return { kind: 'deny', sqlstate: RewriteSqlState.SyntaxError, message: 'cannot insert multiple commands into a prepared statement', statementIndex: 1 };
  }
  const analyzer = new Analyzer({ input, mode: 'policy' });
  const done: Done[] = [];
  for (const [i, raw] of raws.entries()) {
    if (!raw.stmt) continue;
    const expected = stripPositions(raw.stmt);
    const work = structuredClone(expected);
    analyzer.beginStatement();
    let draft: Draft;
    try {
      draft = statement(analyzer, work);
    } catch (err) {
      if (err instanceof Refusal) return deny(err, i);
      if (err instanceof RangeError) throw err;
      return { kind: 'deny', sqlstate: 'XX000', message: `pgward could not analyze the statement: ${errorText(err)}`, statementIndex: i };
    }
    const changed = !sameTree(work, expected);
    if (changed) normalizeForDeparse(work);
    done.push({
      raw,
      expected: changed ? work : expected,
      changed,
      plan: {
        command: draft.command,
        action: draft.action,
        tables: [...analyzer.tables.values()],
        columns: draft.columns ?? [],
        ...(draft.deferred ? { deferred: draft.deferred } : {}),
        ...(draft.executes !== undefined ? { executes: draft.executes } : {}),
        ...(draft.fetches !== undefined ? { fetches: draft.fetches } : {}),
      },
    });
  }
  const statements = done.map((d) => d.plan);
  if (!done.some((d) => d.changed)) return { kind: 'forward', statements };

  const bytes = Buffer.from(input.sql, 'utf8');
  const texts: string[] = [];
  for (const [i, d] of done.entries()) {
    try {
      const text = d.changed ? deparseStatement(d.expected) : originalText(bytes, d.raw);
      // A trailing line comment would swallow the separator.
      texts.push(text.includes('--') ? `${text}\n` : text);
    } catch (err) {
      return { kind: 'deny', sqlstate: RewriteSqlState.FeatureNotSupported, message: 'pgward could not verify the rewritten statement', detail: errorText(err), statementIndex: i };
    }
  }
  const sql = texts.join(';\n');
  const mismatch = verify(sql, done);
  if (mismatch !== undefined) {
    return {
      kind: 'deny',
      sqlstate: RewriteSqlState.FeatureNotSupported,
      message: 'pgward could not verify the rewritten statement',
      detail: mismatch.detail,
      statementIndex: mismatch.index,
    };
  }
  return { kind: 'rewrite', sql, statements };
}

/** Parses the rewritten text again: it must give back exactly the trees that were built. */
function verify(sql: string, done: readonly Done[]): { index: number; detail: string } | undefined {
  let reparsed;
  try {
    reparsed = parseSync(sql);
  } catch (err) {
    return { index: 0, detail: `the rewritten text does not parse: ${errorText(err)}` };
  }
  const stmts = reparsed.stmts ?? [];
  if (stmts.length !== done.length) return { index: 0, detail: `the rewritten text holds ${stmts.length} statements instead of ${done.length}` };
  for (const [i, d] of done.entries()) {
    const again = stmts[i]?.stmt;
    if (!again || !sameTree(stripPositions(again), d.expected)) {
      return { index: i, detail: 'the deparsed statement parses to a different tree' };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------

function describeColumn(c: OutputColumn): string {
  if (c.source.kind === 'computed') return `${c.name} ← computed`;
  const s = c.source;
  const extras = [s.masked !== undefined ? `masked by ${s.masked}` : '', s.encrypted ? 'encrypted' : ''].filter(Boolean).join(', ');
  return `${c.name} ← ${s.schema}.${s.table}.${s.column}${extras ? ` (${extras})` : ''}`;
}

function describePlan(p: StatementPlan, i: number): string[] {
  const lines = [`statement ${i + 1}: ${p.command} (action ${p.action})`];
  if (p.tables.length > 0) {
    lines.push(`  tables: ${p.tables.map((t) => `${t.schema}.${t.table}${t.protected ? ' [protected]' : ''}`).join(', ')}`);
  }
  for (const c of p.columns) lines.push(`  column ${describeColumn(c)}`);
  if (p.deferred) {
    lines.push(`  ${p.deferred.kind} ${p.deferred.name} returns:`);
    for (const c of p.deferred.columns) lines.push(`    column ${describeColumn(c)}`);
  }
  return lines;
}

/** A human-readable account of a decision, for `pgward policy explain`. */
export function describeDecision(decision: RewriteDecision): string {
  switch (decision.kind) {
    case 'deny': {
      const lines = [`deny (SQLSTATE ${decision.sqlstate}) at statement ${decision.statementIndex + 1}: ${decision.message}`];
      if (decision.rule !== undefined) lines.push(`  rule: ${decision.rule}`);
      if (decision.detail !== undefined) lines.push(`  detail: ${decision.detail}`);
      return lines.join('\n');
    }
    case 'forward':
      return ['forward unchanged', ...decision.statements.flatMap(describePlan)].join('\n');
    case 'rewrite':
      return ['rewrite', ...decision.statements.flatMap(describePlan), 'rewritten SQL:', decision.sql].join('\n');
  }
}

