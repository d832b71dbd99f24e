import { asyncBufferFromFile, type FileMetaData, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { RetformerError } from '../../util/errors.ts';

/**
 * Parquet metadata files read through hyparquet (pure JS), one row group at a time so that memory
 * stays bounded by the largest row group, not the file. Values are turned into JSON values on the
 * way in (what a KB's pair metadata can store): INT64 -> number (a string beyond 2^53), dates ->
 * ISO strings, bytes -> base64 strings; strings, doubles, booleans, nulls, lists and structs as they are.
 */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface ParquetTable {
  path: string;
  metadata: FileMetaData;
  rows: number;
  columns: string[];
  /** Row count of each row group, in file order. */
  groups: number[];
}

export async function openParquet(path: string): Promise<ParquetTable> {
  try {
    const file = await asyncBufferFromFile(path);
    const metadata = await parquetMetadataAsync(file);
    const columns = parquetSchema(metadata).children.map((c) => c.element.name);
    return { path, metadata, rows: Number(metadata.num_rows), columns, groups: metadata.row_groups.map((g) => Number(g.num_rows)) };
  } catch (err) {
    if (err instanceof RetformerError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new RetformerError(`${path}: ${code === 'ENOENT' ? 'file not found' : `unreadable Parquet file (${(err as Error).message})`}`);
  }
}

/** Rows [start, end) as objects of JSON values. */
export async function readParquetRows(table: ParquetTable, start: number, end: number): Promise<Record<string, JsonValue>[]> {
  let rows: Record<string, unknown>[];
  try {
    const file = await asyncBufferFromFile(table.path);
    rows = await parquetReadObjects({ file, metadata: table.metadata, rowStart: start, rowEnd: end });
  } catch (err) {
    throw new RetformerError(`${table.path}: cannot read rows ${start + 1}..${end} (${(err as Error).message})`);
  }
  return rows.map((r) => {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(r)) out[k] = toJsonValue(v);
    return out;
  });
}

export function toJsonValue(v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<unknown>, toJsonValue);
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, toJsonValue(x)]));
  return String(v);
}
