/**
 * A snapshot of the upstream catalog, as the session's own role sees it:
 * relations with their columns and inheritance parents, and the names of
 * functions and operators. The rewriter resolves every name against it,
 * never against the server at plan time.
 *
 * CATALOG_SQL returns ONE row with ONE text column, `catalog`: a JSON
 * document (compact arrays, see `CatalogDocument`). One row keeps the
 * snapshot consistent (one statement, one MVCC snapshot) and makes the
 * version a hash of exactly what was read.
 *
 * Temporary schemas are left out on purpose: the rewriter schema-qualifies
 * every relation it lets through, so a temporary object can never stand in
 * for a catalog one.
 */
import { createHash } from 'node:crypto';

export interface CatalogColumn {
  readonly name: string;
  readonly attnum: number;
  /** format_type(atttypid, atttypmod), e.g. `numeric(10,2)`, `character varying(20)`, `text[]`. */
  readonly type: string;
  readonly typeOid: number;
  readonly typmod: number;
  readonly notNull: boolean;
  /** The type's own name and schema (for arrays: the element type's), for building casts. */
  readonly typeName: string;
  readonly typeSchema: string;
  readonly typeIsArray: boolean;
}

export type RelationKind = 'table' | 'partitioned' | 'view' | 'matview' | 'foreign' | 'other';

export interface CatalogRelation {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly kind: RelationKind;
  /** attnum order, no dropped or system columns. */
  readonly columns: readonly CatalogColumn[];
  /** Direct parents (pg_inherits: partitions and inheritance), in inhseqno order. */
  readonly parents: readonly number[];
}

export type FunctionKind = 'function' | 'aggregate' | 'window' | 'procedure';

export interface CatalogFunction {
  readonly schema: string;
  readonly name: string;
  readonly kind: FunctionKind;
}

export interface Catalog {
  /** SHA-256 of the catalog document: equal snapshots, equal versions. */
  readonly version: string;
  /** current_database() when the snapshot was taken; three-part names must name it. */
  readonly database: string;
  readonly relations: ReadonlyMap<number, CatalogRelation>;
  /** schema → relation name → relation. */
  readonly bySchema: ReadonlyMap<string, ReadonlyMap<string, CatalogRelation>>;
  /** Direct children (partitions and inheritance children) by parent oid. */
  readonly children: ReadonlyMap<number, readonly number[]>;
  /** function name → every schema and kind that defines it. */
  readonly functions: ReadonlyMap<string, readonly CatalogFunction[]>;
  /** operator name → schemas that define it. */
  readonly operators: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * Domains with CHECK constraints (`schema\0name`), outside the system schemas: a cast to one runs the
   * check, which may call any function.
   */
  readonly checkedDomains: ReadonlySet<string>;
  /** Comparison operators of pg_catalog whose function is leakproof, as `name|left|right` type names. */
  readonly leakproofOperators: ReadonlySet<string>;
}

/**
 * One statement (simple-query safe), valid on PostgreSQL 15 through 18.
 * Every object it names is pg_catalog-qualified, operators included, so the
 * session's search_path cannot redirect it.
 */
export const CATALOG_SQL = `SELECT pg_catalog.json_build_object(
  'database', pg_catalog.current_database(),
  'relations', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
      c.oid::pg_catalog.int8, n.nspname, c.relname, c.relkind,
      COALESCE((
        SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
          a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod),
          a.atttypid::pg_catalog.int8, a.atttypmod, a.attnotnull,
          COALESCE(et.typname, t.typname), COALESCE(etn.nspname, tn.nspname), et.oid IS NOT NULL
        ) ORDER BY a.attnum)
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
        JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) t.typnamespace
        LEFT JOIN pg_catalog.pg_type et ON et.oid OPERATOR(pg_catalog.=) t.typelem
          AND t.typelem OPERATOR(pg_catalog.<>) 0 AND t.typlen OPERATOR(pg_catalog.=) -1
        LEFT JOIN pg_catalog.pg_namespace etn ON etn.oid OPERATOR(pg_catalog.=) et.typnamespace
        WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
      ), '[]'),
      COALESCE((
        SELECT pg_catalog.json_agg(i.inhparent::pg_catalog.int8 ORDER BY i.inhseqno)
        FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid
      ), '[]')
    ) ORDER BY c.oid)
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,S}'::pg_catalog."char"[])
      AND n.nspname OPERATOR(pg_catalog.<>) 'pg_toast'
      AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_'
  ), '[]'),
  'functions', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_array(f.nspname, f.proname, f.prokind) ORDER BY f.nspname, f.proname, f.prokind)
    FROM (
      SELECT DISTINCT n.nspname, p.proname, p.prokind
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
      WHERE n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_'
    ) f
  ), '[]'),
  'operators', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_array(o.nspname, o.oprname) ORDER BY o.nspname, o.oprname)
    FROM (
      SELECT DISTINCT n.nspname, p.oprname
      FROM pg_catalog.pg_operator p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.oprnamespace
      WHERE n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_'
    ) o
  ), '[]'),
  'leakproof', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_array(o.oprname, l.typname, r.typname) ORDER BY o.oprname, l.typname, r.typname)
    FROM pg_catalog.pg_operator o
    JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) o.oprcode
    JOIN pg_catalog.pg_type l ON l.oid OPERATOR(pg_catalog.=) o.oprleft
    JOIN pg_catalog.pg_type r ON r.oid OPERATOR(pg_catalog.=) o.oprright
    WHERE p.proleakproof
      AND o.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
      AND l.typnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
      AND r.typnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
      AND o.oprname OPERATOR(pg_catalog.=) ANY ('{=,<>,<,<=,>,>=}'::pg_catalog.text[])
  ), '[]'),
  'checkedDomains', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_array(n.nspname, t.typname) ORDER BY n.nspname, t.typname)
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
    WHERE t.typtype OPERATOR(pg_catalog.=) 'd'
      AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
      AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.contypid OPERATOR(pg_catalog.=) t.oid AND k.contype OPERATOR(pg_catalog.=) 'c')
  ), '[]')
)::pg_catalog.text AS catalog`;

/**
 * The JSON document CATALOG_SQL returns, as arrays to keep it small:
 * relations `[oid, schema, name, relkind, columns, parents]`, columns
 * `[name, attnum, format_type, typeOid, typmod, notNull, typeName, typeSchema, isArray]`,
 * functions `[schema, name, prokind]`, operators `[schema, name]`,
 * leakproof comparison operators of pg_catalog `[name, left type, right type]`,
 * checkedDomains `[schema, name]`.
 */
interface CatalogDocument {
  readonly database: unknown;
  readonly relations: unknown;
  readonly functions: unknown;
  readonly operators: unknown;
  readonly checkedDomains?: unknown;
  readonly leakproof?: unknown;
}

const RELKINDS: Readonly<Record<string, RelationKind>> = {
  r: 'table',
  p: 'partitioned',
  v: 'view',
  m: 'matview',
  f: 'foreign',
};

const PROKINDS: Readonly<Record<string, FunctionKind>> = {
  f: 'function',
  a: 'aggregate',
  w: 'window',
  p: 'procedure',
};

class CatalogFormatError extends Error {
  constructor(message: string) {
    super(`catalog snapshot: ${message}`);
  }
}

function text(value: unknown, what: string): string {
  if (typeof value === 'string') return value;
  throw new CatalogFormatError(`${what} is not a string`);
}

function integer(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new CatalogFormatError(`${what} is not an integer`);
  return n;
}

function bool(value: unknown, what: string): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 't' || value === 'true') return true;
  if (value === 'f' || value === 'false') return false;
  throw new CatalogFormatError(`${what} is not a boolean`);
}

function list(value: unknown, what: string): readonly unknown[] {
  if (Array.isArray(value)) return value;
  throw new CatalogFormatError(`${what} is not an array`);
}

function parseColumn(value: unknown, where: string): CatalogColumn {
  const c = list(value, where);
  return {
    name: text(c[0], `${where} name`),
    attnum: integer(c[1], `${where} attnum`),
    type: text(c[2], `${where} type`),
    typeOid: integer(c[3], `${where} type oid`),
    typmod: integer(c[4], `${where} typmod`),
    notNull: bool(c[5], `${where} notnull`),
    typeName: text(c[6], `${where} type name`),
    typeSchema: text(c[7], `${where} type schema`),
    typeIsArray: bool(c[8], `${where} array flag`),
  };
}

function documentOf(rows: readonly Record<string, unknown>[]): { doc: CatalogDocument; canonical: string } {
  if (rows.length !== 1) throw new CatalogFormatError(`expected one row from CATALOG_SQL, got ${rows.length}`);
  const raw = rows[0]?.['catalog'];
  let parsed: unknown;
  if (typeof raw === 'string') {
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      throw new CatalogFormatError(`column "catalog" is not JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    // A driver with a json type parser hands over the object itself.
    parsed = raw;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CatalogFormatError('column "catalog" must hold a JSON object');
  }
  return { doc: parsed as CatalogDocument, canonical: typeof raw === 'string' ? raw : JSON.stringify(parsed) };
}

/** Builds the snapshot from the rows node-postgres returns for CATALOG_SQL. Throws on malformed input. */
export function buildCatalog(rows: readonly Record<string, unknown>[]): Catalog {
  const { doc, canonical } = documentOf(rows);
  const relations = new Map<number, CatalogRelation>();
  const bySchema = new Map<string, Map<string, CatalogRelation>>();
  list(doc.relations, 'relations').forEach((value, i) => {
    const r = list(value, `relation ${i}`);
    const where = `relation ${i}`;
    const relkind = text(r[3], `${where} relkind`);
    const relation: CatalogRelation = {
      oid: integer(r[0], `${where} oid`),
      schema: text(r[1], `${where} schema`),
      name: text(r[2], `${where} name`),
      kind: RELKINDS[relkind] ?? 'other',
      columns: list(r[4], `${where} columns`).map((c, j) => parseColumn(c, `${where} column ${j}`)),
      parents: list(r[5], `${where} parents`).map((p, j) => integer(p, `${where} parent ${j}`)),
    };
    relations.set(relation.oid, relation);
    let names = bySchema.get(relation.schema);
    if (!names) bySchema.set(relation.schema, (names = new Map()));
    names.set(relation.name, relation);
  });

  const children = new Map<number, number[]>();
  for (const rel of relations.values()) {
    for (const parent of rel.parents) {
      const kids = children.get(parent);
      if (kids) kids.push(rel.oid);
      else children.set(parent, [rel.oid]);
    }
  }

  const functions = new Map<string, CatalogFunction[]>();
  list(doc.functions, 'functions').forEach((value, i) => {
    const f = list(value, `function ${i}`);
    const fn: CatalogFunction = {
      schema: text(f[0], `function ${i} schema`),
      name: text(f[1], `function ${i} name`),
      kind: PROKINDS[text(f[2], `function ${i} kind`)] ?? 'function',
    };
    const same = functions.get(fn.name);
    if (same) same.push(fn);
    else functions.set(fn.name, [fn]);
  });

  const operators = new Map<string, Set<string>>();
  list(doc.operators, 'operators').forEach((value, i) => {
    const o = list(value, `operator ${i}`);
    const schema = text(o[0], `operator ${i} schema`);
    const name = text(o[1], `operator ${i} name`);
    const schemas = operators.get(name);
    if (schemas) schemas.add(schema);
    else operators.set(name, new Set([schema]));
  });

  const checkedDomains = new Set<string>();
  list(doc.checkedDomains ?? [], 'checkedDomains').forEach((value, i) => {
    const d = list(value, `domain ${i}`);
    checkedDomains.add(`${text(d[0], `domain ${i} schema`)}\0${text(d[1], `domain ${i} name`)}`);
  });

  const leakproofOperators = new Set<string>();
  list(doc.leakproof ?? [], 'leakproof').forEach((value, i) => {
    const o = list(value, `leakproof operator ${i}`);
    leakproofOperators.add(`${text(o[0], `leakproof ${i} name`)}|${text(o[1], `leakproof ${i} left`)}|${text(o[2], `leakproof ${i} right`)}`);
  });

  return {
    version: createHash('sha256').update(canonical).digest('hex'),
    database: text(doc.database, 'database'),
    relations,
    bySchema,
    children,
    functions,
    operators,
    checkedDomains,
    leakproofOperators,
  };
}

/** The schemas an unqualified name is looked up in, in order: pg_catalog first unless the path lists it; pg_temp never. */
export function lookupSchemas(searchPath: readonly string[]): readonly string[] {
  const path = searchPath.filter((s) => s !== 'pg_temp' && !/^pg_temp_\d+$/.test(s));
  return path.includes('pg_catalog') ? path : ['pg_catalog', ...path];
}

/**
 * Resolves a relation name as PostgreSQL would for this search_path:
 * `schema.name` in that schema, `db.schema.name` only in this database,
 * an unqualified name in pg_catalog (unless the path places it) and then the
 * path in order. `"$user"` must already be expanded; temporary schemas are
 * ignored (see the module comment).
 */
export function resolveRelation(catalog: Catalog, names: readonly string[], searchPath: readonly string[]): CatalogRelation | undefined {
  if (names.length === 3) {
    if (names[0] !== catalog.database) return undefined;
    return resolveRelation(catalog, names.slice(1), searchPath);
  }
  if (names.length === 2) return catalog.bySchema.get(names[0] as string)?.get(names[1] as string);
  if (names.length !== 1) return undefined;
  const name = names[0] as string;
  for (const schema of lookupSchemas(searchPath)) {
    const rel = catalog.bySchema.get(schema)?.get(name);
    if (rel) return rel;
  }
  return undefined;
}

/** Partition and inheritance ancestors, nearest first (breadth-first over pg_inherits), each once. */
export function ancestors(catalog: Catalog, relation: CatalogRelation): CatalogRelation[] {
  const out: CatalogRelation[] = [];
  const seen = new Set<number>([relation.oid]);
  let frontier: readonly number[] = relation.parents;
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const oid of frontier) {
      if (seen.has(oid)) continue;
      seen.add(oid);
      const parent = catalog.relations.get(oid);
      if (!parent) continue;
      out.push(parent);
      next.push(...parent.parents);
    }
    frontier = next;
  }
  return out;
}

/** Every partition / inheritance descendant, each once. */
export function descendants(catalog: Catalog, relation: CatalogRelation): CatalogRelation[] {
  const out: CatalogRelation[] = [];
  const seen = new Set<number>([relation.oid]);
  const queue = [...(catalog.children.get(relation.oid) ?? [])];
  while (queue.length > 0) {
    const oid = queue.shift() as number;
    if (seen.has(oid)) continue;
    seen.add(oid);
    const child = catalog.relations.get(oid);
    if (!child) continue;
    out.push(child);
    queue.push(...(catalog.children.get(oid) ?? []));
  }
  return out;
}

export type FunctionResolution =
  /** Only pg_catalog can supply it. */
  | { readonly kind: 'builtin'; readonly name: string; readonly kinds: readonly FunctionKind[] }
  /** Another schema supplies (or may supply, by argument types) the function. */
  | { readonly kind: 'user'; readonly schema: string; readonly name: string }
  | { readonly kind: 'unknown'; readonly name: string };

/**
 * Which schema a function name can come from. PostgreSQL picks among every
 * schema on the path by argument types, so when a name exists both in
 * pg_catalog and elsewhere on the path, a user-defined function may win:
 * that counts as `user` (fail closed).
 */
export function resolveFunction(catalog: Catalog, names: readonly string[], searchPath: readonly string[]): FunctionResolution {
  const name = names[names.length - 1] ?? '';
  if (names.length === 3 && names[0] !== catalog.database) return { kind: 'unknown', name };
  if (names.length < 1 || names.length > 3) return { kind: 'unknown', name };
  const defs = catalog.functions.get(name) ?? [];
  if (names.length > 1) {
    const schema = names[names.length - 2] as string;
    const inSchema = defs.filter((f) => f.schema === schema);
    if (inSchema.length === 0) return { kind: 'unknown', name };
    return schema === 'pg_catalog' ? { kind: 'builtin', name, kinds: inSchema.map((f) => f.kind) } : { kind: 'user', schema, name };
  }
  const schemas = lookupSchemas(searchPath);
  const visible = defs.filter((f) => schemas.includes(f.schema));
  const other = visible.find((f) => f.schema !== 'pg_catalog');
  if (other) return { kind: 'user', schema: other.schema, name };
  if (visible.length === 0) return { kind: 'unknown', name };
  return { kind: 'builtin', name, kinds: visible.map((f) => f.kind) };
}

/**
 * Whether a type name (as written in a cast) may name a domain with CHECK
 * constraints: qualified, in that schema; unqualified, in any schema of the
 * path. Names qualified with pg_catalog never do.
 */
export function mayBeCheckedDomain(catalog: Catalog, names: readonly string[], searchPath: readonly string[]): boolean {
  const name = names[names.length - 1] ?? '';
  if (names.length >= 2) return catalog.checkedDomains.has(`${names[names.length - 2]}\0${name}`);
  return lookupSchemas(searchPath).some((schema) => catalog.checkedDomains.has(`${schema}\0${name}`));
}

export type OperatorResolution = 'builtin' | 'user' | 'unknown';

/** Like resolveFunction, for operator names (`=`, `OPERATOR(s.~~)`). */
export function resolveOperator(catalog: Catalog, names: readonly string[], searchPath: readonly string[]): OperatorResolution {
  const name = names[names.length - 1] ?? '';
  const schemas = catalog.operators.get(name);
  if (!schemas || names.length < 1 || names.length > 2) return 'unknown';
  if (names.length === 2) {
    const schema = names[0] as string;
    if (!schemas.has(schema)) return 'unknown';
    return schema === 'pg_catalog' ? 'builtin' : 'user';
  }
  const path = lookupSchemas(searchPath);
  if (path.some((s) => s !== 'pg_catalog' && schemas.has(s))) return 'user';
  return schemas.has('pg_catalog') ? 'builtin' : 'unknown';
}
