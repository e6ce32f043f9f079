/**
 * Loads and validates policy files: YAML (several documents per file) →
 * schema check per document → checks across documents → one immutable
 * PolicyBundle with a content version, or every error found, each with the
 * file, line and column of the offending YAML node.
 *
 * A caller that gets errors keeps its last good bundle (hot reload); nothing
 * here has side effects beyond reading the directory.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, Scalar } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { classPatternMatches, splitQualifiedName } from './names.js';
import { compileRowFilter, loadSqlParser, type CompiledRowFilter } from './row-filter.js';
import {
  API_VERSION,
  DOCUMENT_SCHEMAS,
  KINDS,
  MASK_TYPES,
  type DataClassification,
  type Kind,
  type KeyRing,
  type PolicySet,
} from './schema.js';

export interface PolicyError {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  readonly message: string;
  /** Where in the document, e.g. `spec.rules[0].subjects[1]`, when known. */
  readonly path?: string;
}

export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** A validated document with where it came from, for explain output and audit. */
export type Sourced<T> = T & { readonly source: SourceLocation };

export interface PolicyFile {
  /** File name as given (the path, for directory loads). */
  readonly name: string;
  /** SHA-256 hex of the raw file contents. */
  readonly sha256: string;
  readonly documents: number;
}

export interface PolicyBundle {
  readonly classifications: readonly Sourced<DataClassification>[];
  readonly policySets: readonly Sourced<PolicySet>[];
  readonly keyRings: readonly Sourced<KeyRing>[];
  readonly files: readonly PolicyFile[];
  /** Compiled row filters, keyed by rowFilterKey(policySet, rule). */
  readonly rowFilters: ReadonlyMap<string, CompiledRowFilter>;
}

export type PolicyLoadResult =
  | { readonly ok: true; readonly policies: PolicyBundle; readonly version: string }
  | { readonly ok: false; readonly errors: readonly PolicyError[] };

export interface PolicySource {
  /** Name used in errors and in `files`. */
  readonly file: string;
  readonly text: string;
}

export function rowFilterKey(policySet: string, rule: string): string {
  return `${policySet}/${rule}`;
}

type Path = readonly (string | number)[];

/** One YAML document after parsing, with what is needed to point at its nodes. */
interface ParsedDoc {
  readonly file: string;
  readonly text: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  readonly kind: Kind;
  readonly value: DataClassification | PolicySet | KeyRing;
}

class Collector {
  readonly errors: PolicyError[] = [];

  at(d: Pick<ParsedDoc, 'doc' | 'lines' | 'file'>, path: Path, message: string, options: { key?: boolean; offset?: number } = {}): void {
    const { line, column } = locate(d, path, options);
    this.errors.push({ file: d.file, line, column, message, ...(path.length > 0 ? { path: formatPath(path) } : {}) });
  }

  raw(file: string, line: number, column: number, message: string): void {
    this.errors.push({ file, line, column, message });
  }
}

export function formatPath(path: Path): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function position(lines: LineCounter, offset: number): { line: number; column: number } {
  const { line, col } = lines.linePos(offset);
  return { line: Math.max(1, line), column: Math.max(1, col) };
}

/**
 * The line and column of the node at `path`, or of its deepest existing
 * ancestor (a missing key is reported at the object that lacks it). With
 * `key`, points at the map key instead of its value.
 */
function locate(d: Pick<ParsedDoc, 'doc' | 'lines'>, path: Path, options: { key?: boolean; offset?: number }): { line: number; column: number } {
  let node: unknown = d.doc.contents;
  let best: unknown = node;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair && options.key && i === path.length - 1) {
        next = pair.key;
      } else {
        next = pair?.value ?? undefined;
      }
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    }
    if (next === undefined || next === null) break;
    node = next;
    best = next;
  }
  const range = (best as YamlNode | null | undefined)?.range;
  if (!range) return { line: 1, column: 1 };
  return position(d.lines, range[0] + (options.offset ?? 0));
}

/** Offset within the source of a scalar at which character `offset` of its value sits, when it maps 1:1. */
function scalarOffset(d: ParsedDoc, path: Path, offset: number): number | undefined {
  const node = d.doc.getIn(path, true);
  if (!isScalar(node) || typeof node.value !== 'string' || !node.range) return undefined;
  const src = d.text.slice(node.range[0], node.range[1]);
  if (node.type === Scalar.PLAIN && src === node.value) return offset;
  if ((node.type === Scalar.QUOTE_SINGLE || node.type === Scalar.QUOTE_DOUBLE) && src.slice(1, -1) === node.value) return offset + 1;
  return undefined;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): { found: boolean; value?: unknown } {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return { found: false };
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return { found: true, value: current };
}

function zodMessage(issue: z.core.$ZodIssue, document: unknown): string {
  const last = issue.path[issue.path.length - 1];
  if (typeof last === 'string' && issue.code !== 'unrecognized_keys' && !valueAt(document, issue.path).found) {
    return `missing required field "${last}"`;
  }
  if (issue.code === 'invalid_union' && issue.errors.length === 0) {
    return `unknown mask type: expected one of ${MASK_TYPES.join(', ')}`;
  }
  if (issue.code === 'invalid_key') {
    return `invalid name ${JSON.stringify(last)}: ${issue.issues.map((i) => i.message).join('; ')}`;
  }
  return issue.message;
}

/** Parses one file's YAML documents and checks each against its kind's schema. */
function parseFile(source: PolicySource, out: Collector, docs: ParsedDoc[], failed: Set<string>): number {
  const text = source.text.startsWith('\uFEFF') ? source.text.slice(1) : source.text;
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, schema: 'core', strict: true });
  let count = 0;
  for (const doc of parsed) {
    const problems = [...doc.errors, ...doc.warnings];
    for (const e of problems) {
      const { line, column } = position(lines, e.pos[0]);
      out.raw(source.file, line, column, `YAML: ${e.message}`);
    }
    if (problems.length > 0) {
      failed.add('unknown');
      continue;
    }
    // `---` followed by nothing (or only comments) is an empty document, not an error.
    if (doc.contents === null) continue;
    const d = { file: source.file, doc, lines };
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      out.at(d, [], `YAML: ${err instanceof Error ? err.message : String(err)}`);
      failed.add('unknown');
      continue;
    }
    if (value === null || value === undefined) continue;
    count++;
    if (typeof value !== 'object' || Array.isArray(value)) {
      out.at(d, [], 'a policy document is a mapping with apiVersion, kind, metadata and spec');
      continue;
    }
    const record = value as Record<string, unknown>;
    if (record['apiVersion'] !== API_VERSION) {
      out.at(d, ['apiVersion'], `apiVersion must be ${API_VERSION}`);
      continue;
    }
    const kind = record['kind'];
    if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
      out.at(d, ['kind'], `kind must be one of ${KINDS.join(', ')}`);
      continue;
    }
    const result = DOCUMENT_SCHEMAS[kind as Kind].safeParse(value, { reportInput: true });
    if (!result.success) {
      failed.add(kind);
      for (const issue of result.error.issues) {
        const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
        if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) {
          for (const key of issue.keys) out.at(d, [...path, key], `unknown field "${key}"`, { key: true });
        } else {
          out.at(d, path, zodMessage(issue, value), { key: issue.code === 'invalid_key' });
        }
      }
      continue;
    }
    docs.push({ file: source.file, text, doc, lines, kind: kind as Kind, value: result.data });
  }
  return count;
}

function checkPolicySet(d: ParsedDoc, set: PolicySet, classNames: ReadonlySet<string> | undefined, out: Collector, rowFilters: Map<string, CompiledRowFilter>): void {
  const defined = new Set(Object.keys(set.spec.subjects));
  const checkRefs = (base: Path, field: 'subjects' | 'except', refs: readonly string[] | undefined): void => {
    refs?.forEach((ref, i) => {
      if (ref === '*') {
        if (field === 'except') out.at(d, [...base, field, i], 'except: ["*"] would exclude everyone');
        return;
      }
      if (!defined.has(ref)) {
        const known = [...defined].join(', ') || 'none defined';
        out.at(d, [...base, field, i], `unknown subject "${ref}" (subjects of PolicySet ${set.metadata.name}: ${known}; or "*")`);
      }
    });
  };
  const checkClasses = (base: Path, classes: readonly string[] | undefined): void => {
    if (classNames === undefined) return;
    classes?.forEach((pattern, i) => {
      if (![...classNames].some((c) => classPatternMatches(pattern, c))) {
        out.at(d, [...base, 'resources', 'classes', i], `class "${pattern}" is not defined by any DataClassification`);
      }
    });
  };

  const ruleNames = new Map<string, number>();
  set.spec.rules.forEach((rule, i) => {
    const base = ['spec', 'rules', i] as const;
    const first = ruleNames.get(rule.name);
    if (first !== undefined) out.at(d, [...base, 'name'], `duplicate rule name "${rule.name}" (also spec.rules[${first}])`);
    else ruleNames.set(rule.name, i);
    checkRefs(base, 'subjects', rule.subjects);
    checkRefs(base, 'except', rule.except);
    checkClasses(base, rule.resources.classes);
    if (rule.rowFilter === undefined) return;
    if (rule.effect === 'deny') {
      out.at(d, [...base, 'rowFilter'], 'rowFilter only applies to allow rules');
      return;
    }
    if (rule.resources.tables === undefined) {
      out.at(d, [...base, 'rowFilter'], 'rowFilter needs resources.tables: it filters the rows of those tables');
      return;
    }
    const compiled = compileRowFilter(rule.rowFilter);
    if (compiled.ok) {
      rowFilters.set(rowFilterKey(set.metadata.name, rule.name), compiled.filter);
    } else {
      const path = [...base, 'rowFilter'];
      const offset = scalarOffset(d, path, compiled.offset);
      out.at(d, path, `invalid rowFilter: ${compiled.message}`, offset === undefined ? {} : { offset });
    }
  });

  const maskNames = new Map<string, number>();
  set.spec.masks.forEach((mask, i) => {
    const base = ['spec', 'masks', i] as const;
    const first = maskNames.get(mask.name);
    if (first !== undefined) out.at(d, [...base, 'name'], `duplicate mask name "${mask.name}" (also spec.masks[${first}])`);
    else maskNames.set(mask.name, i);
    checkRefs(base, 'subjects', mask.subjects);
    checkRefs(base, 'except', mask.except);
    checkClasses(base, mask.resources.classes);
  });
}

function checkKeyRing(d: ParsedDoc, ring: KeyRing, encrypted: Map<string, string>, out: Collector): void {
  const keks = new Map<string, number>();
  ring.spec.keyEncryptionKeys.forEach((kek, i) => {
    const first = keks.get(kek.id);
    if (first !== undefined) out.at(d, ['spec', 'keyEncryptionKeys', i, 'id'], `duplicate key id "${kek.id}" (also keyEncryptionKeys[${first}])`);
    else keks.set(kek.id, i);
  });
  ring.spec.encryptedColumns.forEach((col, i) => {
    const base = ['spec', 'encryptedColumns', i] as const;
    if (!keks.has(col.kek)) out.at(d, [...base, 'kek'], `unknown key "${col.kek}" (keyEncryptionKeys: ${[...keks.keys()].join(', ')})`);
    const parts = splitQualifiedName(col.column);
    const key = parts?.join('\0') ?? col.column;
    const owner = encrypted.get(key);
    if (owner !== undefined) out.at(d, [...base, 'column'], `column ${col.column} is already encrypted by ${owner}`);
    else encrypted.set(key, `KeyRing ${ring.metadata.name}`);
  });
}

/** Validates a set of policy sources (already read) into a bundle. Sources are used in the order given. */
export async function loadPolicySources(sources: readonly PolicySource[]): Promise<PolicyLoadResult> {
  await loadSqlParser();
  const out = new Collector();
  const docs: ParsedDoc[] = [];
  const files: PolicyFile[] = [];
  const failed = new Set<string>();
  for (const source of sources) {
    const count = parseFile(source, out, docs, failed);
    files.push({ name: source.file, sha256: sha256(source.text), documents: count });
  }

  // Names are unique per kind: decisions and audit events refer to them.
  const seen = new Map<string, ParsedDoc>();
  for (const d of docs) {
    const key = `${d.kind}\0${d.value.metadata.name}`;
    const first = seen.get(key);
    if (first) {
      const at = locate(first, ['metadata', 'name'], {});
      out.at(d, ['metadata', 'name'], `duplicate ${d.kind} name "${d.value.metadata.name}" (first defined at ${first.file}:${at.line})`);
    } else {
      seen.set(key, d);
    }
  }

  // When a classification (or unreadable) document failed, class references cannot be judged fairly.
  const classNames = failed.has('DataClassification') || failed.has('unknown')
    ? undefined
    : new Set(docs.flatMap((d) => (d.kind === 'DataClassification' ? (d.value as DataClassification).spec.columns.flatMap((c) => c.classes) : [])));

  const rowFilters = new Map<string, CompiledRowFilter>();
  const encrypted = new Map<string, string>();
  for (const d of docs) {
    if (d.kind === 'PolicySet') checkPolicySet(d, d.value as PolicySet, classNames, out, rowFilters);
    else if (d.kind === 'KeyRing') checkKeyRing(d, d.value as KeyRing, encrypted, out);
  }

  if (out.errors.length > 0) {
    const errors = [...out.errors].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
    return { ok: false, errors };
  }

  const sourced = <T>(d: ParsedDoc): Sourced<T> => {
    const at = locate(d, [], {});
    return { ...(d.value as T), source: { file: d.file, line: at.line, column: at.column } };
  };
  const policies: PolicyBundle = {
    classifications: docs.filter((d) => d.kind === 'DataClassification').map((d) => sourced<DataClassification>(d)),
    policySets: docs.filter((d) => d.kind === 'PolicySet').map((d) => sourced<PolicySet>(d)),
    keyRings: docs.filter((d) => d.kind === 'KeyRing').map((d) => sourced<KeyRing>(d)),
    files,
    rowFilters,
  };
  // The version covers what the policies mean, not how the YAML is laid out:
  // comments and formatting do not invalidate plan caches.
  const normalized = sources.map((s) => canonicalJson({ file: s.file, documents: docs.filter((d) => d.file === s.file).map((d) => d.value) }));
  const version = sha256(normalized.join('\n'));
  deepFreeze(policies.classifications);
  deepFreeze(policies.policySets);
  deepFreeze(policies.keyRings);
  deepFreeze(policies.files);
  return { ok: true, policies: Object.freeze(policies), version };
}

/** Validates the text of one policy file on its own (e.g. `pgward policy lint file.yaml`). */
export async function parsePolicyText(text: string, fileName: string): Promise<PolicyLoadResult> {
  return loadPolicySources([{ file: fileName, text }]);
}

/**
 * Reads every `*.yaml` / `*.yml` file directly in `dir` (sorted by name,
 * dotfiles skipped, symlinks followed so Kubernetes ConfigMap mounts work)
 * and validates them together.
 */
export async function loadPolicyDirectory(dir: string): Promise<PolicyLoadResult> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.') && /\.ya?ml$/i.test(n));
  } catch (err) {
    return { ok: false, errors: [{ file: dir, line: 1, column: 1, message: `cannot read policy directory: ${errorText(err)}` }] };
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const sources: PolicySource[] = [];
  for (const name of names) {
    const path = join(dir, name);
    try {
      if (!(await stat(path)).isFile()) continue;
      sources.push({ file: path, text: await readFile(path, 'utf8') });
    } catch (err) {
      return { ok: false, errors: [{ file: path, line: 1, column: 1, message: `cannot read policy file: ${errorText(err)}` }] };
    }
  }
  if (sources.length === 0) {
    return { ok: false, errors: [{ file: dir, line: 1, column: 1, message: 'no policy files (*.yaml, *.yml) in directory' }] };
  }
  return loadPolicySources(sources);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
