import { existsSync, readFileSync, statSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { RetformerError, inputError } from './errors.ts';

/** One CSV data row with its 1-based row number (header is row 0) for error messages. */
export interface CsvRow {
  row: number;
  values: Record<string, string>;
}

export interface CsvTable {
  file: string;
  columns: string[];
  rows: CsvRow[];
}

/**
 * Read a CSV with a header row. Errors (missing file, empty file, missing required column,
 * ragged row) are one line naming the file and row.
 */
export function readCsv(file: string, required: readonly string[] = []): CsvTable {
  if (!existsSync(file)) throw new RetformerError(`${file}: file not found`);
  if (statSync(file).isDirectory()) throw new RetformerError(`${file}: is a directory, expected a CSV file`);
  const text = readFileSync(file, 'utf8');
  if (text.trim() === '') throw inputError(file, undefined, 'empty CSV (expected a header row and data rows)');
  let records: string[][];
  try {
    records = parse(text, { bom: true, skip_empty_lines: true, relax_column_count: false }) as string[][];
  } catch (err) {
    const e = err as { lines?: number; message: string };
    throw inputError(file, e.lines === undefined ? undefined : e.lines - 1, `malformed CSV: ${e.message}`);
  }
  const [header, ...data] = records;
  const columns = header.map((c) => c.trim());
  for (const col of required) {
    if (!columns.includes(col)) throw inputError(file, undefined, `missing column "${col}" (header has: ${columns.join(', ')})`);
  }
  if (data.length === 0) throw inputError(file, undefined, 'no data rows (only a header)');
  const rows = data.map((rec, i) => ({
    row: i + 1,
    values: Object.fromEntries(columns.map((c, j) => [c, rec[j] ?? ''])),
  }));
  return { file, columns, rows };
}

/** Serialise rows to CSV text with the given column order. */
export function toCsv(columns: readonly string[], rows: readonly Record<string, string | number | undefined>[]): string {
  return stringify(
    rows.map((r) => columns.map((c) => r[c] ?? '')),
    { header: true, columns: [...columns] },
  );
}

/** One CSV record (with its line end), quoted as needed: for writing a table row by row. */
export function csvLine(values: readonly (string | number | undefined)[]): string {
  return stringify([values.map((v) => v ?? '')]);
}
