// Plain-text tables for the command-line tools' reports (analyze, stress).

/** Rows under headers; columns whose header starts with '>' are right-aligned (numbers). */
export function table(headers: string[], rows: string[][], indent = '  '): string[] {
  const right = headers.map((h) => h.startsWith('>'));
  const heads = headers.map((h) => (h.startsWith('>') ? h.slice(1) : h));
  const widths = heads.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string =>
    indent + cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(heads), ...rows.map(fmt)];
}
