/** Where a command writes: results to stdout, progress and errors to stderr. */
export interface Streams {
  stdout: OutputStream;
  stderr: OutputStream;
}

export type OutputStream = NodeJS.WritableStream & { isTTY?: boolean };

/** A fraction in 0..1 as a percentage; `-` for none. */
export function formatPercent(fraction: number | null, digits = 1): string {
  return fraction === null ? '-' : `${(fraction * 100).toFixed(digits)}%`;
}

/** Rows as aligned columns, the first row a header; columns named in `right` align right. */
export function table(rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  const line = (row: readonly string[]) =>
    row
      .map((cell, column) => (right.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  return rows.map(line).join('\n') + '\n';
}

export function unreachable(value: never): never {
  throw new Error(`Unexpected value: ${String(value)}`);
}
