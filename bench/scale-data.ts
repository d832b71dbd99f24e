/**
 * The data of bench:scale, shared with bench:ef-sweep: clustered unit vectors (text = its image's
 * direction plus noise) and the exact top-k of held-out queries over clip-retrieval parts.
 */
import usearch from 'usearch';
import { scanClipRetrieval } from '../src/kb/interop/clip-retrieval.ts';
import { NpyReader } from '../src/kb/interop/npy.ts';
import { Rng } from '../src/util/rng.ts';

export interface ScaleData {
  /** count pairs: image [count, dim], text [count, dim], cluster of each. */
  generate(count: number, r: Rng): { image: Float32Array; text: Float32Array; cluster: Int32Array };
  /** The held-out queries of a run: [count, dim]. */
  queries(count: number): Float32Array;
}

/** Cluster centres from `seed`; pairs drawn with the Rng a caller passes (bench:scale: seed + 1 for the KB, seed + 2 for the queries). */
export function scaleData(seed: number, clusters: number, dim: number): ScaleData {
  const rng = new Rng(seed);
  const centres = new Float32Array(clusters * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = rng.normal() / Math.sqrt(dim);
  const normalise = (v: Float32Array, off: number) => {
    let s = 0;
    for (let j = 0; j < dim; j++) s += v[off + j] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) v[off + j] *= inv;
  };
  const generate = (count: number, r: Rng) => {
    const image = new Float32Array(count * dim);
    const text = new Float32Array(count * dim);
    const cluster = new Int32Array(count);
    const noise = 0.9 / Math.sqrt(dim);
    for (let i = 0; i < count; i++) {
      const c = r.int(clusters);
      cluster[i] = c;
      for (let j = 0; j < dim; j++) image[i * dim + j] = centres[c * dim + j] + r.normal() * noise;
      normalise(image, i * dim);
      for (let j = 0; j < dim; j++) text[i * dim + j] = image[i * dim + j] + r.normal() * noise;
      normalise(text, i * dim);
    }
    return { image, text, cluster };
  };
  return { generate, queries: (count) => generate(count, new Rng(seed + 2)).image };
}

/** Exact top-k rows of every query ([q, dim]) over the image vectors of a clip-retrieval folder (usearch exactSearch, block by block). */
export async function exactTopK(clipDir: string, queries: Float32Array, dim: number, k: number): Promise<number[][]> {
  const count = queries.length / dim;
  const lists: Array<Array<{ key: number; d: number }>> = Array.from({ length: count }, () => []);
  const scan = await scanClipRetrieval(clipDir);
  for (const part of scan.parts) {
    const reader = NpyReader.open(part.image);
    const block = 50_000;
    for (let s = 0; s < part.rows; s += block) {
      const rows = Math.min(block, part.rows - s);
      const data = reader.readRows(s, rows);
      const kk = Math.min(k, rows);
      const res = usearch.exactSearch(data, queries, dim, kk, usearch.MetricKind.Cos, 0) as unknown as { keys: BigUint64Array; distances: Float32Array };
      for (let q = 0; q < count; q++) {
        const list = lists[q];
        for (let j = 0; j < kk; j++) list.push({ key: part.firstRow + s + Number(res.keys[q * kk + j]), d: res.distances[q * kk + j] });
        list.sort((a, b) => a.d - b.d);
        list.length = Math.min(list.length, k);
      }
    }
    reader.close();
  }
  return lists.map((l) => l.map((x) => x.key));
}
