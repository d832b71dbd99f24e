import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileWriter, ParquetWriter, schemaFromColumnData } from 'hyparquet-writer';
import { RetformerError } from '../../util/errors.ts';
import type { PairMeta } from '../types.ts';
import { CLIP_FOLDERS, KNOWN_COLUMNS, partFileName } from './clip-retrieval.ts';
import { type NpyDtype, NpyWriter } from './npy.ts';

/** Parquet type of an extra metadata column, inferred from its values (see ColumnTypes). */
export type ExtraColumnType = 'BOOLEAN' | 'INT64' | 'DOUBLE' | 'STRING' | 'JSON';
export interface ExtraColumn {
  name: string;
  type: ExtraColumnType;
}

/**
 * Infers one Parquet type per `extra` field over all pairs: booleans, integers (INT64), other
 * numbers (DOUBLE), strings, and JSON for anything mixed or nested. Nulls fit every type. Reading
 * the file back gives the same JSON values (an integral DOUBLE column comes back as INT64: same values).
 */
export class ColumnTypes {
  private readonly kinds = new Map<string, Set<string>>();
  private label = false;

  add(meta: PairMeta): void {
    if (meta.label !== undefined) this.label = true;
    for (const [k, v] of Object.entries(meta.extra ?? {})) {
      const kinds = this.kinds.get(k) ?? new Set<string>();
      this.kinds.set(k, kinds);
      if (v === null || v === undefined) continue;
      if (typeof v === 'number') kinds.add(Number.isInteger(v) ? 'int' : 'float');
      else if (typeof v === 'boolean' || typeof v === 'string') kinds.add(typeof v);
      else kinds.add('json');
    }
  }

  get hasLabel(): boolean {
    return this.label;
  }

  columns(): ExtraColumn[] {
    return [...this.kinds.entries()].map(([name, kinds]) => {
      const only = (...k: string[]) => kinds.size > 0 && [...kinds].every((x) => k.includes(x));
      const type: ExtraColumnType = only('boolean') ? 'BOOLEAN' : only('int') ? 'INT64' : only('int', 'float') ? 'DOUBLE' : only('string') || kinds.size === 0 ? 'STRING' : 'JSON';
      return { name, type };
    });
  }
}

export interface ClipRetrievalWriterOptions {
  dim: number;
  dtype: NpyDtype;
  /** Rows per part (the last part holds the rest). */
  partSize: number;
  /** Rows in all; fixes the .npy shapes up front. */
  totalRows: number;
  /** Write a `label` column. */
  label: boolean;
  /** Write an `id` column (default true; without it a reader derives ids from the global row order). */
  idColumn?: boolean;
  extras: ExtraColumn[];
}

interface OpenPart {
  n: number;
  rows: number;
  written: number;
  image: NpyWriter;
  text: NpyWriter;
  metadata: ParquetWriter;
}

/**
 * Writes pairs into clip-retrieval's layout: parts of `partSize` rows, each an img_emb and a
 * text_emb .npy and a metadata .parquet with columns id, image_path, caption[, label], extras.
 * Every `append` becomes one Parquet row group per part it touches (pass batches of a few
 * thousand rows). The caller writes into a temporary folder and renames it when done.
 */
export class ClipRetrievalWriter {
  private part: OpenPart | undefined;
  private nextPart = 0;
  private written = 0;

  constructor(
    readonly dir: string,
    readonly options: ClipRetrievalWriterOptions,
  ) {
    if (!Number.isInteger(options.partSize) || options.partSize <= 0) throw new RetformerError(`part size must be a positive integer, got ${options.partSize}`);
    for (const f of Object.values(CLIP_FOLDERS)) mkdirSync(join(dir, f), { recursive: true });
  }

  private pad(n: number): string {
    return String(n).padStart(Math.max(4, String(Math.ceil(this.options.totalRows / this.options.partSize)).length), '0');
  }

  private openPart(): OpenPart {
    const { dim, dtype, partSize, totalRows } = this.options;
    const n = this.nextPart++;
    const rows = Math.min(partSize, totalRows - this.written);
    const num = this.pad(n);
    const path = (kind: keyof typeof CLIP_FOLDERS) => join(this.dir, CLIP_FOLDERS[kind], partFileName(kind, n, num.length));
    const schema = schemaFromColumnData({ columnData: this.columns().map((c) => ({ name: c.name, data: [], type: c.type, nullable: c.nullable })) });
    return {
      n,
      rows,
      written: 0,
      image: new NpyWriter(path('image'), dtype, rows, dim),
      text: new NpyWriter(path('text'), dtype, rows, dim),
      metadata: new ParquetWriter({ writer: fileWriter(path('metadata')), schema, createdBy: 'retformer kb export' }),
    };
  }

  private columns(): { name: string; type: ExtraColumnType; nullable: boolean }[] {
    // id, image_path and caption first, as clip-retrieval writes them
    return [
      ...(this.options.idColumn === false ? [] : [{ name: KNOWN_COLUMNS.id, type: 'STRING' as const, nullable: false }]),
      { name: KNOWN_COLUMNS.source, type: 'STRING', nullable: false },
      { name: KNOWN_COLUMNS.text, type: 'STRING', nullable: false },
      ...(this.options.label ? [{ name: KNOWN_COLUMNS.label, type: 'STRING' as const, nullable: true }] : []),
      ...this.options.extras.map((e) => ({ ...e, nullable: true })),
    ];
  }

  /** Append rows: metas [n], image and text vectors [n, dim]. */
  async append(metas: readonly PairMeta[], image: Float32Array, text: Float32Array): Promise<void> {
    const { dim } = this.options;
    if (image.length !== metas.length * dim || text.length !== metas.length * dim) throw new Error(`append: ${metas.length} metas but ${image.length / dim} image / ${text.length / dim} text rows`);
    if (this.written + metas.length > this.options.totalRows) throw new Error(`append: more rows than the declared ${this.options.totalRows}`);
    let i = 0;
    while (i < metas.length) {
      this.part ??= this.openPart();
      const part = this.part;
      const take = Math.min(metas.length - i, part.rows - part.written);
      part.image.append(image.subarray(i * dim, (i + take) * dim));
      part.text.append(text.subarray(i * dim, (i + take) * dim));
      const slice = metas.slice(i, i + take);
      const columnData = this.columns().map((c) => ({ name: c.name, data: slice.map((m) => cellValue(m, c.name, c.type)) }));
      await part.metadata.write({ columnData, rowGroupSize: take });
      part.written += take;
      this.written += take;
      i += take;
      if (part.written === part.rows) await this.closePart();
    }
  }

  private async closePart(): Promise<void> {
    const part = this.part;
    if (!part) return;
    this.part = undefined;
    part.image.close();
    part.text.close();
    await part.metadata.finish();
  }

  /** Finish the last part; refuses a writer that got fewer rows than declared. */
  async close(): Promise<void> {
    if (this.options.totalRows === 0 && this.nextPart === 0) this.part = this.openPart(); // one empty part
    await this.closePart();
    if (this.written !== this.options.totalRows) throw new Error(`export wrote ${this.written} rows, ${this.options.totalRows} declared`);
  }
}

function cellValue(meta: PairMeta, column: string, type: ExtraColumnType): unknown {
  if (column === KNOWN_COLUMNS.id) return meta.id;
  if (column === KNOWN_COLUMNS.source) return meta.source;
  if (column === KNOWN_COLUMNS.text) return meta.text;
  if (column === KNOWN_COLUMNS.label) return meta.label ?? null;
  const v = meta.extra?.[column];
  if (v === undefined || v === null) return null;
  if (type === 'INT64') return BigInt(v as number);
  return v;
}
