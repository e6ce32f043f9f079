/**
 * The one catalogue of errors pgward reports to clients. Each has a SQLSTATE
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html) and a named
 * constructor, so call sites never invent codes.
 */

export const Severity = { Error: 'ERROR', Fatal: 'FATAL' } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

export const SqlState = {
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  SqlclientUnableToEstablishSqlconnection: '08001',
  InvalidAuthorizationSpecification: '28000',
  InvalidPassword: '28P01',
  AdminShutdown: '57P01',
  QueryCanceled: '57014',
  CannotConnectNow: '57P03',
  FeatureNotSupported: '0A000',
  InsufficientPrivilege: '42501',
  TooManyConnections: '53300',
  ProgramLimitExceeded: '54000',
  InternalError: 'XX000',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];

export interface PgwardError {
  readonly severity: Severity;
  readonly code: SqlState;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

const fatal = (code: SqlState, message: string, extra: { detail?: string; hint?: string } = {}): PgwardError => ({
  severity: Severity.Fatal,
  code,
  message,
  ...extra,
});

export const Errors = {
  protocolViolation: (message: string): PgwardError => fatal(SqlState.ProtocolViolation, message),
  messageTooLarge: (size: number, limit: number): PgwardError =>
    fatal(SqlState.ProtocolViolation, `message of ${size} bytes exceeds the limit of ${limit} bytes`),
  tlsRequired: (): PgwardError =>
    fatal(SqlState.InvalidAuthorizationSpecification, 'pgward requires an encrypted connection', {
      hint: 'Connect with sslmode=require (or verify-full).',
    }),
  unsupportedProtocol: (major: number, minor: number): PgwardError =>
    fatal(
      SqlState.FeatureNotSupported,
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`,
    ),
  directTlsWithoutAlpn: (): PgwardError =>
    fatal(SqlState.ProtocolViolation, 'direct SSL connection requires ALPN protocol "postgresql"'),
  upstreamUnavailable: (reason: string): PgwardError =>
    fatal(SqlState.SqlclientUnableToEstablishSqlconnection, 'could not connect to the upstream database', {
      detail: reason,
    }),
  upstreamLost: (): PgwardError =>
    fatal(SqlState.ConnectionFailure, 'connection to the upstream database was lost'),
  adminShutdown: (): PgwardError =>
    fatal(SqlState.AdminShutdown, 'terminating connection due to administrator command', {
      detail: 'pgward is shutting down.',
    }),
  shuttingDown: (): PgwardError => fatal(SqlState.CannotConnectNow, 'pgward is shutting down'),
  channelBindingUnavailable: (): PgwardError =>
    fatal(SqlState.InvalidAuthorizationSpecification, 'the upstream offers no SASL mechanism pgward can relay', {
      detail: 'SCRAM channel binding (SCRAM-SHA-256-PLUS) cannot cross a TLS-terminating proxy.',
    }),
  /** Every token failure looks the same to the client; the reason goes to the log (RFC 6750 §3.1 spirit). */
  passwordFailed: (user: string): PgwardError =>
    fatal(SqlState.InvalidPassword, `password authentication failed for user "${user}"`),
  tokenOverPlaintext: (): PgwardError =>
    fatal(SqlState.InvalidAuthorizationSpecification, 'tokens are accepted only over an encrypted connection', {
      hint: 'Connect with sslmode=require (or verify-full).',
    }),
  invalidSaslMechanism: (): PgwardError =>
    fatal(SqlState.ProtocolViolation, 'client selected an invalid SASL authentication mechanism'),
  malformedOAuthBearer: (detail: string): PgwardError =>
    fatal(SqlState.ProtocolViolation, 'malformed OAUTHBEARER message', { detail }),
  sessionExpired: (why: string): PgwardError =>
    fatal(SqlState.AdminShutdown, `terminating connection because ${why}`, {
      hint: 'Reconnect with a fresh token.',
    }),
  /** A statement refused by policy or by the rewrite stage; the session goes on (severity ERROR). */
  statementRefused: (code: string, message: string, detail?: string): PgwardError => ({
    severity: Severity.Error,
    code: code as SqlState,
    message,
    ...(detail ? { detail } : {}),
  }),
  protocolViolationStatement: (message: string): PgwardError => ({ severity: Severity.Error, code: SqlState.ProtocolViolation, message }),
  /** Fast-path function calls name functions by OID: nothing pgward can check, so restricted identities may not use them. */
  functionCallRefused: (): PgwardError => ({
    severity: Severity.Error,
    code: SqlState.InsufficientPrivilege,
    message: 'the fast-path function call protocol is not available to restricted identities',
  }),
  searchPathPinned: (): PgwardError =>
    fatal(SqlState.InsufficientPrivilege, 'search_path is pinned by pgward for restricted identities', {
      detail: 'Remove search_path from the connection options.',
    }),
  startupSettingRefused: (setting: string): PgwardError =>
    fatal(SqlState.InsufficientPrivilege, `the startup setting "${setting}" is not allowed through pgward`, {
      hint: 'Remove it from the connection options; pgward chooses the upstream role and how statements are read.',
    }),
  unsafeSessionSetting: (name: string, value: string | undefined, required: string): PgwardError =>
    fatal(SqlState.FeatureNotSupported, `restricted identities need ${name} = ${required} (the session has ${value ?? 'none'})`, {
      hint: `Connect with ${name}=${required}.`,
    }),
  startupTimeout: (): PgwardError => fatal(SqlState.QueryCanceled, 'canceling authentication due to timeout'),
  internal: (message: string): PgwardError => fatal(SqlState.InternalError, message),
} as const;
