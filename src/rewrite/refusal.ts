/**
 * Why the rewriter refuses a statement: a value with a SQLSTATE, thrown from
 * deep inside the analysis and caught once per statement by plan.ts.
 */

/** The SQLSTATEs the rewriter answers with (PostgreSQL's own codes for the same situations). */
export const RewriteSqlState = {
  InsufficientPrivilege: '42501',
  FeatureNotSupported: '0A000',
  SyntaxError: '42601',
  UndefinedTable: '42P01',
  UndefinedFunction: '42883',
  InvalidColumnReference: '42P10',
  WrongObjectType: '42809',
} as const;
export type RewriteSqlState = (typeof RewriteSqlState)[keyof typeof RewriteSqlState];

export interface Denial {
  readonly sqlstate: string;
  readonly message: string;
  readonly detail?: string;
  /** The policy rule (or mask) that decided, when one did. */
  readonly rule?: string;
}

export class Refusal extends Error {
  constructor(readonly denial: Denial) {
    super(denial.message);
  }
}

export function refuse(sqlstate: string, message: string, extra: { detail?: string; rule?: string } = {}): never {
  throw new Refusal({ sqlstate, message, ...(extra.detail !== undefined ? { detail: extra.detail } : {}), ...(extra.rule !== undefined ? { rule: extra.rule } : {}) });
}

export function privilege(message: string, rule?: string): never {
  return refuse(RewriteSqlState.InsufficientPrivilege, message, rule === undefined ? {} : { rule });
}

export function unsupported(message: string): never {
  return refuse(RewriteSqlState.FeatureNotSupported, message);
}

/** Quotes a name for messages the way PostgreSQL does: in double quotes. */
export function quoted(name: string): string {
  return `"${name}"`;
}
