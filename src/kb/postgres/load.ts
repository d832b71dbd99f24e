import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { copyStageSql, insertStageSql } from './sql.ts';

/** One staged pair: its row key, metadata and unit vectors. */
export interface StagedRow {
  row: number;
  id: string;
  text: string;
  label: string | undefined;
  source: string;
  image: Float32Array; // [dim]
  textVector: Float32Array; // [dim]
}

/**
 * How rows reach the stage table. Real servers take COPY ... FROM STDIN in the binary format
 * (exact float32, no text parsing). PGlite's socket server drops the connection on COPY FROM STDIN
 * ("protocol synchronization was lost", measured with pglite-socket 0.2.17), so there the same rows
 * go as one INSERT over arrays (vectors as text with 9 significant digits: exact for float32).
 */
export type LoadMethod = 'copy' | 'insert';

/** PGlite reports itself in version(); every other server gets COPY. */
export function loadMethodFor(serverVersion: string): LoadMethod {
  return /PGlite/i.test(serverVersion) ? 'insert' : 'copy';
}

export async function loadStage(client: pg.PoolClient | pg.Client, stage: string, rows: readonly StagedRow[], method: LoadMethod): Promise<void> {
  if (rows.length === 0) return;
  if (method === 'copy') {
    const stream = client.query(copyFrom(copyStageSql(stage)));
    await pipeline(Readable.from(binaryCopyChunks(rows)), stream);
    return;
  }
  // about 1 MB per statement: PGlite's socket server re-buffers a message on every TCP chunk (quadratic in its size)
  const perStatement = Math.max(1, Math.floor(2 ** 20 / (rows[0].image.length * 2 * 12)));
  for (let s = 0; s < rows.length; s += perStatement) {
    const part = rows.slice(s, s + perStatement);
    await client.query(insertStageSql(stage), [
      part.map((r) => String(r.row)),
      part.map((r) => r.id),
      part.map((r) => r.text),
      part.map((r) => r.label ?? null),
      part.map((r) => r.source),
      part.map((r) => vectorLiteral(r.image)),
      part.map((r) => vectorLiteral(r.textVector)),
    ]);
  }
}

/** pgvector's text form: [x1,x2,...]; 9 significant digits read back to the same float32. */
export function vectorLiteral(v: Float32Array): string {
  const parts = new Array<string>(v.length);
  for (let i = 0; i < v.length; i++) parts[i] = v[i] === 0 ? '0' : v[i].toPrecision(9);
  return `[${parts.join(',')}]`;
}

/** Parse pgvector's text form (vector or halfvec) into out at offset. */
export function parseVectorLiteral(text: string, out: Float32Array, offset: number, dim: number, where: string): void {
  const parts = text.slice(1, -1).split(',');
  if (parts.length !== dim) throw new Error(`${where}: vector has ${parts.length} values, expected ${dim}`);
  for (let i = 0; i < dim; i++) out[offset + i] = Number(parts[i]);
}

const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const ROWS_PER_CHUNK = 256;

/**
 * PostgreSQL binary COPY: header (signature, flags, extension length), per row a field count and
 * (length, bytes) per field, then -1. bigint is 8 bytes big-endian; text is UTF-8; pgvector's
 * `vector` is int16 dim, int16 unused, then dim float4, all big-endian. NULL is length -1.
 */
function* binaryCopyChunks(rows: readonly StagedRow[]): Generator<Buffer> {
  yield Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
  for (let start = 0; start < rows.length; start += ROWS_PER_CHUNK) {
    const parts: Buffer[] = [];
    for (const r of rows.slice(start, start + ROWS_PER_CHUNK)) {
      const head = Buffer.alloc(2 + 4 + 8);
      head.writeInt16BE(7, 0);
      head.writeInt32BE(8, 2);
      head.writeBigInt64BE(BigInt(r.row), 6);
      parts.push(head, textField(r.id), textField(r.text), r.label === undefined ? nullField() : textField(r.label), textField(r.source), vectorField(r.image), vectorField(r.textVector));
    }
    yield Buffer.concat(parts);
  }
  const trailer = Buffer.alloc(2);
  trailer.writeInt16BE(-1, 0);
  yield trailer;
}

function textField(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeInt32BE(bytes.length, 0);
  return Buffer.concat([len, bytes]);
}

function nullField(): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32BE(-1, 0);
  return len;
}

function vectorField(v: Float32Array): Buffer {
  const out = Buffer.alloc(4 + 4 + 4 * v.length);
  out.writeInt32BE(4 + 4 * v.length, 0);
  out.writeInt16BE(v.length, 4);
  out.writeInt16BE(0, 6);
  for (let i = 0; i < v.length; i++) out.writeFloatBE(v[i], 8 + 4 * i);
  return out;
}
