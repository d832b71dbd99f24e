import type { EncoderDescriptor } from '../../src/encoders/types.ts';
import type { EmbeddedPair, KbCreateOptions } from '../../src/kb/types.ts';
import { Rng } from '../../src/util/rng.ts';

/** A made-up encoder for KBs filled with generated vectors (its files: one small JSON). */
export function fakeEncoder(dim: number, id = `fake-${dim}`): { descriptor: EncoderDescriptor; create: (extra?: Partial<KbCreateOptions>) => KbCreateOptions } {
  const descriptor: EncoderDescriptor = { kind: 'fake', id, dim };
  const files = new Map([['weights.json', new TextEncoder().encode(JSON.stringify({ id, dim }))]]);
  return { descriptor, create: (extra = {}) => ({ encoder: descriptor, encoderChecksum: `sha256:${id}`, encoderFiles: files, dim, ...extra }) };
}

/** Unit vector of a seeded normal sample around `centre` (or around nothing). */
function unit(rng: Rng, dim: number, centre?: Float32Array, spread = 0.3): Float32Array {
  const v = new Float32Array(dim);
  let s = 0;
  for (let j = 0; j < dim; j++) {
    v[j] = (centre ? centre[j] : 0) + rng.normal() * (centre ? spread : 1);
    s += v[j] * v[j];
  }
  const inv = 1 / Math.sqrt(s);
  for (let j = 0; j < dim; j++) v[j] *= inv;
  return v;
}

/** n pairs in `clusters` clusters (label = cluster name), ids `${prefix}${i}`; text vectors near their image vectors. */
export function clusteredPairs(n: number, dim: number, options: { seed: number; clusters?: number; prefix?: string }): EmbeddedPair[] {
  const rng = new Rng(options.seed);
  const centres = Array.from({ length: options.clusters ?? 4 }, () => unit(rng, dim));
  return Array.from({ length: n }, (_, i) => {
    const c = i % centres.length;
    const imageVector = unit(rng, dim, centres[c]);
    const textVector = unit(rng, dim, imageVector, 0.2);
    return { meta: { id: `${options.prefix ?? 'p'}${i}`, text: `pair ${i} of cluster ${c}`, source: `/data/img-${i}.png`, label: `c${c}` }, imageVector, textVector };
  });
}

/** Exact cosine top-k of one query over the given pairs' vectors in one modality (ids, best first). */
export function exactTopIds(pairs: readonly EmbeddedPair[], query: Float32Array, k: number, modality: 'image' | 'text' = 'image', skip: ReadonlySet<string> = new Set()): string[] {
  const scored = pairs
    .filter((p) => !skip.has(p.meta.id))
    .map((p) => {
      const v = modality === 'image' ? p.imageVector : p.textVector;
      let dot = 0;
      for (let j = 0; j < v.length; j++) dot += v[j] * query[j];
      return { id: p.meta.id, dot };
    });
  scored.sort((a, b) => b.dot - a.dot);
  return scored.slice(0, k).map((s) => s.id);
}
