import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../../util/errors.ts';
import type { EmbeddedPair, PairMeta } from '../types.ts';
import { type NpyDtype, NpyReader, readNpyHeader } from './npy.ts';
import { type JsonValue, openParquet, type ParquetTable, readParquetRows } from './parquet.ts';

/**
 * clip-retrieval's embedding folder layout (what LAION publishes):
 *   DIR/img_emb/img_emb_<N>.npy        [rows, dim] float16 or float32, rows L2-normalised
 *   DIR/text_emb/text_emb_<N>.npy      [rows, dim], row-aligned with the image embeddings
 *   DIR/metadata/metadata_<N>.parquet  one row per pair: image_path, caption, any other columns
 * Parts are taken in numeric order of N (zero padding does not matter); the global row order is
 * part 0's rows, then part 1's, ... A pair's id is its `id` column when the metadata has one, else
 * its global row number ("0", "1", ...), which is clip-retrieval's own index id.
 */
export const CLIP_FOLDERS = { image: 'img_emb', text: 'text_emb', metadata: 'metadata' } as const;

/** |‖row‖ - 1| above this is "not L2-normalised". f16 rounding of a unit vector moves its norm by < 5e-4. */
export const NORM_TOLERANCE = 0.01;

/** Metadata columns with a meaning; every other column is kept in `PairMeta.extra`. */
export const KNOWN_COLUMNS = { id: 'id', source: 'image_path', text: 'caption', label: 'label' } as const;

export interface ClipPart {
  /** N of the file names. */
  n: number;
  image: string;
  text: string;
  metadata: string;
  rows: number;
  /** Global row number of this part's first row. */
  firstRow: number;
}

export interface ClipRetrievalScan {
  dir: string;
  parts: ClipPart[];
  rows: number;
  dim: number;
  /** The embeddings' dtype (every file has the same one). */
  dtype: NpyDtype;
  /** Union of the metadata columns over all parts. */
  columns: string[];
}

export function partFileName(kind: keyof typeof CLIP_FOLDERS, n: number, pad = 0): string {
  const num = String(n).padStart(pad, '0');
  return kind === 'metadata' ? `metadata_${num}.parquet` : `${CLIP_FOLDERS[kind]}_${num}.npy`;
}

/** N -> file name of every part file in one of the three folders; anything else there is ignored. */
function listParts(dir: string, kind: keyof typeof CLIP_FOLDERS): Map<number, string> {
  const folder = join(dir, CLIP_FOLDERS[kind]);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new RetformerError(`${folder}: folder not found (a clip-retrieval folder has img_emb/, text_emb/ and metadata/)`);
  const pattern = kind === 'metadata' ? /^metadata_(\d+)\.parquet$/ : new RegExp(`^${CLIP_FOLDERS[kind]}_(\\d+)\\.npy$`);
  const parts = new Map<number, string>();
  for (const name of readdirSync(folder).sort()) {
    const m = pattern.exec(name);
    if (!m) continue;
    const n = Number(m[1]);
    const seen = parts.get(n);
    if (seen !== undefined) throw new RetformerError(`${join(folder, name)}: part ${n} appears twice (also ${seen})`);
    parts.set(n, name);
  }
  return parts;
}

/**
 * Check the folder's structure before any row is read: the same parts in all three folders, every
 * header readable, one dtype and one dimension everywhere, equal row counts within each part, and
 * a `caption` column. Cheap (headers and Parquet footers only), so a bad part fails in seconds.
 */
export async function scanClipRetrieval(dir: string): Promise<ClipRetrievalScan> {
  if (!existsSync(dir)) throw new RetformerError(`${dir}: folder not found`);
  const image = listParts(dir, 'image');
  const text = listParts(dir, 'text');
  const metadata = listParts(dir, 'metadata');
  const numbers = [...new Set([...image.keys(), ...text.keys(), ...metadata.keys()])].sort((a, b) => a - b);
  if (numbers.length === 0) throw new RetformerError(`${join(dir, CLIP_FOLDERS.image)}: no img_emb_<N>.npy files`);
  const parts: ClipPart[] = [];
  const columns = new Set<string>();
  let dim: number | undefined;
  let dtype: { value: NpyDtype; file: string } | undefined;
  let firstRow = 0;
  for (const n of numbers) {
    const names = { image: image.get(n), text: text.get(n), metadata: metadata.get(n) };
    for (const kind of ['image', 'text', 'metadata'] as const) {
      if (names[kind] === undefined) {
        const have = Object.entries(names).find(([, v]) => v !== undefined) as [keyof typeof CLIP_FOLDERS, string];
        throw new RetformerError(`${join(dir, CLIP_FOLDERS[kind], partFileName(kind, n))}: missing (part ${n} has ${join(CLIP_FOLDERS[have[0]], have[1])})`);
      }
    }
    const paths = { image: join(dir, CLIP_FOLDERS.image, names.image!), text: join(dir, CLIP_FOLDERS.text, names.text!), metadata: join(dir, CLIP_FOLDERS.metadata, names.metadata!) };
    const headers = [readNpyHeader(paths.image), readNpyHeader(paths.text)];
    for (const h of headers) {
      if (dim === undefined) dim = h.cols;
      else if (h.cols !== dim) throw new RetformerError(`${h.path}: dimension ${h.cols}, but ${parts[0]?.image ?? paths.image} has ${dim} (every embedding file must have one dimension)`);
      if (dtype === undefined) dtype = { value: h.dtype, file: h.path };
      else if (h.dtype !== dtype.value) throw new RetformerError(`${h.path}: dtype <${h.dtype}, but ${dtype.file} is <${dtype.value} (mixed dtypes: export all parts with one dtype)`);
    }
    const table = await openParquet(paths.metadata);
    if (headers[1].rows !== headers[0].rows) throw new RetformerError(`${paths.text}: ${headers[1].rows} rows, but ${paths.image} has ${headers[0].rows} (row counts must match across the three files of part ${n})`);
    if (table.rows !== headers[0].rows) throw new RetformerError(`${paths.metadata}: ${table.rows} rows, but ${paths.image} has ${headers[0].rows} (row counts must match across the three files of part ${n})`);
    if (!table.columns.includes(KNOWN_COLUMNS.text)) throw new RetformerError(`${paths.metadata}: no "${KNOWN_COLUMNS.text}" column (columns: ${table.columns.join(', ')})`);
    for (const c of table.columns) columns.add(c);
    parts.push({ n, ...paths, rows: headers[0].rows, firstRow });
    firstRow += headers[0].rows;
  }
  return { dir, parts, rows: firstRow, dim: dim!, dtype: dtype!.value, columns: [...columns] };
}

export interface ReadPairsOptions {
  /** Pairs per yielded batch (bounds memory with the metadata row group size). */
  batchSize?: number;
  /** Accept rows of any non-zero norm (they are normalised) instead of refusing them. */
  normalise?: boolean;
  /** Called after each batch with the rows done so far. */
  onRows?: (done: number) => void;
}

export interface PairBatch {
  pairs: EmbeddedPair[];
  /** "FILE:ROW" of pair i of the batch (its metadata row). */
  locate: (i: number) => string;
}

/**
 * Stream the pairs of a scanned folder in global row order, checking every row (NaN or infinite
 * values, norm) as `FILE:ROW` errors (rows counted from 1). Memory: one batch of vectors plus one
 * metadata row group.
 */
export async function* readClipRetrievalPairs(scan: ClipRetrievalScan, options: ReadPairsOptions = {}): AsyncGenerator<PairBatch> {
  const batchSize = options.batchSize ?? 4096;
  let done = 0;
  for (const part of scan.parts) {
    const images = NpyReader.open(part.image);
    const texts = NpyReader.open(part.text);
    try {
      const table = await openParquet(part.metadata);
      let groupStart = 0;
      for (const groupRows of table.groups) {
        const metaRows = await readParquetRows(table, groupStart, groupStart + groupRows);
        for (let off = 0; off < groupRows; off += batchSize) {
          const count = Math.min(batchSize, groupRows - off);
          const start = groupStart + off;
          const img = images.readRows(start, count); // [count, dim]
          const txt = texts.readRows(start, count); // [count, dim]
          checkRows(img, scan.dim, part.image, start, options.normalise);
          checkRows(txt, scan.dim, part.text, start, options.normalise);
          const pairs: EmbeddedPair[] = [];
          for (let i = 0; i < count; i++) {
            const row = start + i;
            pairs.push({
              meta: pairMeta(metaRows[off + i], table, row, part.firstRow + row),
              imageVector: img.subarray(i * scan.dim, (i + 1) * scan.dim),
              textVector: txt.subarray(i * scan.dim, (i + 1) * scan.dim),
            });
          }
          yield { pairs, locate: (i) => `${part.metadata}:${start + i + 1}` };
          done += count;
          options.onRows?.(done);
        }
        groupStart += groupRows;
      }
    } finally {
      images.close();
      texts.close();
    }
  }
}

/** Refuse NaN/infinite values and rows whose norm is not 1 (within NORM_TOLERANCE); with `normalise`, scale them instead. */
function checkRows(m: Float32Array, dim: number, file: string, firstRow: number, normalise = false): void {
  const n = m.length / dim;
  for (let r = 0; r < n; r++) {
    let s = 0;
    const off = r * dim;
    for (let j = 0; j < dim; j++) {
      const x = m[off + j];
      if (!Number.isFinite(x)) throw new RetformerError(`${file}:${firstRow + r + 1}: ${x} at position ${j} (NaN or infinite value)`);
      s += x * x;
    }
    const norm = Math.sqrt(s);
    if (Math.abs(norm - 1) <= NORM_TOLERANCE) continue;
    if (!normalise || norm === 0) {
      throw new RetformerError(
        `${file}:${firstRow + r + 1}: row is not L2-normalised (norm ${norm.toPrecision(4)}, tolerance ±${NORM_TOLERANCE})${norm === 0 ? '' : '; pass --normalise to normalise such rows on import'}`,
      );
    }
    const inv = 1 / norm;
    for (let j = 0; j < dim; j++) m[off + j] *= inv;
  }
}

function asText(v: JsonValue | undefined): string | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** One metadata row -> PairMeta: id (column or global row), caption -> text, image_path -> source, label, the rest in `extra`. */
function pairMeta(row: Record<string, JsonValue>, table: ParquetTable, fileRow: number, globalRow: number): PairMeta {
  const id = asText(row[KNOWN_COLUMNS.id]) ?? String(globalRow);
  if (id === '') throw new RetformerError(`${table.path}:${fileRow + 1}: empty id`);
  const meta: PairMeta = { id, text: asText(row[KNOWN_COLUMNS.text]) ?? '', source: asText(row[KNOWN_COLUMNS.source]) ?? '' };
  const label = asText(row[KNOWN_COLUMNS.label]);
  if (label !== undefined) meta.label = label;
  const known = new Set<string>(Object.values(KNOWN_COLUMNS));
  let extra: Record<string, JsonValue> | undefined;
  for (const [k, v] of Object.entries(row)) {
    if (known.has(k)) continue;
    extra ??= {};
    extra[k] = v;
  }
  if (extra) meta.extra = extra;
  return meta;
}
