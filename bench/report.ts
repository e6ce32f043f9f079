/**
 * Plain-text tables and number formats for the printed report.
 */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Columns padded to their widest cell; the first column left-aligned, the rest right-aligned. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width, column) => (headers[column] ? '-' : ' ').repeat(width));
  return [line(headers), line(rule), ...rows.map(line)].join('\n');
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

export function mib(kib: number): string {
  return `${fixed(kib / 1024, 1)} MiB`;
}

export function bytes(count: number): string {
  return count >= 1e9 ? `${fixed(count / 1e9, 1)} GB` : `${fixed(count / 1e6, 0)} MB`;
}

export function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'FAIL';
}

export function heading(text: string): string {
  return `\n== ${text} ==\n`;
}
