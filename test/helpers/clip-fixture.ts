import { ClipRetrievalWriter, ColumnTypes } from '../../src/kb/interop/clip-retrieval-writer.ts';
import type { NpyDtype } from '../../src/kb/interop/npy.ts';
import type { PairMeta } from '../../src/kb/types.ts';
import { Rng } from '../../src/util/rng.ts';

export interface ClipFixture {
  metas: PairMeta[];
  image: Float32Array; // [n, dim] as written (before any f16 rounding)
  text: Float32Array; // [n, dim]
}

/** n random unit vectors of `dim` (seeded). */
export function unitRows(n: number, dim: number, rng: Rng): Float32Array {
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const x = rng.next() * 2 - 1;
      out[r * dim + j] = x;
      s += x * x;
    }
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) out[r * dim + j] *= inv;
  }
  return out;
}

/**
 * A clip-retrieval folder of `n` pairs in parts of `partSize`: metadata with image_path, caption,
 * a label (3 classes) and extra columns of several types (url string, width int, score double,
 * nsfw boolean, tags list, and a column that is sometimes null).
 */
export async function writeClipFixture(dir: string, options: { n: number; dim: number; partSize: number; seed: number; dtype?: NpyDtype; ids?: boolean }): Promise<ClipFixture> {
  const rng = new Rng(options.seed);
  const { n, dim } = options;
  const image = unitRows(n, dim, rng);
  const text = unitRows(n, dim, rng);
  const metas: PairMeta[] = [];
  for (let i = 0; i < n; i++) {
    const label = ['cat', 'dog', 'bird'][i % 3];
    const meta: PairMeta = {
      id: options.ids ? `pair-${(i * 7919) % 100003}` : String(i), // without an id column the reader derives the global row number
      text: `a photo of a ${label} number ${i}`,
      source: `images/${String(i).padStart(5, '0')}.jpg`,
      label,
      extra: { url: `https://example.test/${i}.jpg`, width: 64 + i, score: 0.25 + i / 8, nsfw: i % 5 === 0, tags: [label, `t${i % 4}`], note: i % 2 === 0 ? null : `odd ${i}` },
    };
    metas.push(meta);
  }
  const types = new ColumnTypes();
  for (const m of metas) types.add(m);
  const extras = types.columns();
  const writer = new ClipRetrievalWriter(dir, { dim, dtype: options.dtype ?? 'f4', partSize: options.partSize, totalRows: n, label: true, extras, idColumn: options.ids === true });
  const batch = 3; // several row groups per part
  for (let i = 0; i < n; i += batch) {
    const end = Math.min(n, i + batch);
    await writer.append(metas.slice(i, end), image.subarray(i * dim, end * dim), text.subarray(i * dim, end * dim));
  }
  await writer.close();
  return { metas, image, text };
}
