import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { RetformerError } from '../../util/errors.ts';
import { fsyncPath } from '../../util/fs.ts';
import { startProgress } from '../../util/progress.ts';
import { openKnowledgeBaseSpec } from '../registry.ts';
import type { KnowledgeBase } from '../types.ts';
import { ClipRetrievalWriter, ColumnTypes } from './clip-retrieval-writer.ts';
import type { NpyDtype } from './npy.ts';

export interface ClipExportOptions {
  /** KB spec to export (its last committed generation). */
  kb: string;
  /** New folder to write (must not exist). */
  out: string;
  /** Rows per part (default 1,000,000). */
  partSize?: number;
  /** .npy dtype; default: the KB's (f32 -> f4; f16 -> f2; i8 -> f4, its dequantised values). */
  dtype?: 'f16' | 'f32';
  batchSize?: number;
  quiet?: boolean;
}

export const DEFAULT_PART_SIZE = 1_000_000;

/** A KB that can list its live rows (the file backend; other backends add it to be exportable). */
interface RowLister {
  liveRows(): number[] | Promise<number[]>;
}

function hasRowLister(kb: KnowledgeBase): kb is KnowledgeBase & RowLister {
  return typeof (kb as Partial<RowLister>).liveRows === 'function';
}

/** An export of NAME writes into `.NAME.exporting-<pid>` beside it until its final rename. */
const tempName = (out: string) => join(dirname(out), `.${basename(out)}.exporting-${process.pid}`);

/**
 * The engine behind `kb export --clip-retrieval`: every live pair, in row order, into parts of
 * clip-retrieval's layout. Metadata columns: id, image_path (the pair's source), caption (its
 * text), label (when any pair has one), then each `extra` field. Importing the result gives the
 * same KB content (ids, metadata, vectors: bit-exact at f32 and f16).
 */
export async function exportClipRetrieval(opts: ClipExportOptions): Promise<{ rows: number; parts: number; dtype: NpyDtype }> {
  const out = resolve(opts.out);
  if (existsSync(out)) throw new RetformerError(`${out}: already exists; choose a new folder for the export`);
  const partSize = opts.partSize ?? DEFAULT_PART_SIZE;
  if (!Number.isInteger(partSize) || partSize <= 0) throw new RetformerError(`--part-size must be a positive integer, got ${partSize}`);
  const kb = await openKnowledgeBaseSpec(opts.kb);
  const tmp = tempName(out);
  try {
    if (!hasRowLister(kb)) throw new RetformerError(`${opts.kb}: this backend cannot list its rows, so it cannot be exported yet`);
    const rows = await kb.liveRows();
    const batch = opts.batchSize ?? 4096;
    // first pass over the metadata: which extra columns, of which types
    const types = new ColumnTypes();
    for (let s = 0; s < rows.length; s += batch) for (const m of await kb.meta(rows.slice(s, s + batch))) types.add(m);
    const dtype: NpyDtype = (opts.dtype ?? (kb.manifest.dtype === 'f16' ? 'f16' : 'f32')) === 'f16' ? 'f2' : 'f4';
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(out), { recursive: true });
    const writer = new ClipRetrievalWriter(tmp, { dim: kb.dim, dtype, partSize, totalRows: rows.length, label: types.hasLabel, extras: types.columns() });
    const progress = startProgress('kb export', rows.length, { unit: 'pair', quiet: opts.quiet });
    try {
      for (let s = 0; s < rows.length; s += batch) {
        const part = rows.slice(s, s + batch);
        await writer.append(await kb.meta(part), await kb.vectors(part, 'image'), await kb.vectors(part, 'text'));
        progress.tick(part.length);
      }
      await writer.close();
    } finally {
      progress.stop();
    }
    if (existsSync(out)) throw new RetformerError(`${out}: appeared while exporting; not overwriting it`);
    for (const folder of readdirSync(tmp)) {
      for (const f of readdirSync(join(tmp, folder))) fsyncPath(join(tmp, folder, f)); // the parts' bytes are durable before the rename
      fsyncPath(join(tmp, folder));
    }
    renameSync(tmp, out);
    fsyncPath(dirname(out));
    return { rows: rows.length, parts: Math.max(1, Math.ceil(rows.length / partSize)), dtype };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    await kb.close();
  }
}
