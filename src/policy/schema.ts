/**
 * Policy document schemas (apiVersion `pgward.dev/v1`), see docs in
 * /work/shared/POLICY-FORMAT.md. Every object is strict: an unknown key is an
 * error, because a misspelt `excpet:` silently widening a rule is worse than a
 * failed reload.
 *
 * These schemas check the shape of one document. Checks that need several
 * documents (subject names, class names, duplicate names, row-filter SQL) live
 * in load.ts.
 */
import { z } from 'zod';
import { splitQualifiedName } from './names.js';

export const API_VERSION = 'pgward.dev/v1';

export const KINDS = ['DataClassification', 'PolicySet', 'KeyRing'] as const;
export type Kind = (typeof KINDS)[number];

export const ACTIONS = [
  'select',
  'insert',
  'update',
  'delete',
  'truncate',
  'copy_to',
  'copy_from',
  'ddl',
  'function',
  'misc',
  'decrypt',
  'all',
] as const;
export type Action = (typeof ACTIONS)[number];

export const MASK_TYPES = [
  'full',
  'partial',
  'emailDomain',
  'hash',
  'null',
  'constant',
  'dateYear',
  'regex',
  'none',
] as const;
export type MaskType = (typeof MASK_TYPES)[number];

/** PostgreSQL's regex engine caps `{n}` bounds at 255 (RE_DUP_MAX); partial masks use them. */
export const MAX_PARTIAL_SHOWN = 255;

// Kubernetes-style object names: lower-case DNS labels joined by dots.
const objectName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
    message: 'must be lower-case letters, digits, "-" or "." (Kubernetes object name)',
  });

// Names of subjects, rules and masks appear in audit events and error messages.
const localName = z
  .string()
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, {
    message: 'must start with a letter or digit and contain only letters, digits, "_", "-" or "."',
  });

/** `pii.ssn`: dotted segments; in references a segment may be or contain `*`. */
const classNamePattern = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const classRefPattern = /^[A-Za-z0-9_*-]+(\.[A-Za-z0-9_*-]+)*$/;

const className = z
  .string()
  .regex(classNamePattern, { message: 'class names are dotted words such as pii.ssn' });
const classRef = z
  .string()
  .regex(classRefPattern, { message: 'class references are dotted words such as pii.ssn or pii.*' });

function qualifiedName(parts: number, what: string) {
  return z.string().refine((s) => splitQualifiedName(s)?.length === parts, {
    message: `must be ${what} ('*' globs any part; quote parts containing dots)`,
  });
}

export const tablePattern = qualifiedName(2, 'schema.table');
export const columnPattern = qualifiedName(3, 'schema.table.column');
const exactColumn = qualifiedName(3, 'schema.table.column').refine((s) => !s.includes('*'), {
  message: 'encrypted columns are named exactly, without globs',
});

export const Metadata = z.strictObject({
  name: objectName,
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Metadata = z.infer<typeof Metadata>;

// ---------------------------------------------------------------------------
// DataClassification

export const ColumnClassification = z.strictObject({
  match: columnPattern,
  classes: z.array(className).min(1),
});
export type ColumnClassification = z.infer<typeof ColumnClassification>;

export const DataClassificationSpec = z.strictObject({
  columns: z.array(ColumnClassification),
});

export const DataClassification = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('DataClassification'),
  metadata: Metadata,
  spec: DataClassificationSpec,
});
export type DataClassification = z.infer<typeof DataClassification>;

// ---------------------------------------------------------------------------
// Selectors

export type ClaimValue = string | number | boolean;

/** Exactly one key per selector object; combine with anyOf / allOf. */
export type Selector =
  | { readonly group: string }
  | { readonly user: string }
  | { readonly claim: { readonly path: string; readonly in: readonly ClaimValue[] } }
  | { readonly anyOf: readonly Selector[] }
  | { readonly allOf: readonly Selector[] };

const SELECTOR_KEYS = ['group', 'user', 'claim', 'anyOf', 'allOf'] as const;

const claimPath = z
  .string()
  .regex(/^[^.\s]+(\.[^.\s]+)*$/, { message: 'claim paths are dot-separated keys, e.g. org.region' });

const ClaimSelector = z.strictObject({
  path: claimPath,
  in: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1),
});

// One strict object with optional keys (instead of a union) so that a typo
// reports "unrecognized key" at the key rather than an opaque union failure.
const SelectorObject = z
  .strictObject({
    group: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    claim: ClaimSelector.optional(),
    get anyOf() {
      return z.array(SelectorObject).min(1).optional();
    },
    get allOf() {
      return z.array(SelectorObject).min(1).optional();
    },
  })
  .superRefine((value, ctx) => {
    const present = SELECTOR_KEYS.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          present.length === 0
            ? 'a selector needs one of group, user, claim, anyOf, allOf'
            : `a selector has exactly one of group, user, claim, anyOf, allOf (found ${present.join(', ')})`,
      });
    }
  });

export const SelectorSchema = SelectorObject as unknown as z.ZodType<Selector>;

// ---------------------------------------------------------------------------
// PolicySet

/** `*` (everyone) or the name of a subject defined in the same PolicySet. */
const subjectRef = z.union([z.literal('*'), localName]);

export const Resources = z
  .strictObject({
    tables: z.array(tablePattern).min(1).optional(),
    columns: z.array(columnPattern).min(1).optional(),
    classes: z.array(classRef).min(1).optional(),
  })
  .refine((r) => r.tables !== undefined || r.columns !== undefined || r.classes !== undefined, {
    message: 'resources need at least one of tables, columns, classes',
  });
export type Resources = z.infer<typeof Resources>;

export const Rule = z.strictObject({
  name: localName,
  effect: z.enum(['allow', 'deny']),
  subjects: z.array(subjectRef).min(1),
  except: z.array(subjectRef).optional(),
  /** Omitted means `[all]`. `all` does not include `decrypt`, which is always granted by name. */
  actions: z.array(z.enum(ACTIONS)).min(1).optional(),
  resources: Resources,
  rowFilter: z.string().min(1).optional(),
  message: z.string().min(1).max(1000).optional(),
});
export type Rule = z.infer<typeof Rule>;

const maskChar = z.string().refine((s) => [...s].length === 1 && s !== '\0', {
  message: 'must be exactly one character',
});

const shown = z.number().int().min(0).max(MAX_PARTIAL_SHOWN);

// PostgreSQL regexp flags (Table 9.24) plus g; see docs for regexp_replace.
const regexFlags = z.string().regex(/^[bcegimnpqstwx]*$/, {
  message: 'regex flags are letters from bcegimnpqstwx',
});

const priority = z.number().int().optional();

const MaskSpecUnion = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('full'), priority }),
  z
    .strictObject({
      type: z.literal('partial'),
      showFirst: shown.optional(),
      showLast: shown.optional(),
      char: maskChar.optional(),
      priority,
    })
    .refine((m) => m.showFirst !== undefined || m.showLast !== undefined, {
      message: 'partial masks need showFirst and/or showLast',
    }),
  z.strictObject({ type: z.literal('emailDomain'), priority }),
  z.strictObject({
    type: z.literal('hash'),
    // Required: an unsalted SHA-256 of a 9-digit SSN is reversed by enumeration in seconds.
    salt: z.string().min(1),
    priority,
  }),
  z.strictObject({ type: z.literal('null'), priority }),
  z.strictObject({
    type: z.literal('constant'),
    value: z.union([z.string(), z.number(), z.boolean()]),
    priority,
  }),
  z.strictObject({ type: z.literal('dateYear'), priority }),
  z.strictObject({
    type: z.literal('regex'),
    pattern: z.string().min(1),
    replace: z.string(),
    flags: regexFlags.optional(),
    priority,
  }),
  z.strictObject({ type: z.literal('none'), priority }),
]);

// `type: null` unquoted is YAML's null; it can only mean the `null` mask.
export const MaskSpec = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && 'type' in v && v.type === null ? { ...v, type: 'null' } : v),
  MaskSpecUnion,
);
export type MaskSpec = z.infer<typeof MaskSpecUnion>;

export const MaskRule = z.strictObject({
  name: localName,
  subjects: z.array(subjectRef).min(1),
  except: z.array(subjectRef).optional(),
  resources: Resources,
  mask: MaskSpec,
});
export type MaskRule = z.infer<typeof MaskRule>;

export const PolicySetSpec = z.strictObject({
  defaultAction: z.enum(['allow', 'deny']),
  enforcement: z.enum(['enforce', 'audit']).default('enforce'),
  subjects: z.record(localName, SelectorSchema).default({}),
  rules: z.array(Rule).default([]),
  masks: z.array(MaskRule).default([]),
});

export const PolicySet = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('PolicySet'),
  metadata: Metadata,
  spec: PolicySetSpec,
});
export type PolicySet = z.infer<typeof PolicySet>;
export type Enforcement = PolicySet['spec']['enforcement'];

// ---------------------------------------------------------------------------
// KeyRing

const KeySource = z
  .strictObject({
    file: z.string().min(1).optional(),
    env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be an environment variable name' })
      .optional(),
    kms: z
      .strictObject({
        provider: z.enum(['local']),
        keyId: z.string().min(1),
      })
      .optional(),
  })
  .refine((s) => [s.file, s.env, s.kms].filter((v) => v !== undefined).length === 1, {
    message: 'a key source is exactly one of file, env, kms',
  });

export const KeyEncryptionKey = z.strictObject({
  id: localName,
  source: KeySource,
});

/** Plaintext types field encryption can round-trip through text encodings. */
export const PLAINTEXT_TYPES = [
  'text',
  'varchar',
  'bytea',
  'int2',
  'int4',
  'int8',
  'numeric',
  'date',
  'timestamp',
  'timestamptz',
  'bool',
  'uuid',
  'jsonb',
] as const;

export const EncryptedColumn = z.strictObject({
  column: exactColumn,
  mode: z.enum(['deterministic', 'randomized']),
  plaintextType: z.enum(PLAINTEXT_TYPES),
  storage: z.enum(['bytea', 'text']),
  kek: localName,
});
export type EncryptedColumn = z.infer<typeof EncryptedColumn>;

export const KeyRingSpec = z.strictObject({
  keyEncryptionKeys: z.array(KeyEncryptionKey).min(1),
  encryptedColumns: z.array(EncryptedColumn).default([]),
  dataKeys: z.string().min(1),
  whenNotGranted: z.enum(['mask', 'null', 'ciphertext', 'deny']).default('mask'),
});

export const KeyRing = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('KeyRing'),
  metadata: Metadata,
  spec: KeyRingSpec,
});
export type KeyRing = z.infer<typeof KeyRing>;

export type PolicyDocument = DataClassification | PolicySet | KeyRing;

/** The schema for a document of the given kind. */
export const DOCUMENT_SCHEMAS = {
  DataClassification,
  PolicySet,
  KeyRing,
} as const satisfies Record<Kind, z.ZodType>;
