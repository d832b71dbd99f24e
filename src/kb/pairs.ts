import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkLabel } from '../data/classes.ts';
import type { Encoder } from '../encoders/types.ts';
import { readCsv } from '../util/csv.ts';
import { inputError, RetformerError } from '../util/errors.ts';
import type { Progress } from '../util/progress.ts';
import type { EmbeddedPair } from './types.ts';

/** One row of a pairs CSV, validated; `path` is absolute (resolved against the CSV's folder). */
export interface PairRow {
  /** The line of the CSV the row starts on, as an editor counts (header = line 1), for error messages. */
  row: number;
  id: string;
  path: string;
  text: string;
  label?: string;
}

/**
 * Read a pairs CSV: header with `path,text` and optional `id`, `label`. The id defaults to the
 * path as written. Every problem is one line naming the file and line (`FILE:LINE: ...`); a label with a
 * control character (a quoted newline, a tab) is refused.
 */
export function readPairsCsv(file: string): PairRow[] {
  const table = readCsv(file, ['path', 'text']);
  const hasId = table.columns.includes('id');
  const hasLabel = table.columns.includes('label');
  const base = dirname(resolve(file));
  const firstRowOfId = new Map<string, number>();
  return table.rows.map(({ row, values }) => {
    const rel = values.path.trim();
    if (rel === '') throw inputError(file, row, 'empty path');
    const text = values.text.trim();
    if (text === '') throw inputError(file, row, 'empty text');
    const id = hasId ? values.id.trim() : rel;
    if (id === '') throw inputError(file, row, 'empty id');
    const prev = firstRowOfId.get(id);
    if (prev !== undefined) throw inputError(file, row, `duplicate id "${id}" (first used on line ${prev})`);
    firstRowOfId.set(id, row);
    let label: string | undefined;
    if (hasLabel) {
      label = values.label.trim();
      if (label === '') throw inputError(file, row, 'empty label (the label column is present, so every row needs one)');
      checkLabel(file, row, label);
    }
    const path = resolve(base, rel);
    if (!existsSync(path)) throw inputError(file, row, `image not found: ${path}`);
    if (statSync(path).isDirectory()) throw inputError(file, row, `image path is a directory: ${path}`);
    return { row, id, path, text, label };
  });
}

/**
 * Embed pair rows with a frozen encoder in batches of `batchSize` (memory stays bounded by one
 * batch). A failing image is located by re-embedding the batch one by one, so the error names the
 * CSV row.
 */
export async function* embedPairRows(
  encoder: Encoder,
  rows: readonly PairRow[],
  csv: string,
  options: { batchSize?: number; progress?: Progress } = {},
): AsyncGenerator<{ rows: PairRow[]; pairs: EmbeddedPair[] }> {
  const batchSize = Math.max(1, options.batchSize ?? 256);
  const dim = encoder.dim;
  for (let start = 0; start < rows.length; start += batchSize) {
    const batch = rows.slice(start, start + batchSize);
    let images: Float32Array; // [b, dim]
    try {
      images = await encoder.embedImages(batch.map((r) => r.path));
    } catch (err) {
      throw await locateImageError(encoder, batch, csv, err);
    }
    const texts = await encoder.embedTexts(batch.map((r) => r.text)); // [b, dim]
    for (const [what, m] of [
      ['image', images],
      ['text', texts],
    ] as const) {
      if (m.length !== batch.length * dim) {
        throw inputError(csv, batch[0].row, `encoder "${encoder.id}" returned ${m.length} ${what} values for ${batch.length} rows, expected ${batch.length * dim} (wrong dimension)`);
      }
    }
    const pairs = batch.map((r, i) => ({
      meta: r.label === undefined ? { id: r.id, text: r.text, source: r.path } : { id: r.id, text: r.text, source: r.path, label: r.label },
      imageVector: images.subarray(i * dim, (i + 1) * dim),
      textVector: texts.subarray(i * dim, (i + 1) * dim),
    }));
    options.progress?.tick(batch.length);
    yield { rows: batch, pairs };
  }
}

async function locateImageError(encoder: Encoder, batch: readonly PairRow[], csv: string, original: unknown): Promise<unknown> {
  for (const r of batch) {
    try {
      await encoder.embedImages([r.path]);
    } catch (err) {
      return err instanceof RetformerError ? inputError(csv, r.row, err.message) : err;
    }
  }
  return original;
}
