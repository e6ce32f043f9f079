/**
 * One bypass attempt: a SQL text an analyst sends, and what pgward must make
 * of it. Whatever the expectation, no response byte may hold a secret; the
 * expectation adds what the answer itself must be.
 */
export type Expectation =
  /** Runs and returns an answer (computed on masked, filtered rows). */
  | 'ok'
  /** Refused, with one of `codes` (default 42501). */
  | 'refused'
  /** Fails, by pgward's refusal or a server error on masked values: either is fine. */
  | 'error'
  /** Either way, as long as nothing leaks and nothing breaks. */
  | 'any';

export interface Attempt {
  readonly category: string;
  readonly sql: string;
  readonly expect: Expectation;
  readonly codes?: readonly string[];
  /** Several statements in one Query: the extended protocol cannot carry it. */
  readonly multi?: boolean;
  /** Runs inside BEGIN … ROLLBACK (cursors, SET LOCAL). */
  readonly tx?: boolean;
  /** COPY … TO STDOUT: drivers without COPY support skip it. */
  readonly copy?: boolean;
  /** Text psql's own lexer would read differently (an unterminated quote swallows the next attempts). */
  readonly noPsql?: boolean;
  /** Checks the rows of the (last) result, as raw text arrays: returns what is wrong, if anything. */
  readonly check?: (rows: readonly (readonly (string | null)[])[]) => string | undefined;
}

type Options = Omit<Attempt, 'category' | 'sql' | 'expect'>;

/** Builds the attempts of one category. */
export function category(name: string) {
  const list: Attempt[] = [];
  const add = (sql: string, expect: Expectation, options: Options = {}): void => {
    list.push({ category: name, sql, expect, ...options });
  };
  return {
    list,
    ok: (sql: string, options: Options = {}) => add(sql, 'ok', options),
    refused: (sql: string, codes: readonly string[] = ['42501'], options: Options = {}) => add(sql, 'refused', { ...options, codes }),
    error: (sql: string, options: Options = {}) => add(sql, 'error', options),
    any: (sql: string, options: Options = {}) => add(sql, 'any', options),
  };
}

/** Row checks. */
export const rowsWhere = {
  count: (n: number) => (rows: readonly (readonly (string | null)[])[]) =>
    rows.length === n ? undefined : `expected ${n} rows, got ${rows.length}`,
  value: (expected: string | null) => (rows: readonly (readonly (string | null)[])[]) =>
    rows[0]?.[0] === expected ? undefined : `expected ${JSON.stringify(expected)}, got ${JSON.stringify(rows)}`,
  /** Every row's column `i` is in `allowed`. */
  only: (i: number, allowed: ReadonlySet<string | null>) => (rows: readonly (readonly (string | null)[])[]) => {
    const bad = rows.find((r) => !allowed.has(r[i] ?? null));
    return bad ? `unexpected value ${JSON.stringify(bad[i])}` : undefined;
  },
};
