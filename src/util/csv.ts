import { existsSync, readFileSync, statSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { RetformerError, inputError } from './errors.ts';

/** One CSV data record with the line it starts on, for error messages. */
export interface CsvRow {
  /**
   * The 1-based line number an editor shows for the start of this record: the header is line 1, a
   * blank line counts, and a quoted newline inside an earlier field moves every later record down.
   * (Named `row` for history; error messages print it as `FILE:LINE`.)
   */
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
 * ragged row) are one line naming the file and the line an editor shows (`FILE:LINE: ...`).
 */
export function readCsv(file: string, required: readonly string[] = []): CsvTable {
  if (!existsSync(file)) throw new RetformerError(`${file}: file not found`);
  if (statSync(file).isDirectory()) throw new RetformerError(`${file}: is a directory, expected a CSV file`);
  const text = readFileSync(file, 'utf8');
  if (text.trim() === '') throw inputError(file, undefined, 'empty CSV (expected a header row and data rows)');
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { bom: true, skip_empty_lines: true, relax_column_count: false, info: true }) as unknown as typeof records;
  } catch (err) {
    const e = err as { lines?: number; message: string };
    throw inputError(file, e.lines, `malformed CSV: ${e.message.split('\n')[0]}`);
  }
  const lines = startLines(records);
  const [header, ...data] = records;
  const columns = header.record.map((c) => c.trim());
  for (const col of required) {
    if (!columns.includes(col)) throw inputError(file, lines[0], `missing column "${col}" (header has: ${columns.join(', ')})`);
  }
  if (data.length === 0) throw inputError(file, undefined, 'no data rows (only a header)');
  const rows = data.map((rec, i) => ({
    row: lines[i + 1],
    values: Object.fromEntries(columns.map((c, j) => [c, rec.record[j] ?? ''])),
  }));
  return { file, columns, rows };
}

/**
 * The line each record starts on, as an editor counts. csv-parse reports the line a record ends on
 * (`info.lines`), counting a CR LF inside a quoted field as two lines (one between records as one):
 * subtract those extra counts so far, then the record's own line breaks.
 */
function startLines(records: readonly { record: string[]; info: { lines: number } }[]): number[] {
  let extra = 0;
  return records.map(({ record, info }) => {
    let breaks = 0;
    for (const field of record) {
      extra += field.match(/\r\n/g)?.length ?? 0;
      breaks += field.match(/\r\n|\r|\n/g)?.length ?? 0;
    }
    return info.lines - extra - breaks;
  });
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
