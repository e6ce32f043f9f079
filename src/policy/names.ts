/**
 * Names in policies: `schema.table[.column]` with per-part `*` globs, and
 * dotted data-class names (`pii.ssn`, `pii.*`). Matching is exact and
 * case-sensitive, like quoted PostgreSQL identifiers: policies name objects as
 * the catalog stores them (usually lower case).
 */

/**
 * Splits `schema.table[.column]` into parts. A part may be double-quoted
 * (`"odd.name"`, `""` for a quote) so identifiers containing dots stay
 * addressable. Returns undefined when the text is malformed.
 */
export function splitQualifiedName(text: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  for (;;) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) return undefined;
        const ch = text[i] as string;
        if (ch === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += ch;
        i++;
      }
      if (part === '') return undefined;
    } else {
      const end = text.indexOf('.', i);
      part = end === -1 ? text.slice(i) : text.slice(i, end);
      if (part === '' || part.includes('"') || /\s/.test(part)) return undefined;
      i += part.length;
    }
    parts.push(part);
    if (i === text.length) return parts;
    if (text[i] !== '.') return undefined;
    i++;
  }
}

/** Whether a glob (`*` = any run of characters, possibly empty) matches a whole name part. */
export function globPartMatches(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const pieces = pattern.split('*');
  const first = pieces[0] as string;
  const last = pieces[pieces.length - 1] as string;
  if (value.length < first.length + last.length || !value.startsWith(first) || !value.endsWith(last)) return false;
  // Greedy left-to-right placement of the middle pieces is optimal for `*` globs.
  let at = first.length;
  const end = value.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i] as string;
    const found = value.indexOf(piece, at);
    if (found === -1 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}

/** Whether qualified-name parts match a pattern's parts, part by part. */
export function partsMatch(pattern: readonly string[], name: readonly string[]): boolean {
  return pattern.length === name.length && pattern.every((p, i) => globPartMatches(p, name[i] as string));
}

/** Whether a dotted class pattern (`pii.*`) matches a class name; `*` stays within one part. */
export function classPatternMatches(pattern: string, className: string): boolean {
  return partsMatch(pattern.split('.'), className.split('.'));
}
