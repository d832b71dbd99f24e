/**
 * The embedded encoder's data flow, shared by fitting and embedding:
 *   image sources -> decoded pictures [n][size*size*3] -> features [n, featureDim] -> shared space [n, d]
 *   texts -> sparse TF-IDF vectors -> shared space [n, d]
 */
import type { Rng } from '../../util/rng.ts';
import { mapConcurrent } from '../../util/concurrency.ts';
import { decodeImage } from '../image.ts';
import type { ImageSource } from '../types.ts';
import {
  featureDim,
  fitPatchDictionary,
  handcraftedDim,
  type ImageFeatureConfig,
  type PatchDictionary,
  patchDim,
  patchGridSide,
  toUnitFloats,
  writeHandcrafted,
  writePatches,
  writePooledActivations,
} from './image-features.ts';

/** Pictures decoded with sharp in flight at once (sharp works on libuv's thread pool). */
export const DECODE_CONCURRENCY = 8;
/** Pictures per feature batch (one patch matMul of [batch*grid^2, patchDim] x [patchDim, K]). */
export const FEATURE_BATCH = 128;

/** Decode pictures to unit floats [size*size*3] each, flattened onto white and resized (errors name the file). */
export async function decodePictures(sources: readonly ImageSource[], c: ImageFeatureConfig, concurrency = DECODE_CONCURRENCY): Promise<Float32Array[]> {
  return mapConcurrent(sources, concurrency, async (src) => {
    const img = await decodeImage(src, { size: c.size, kernel: 'linear' });
    return toUnitFloats(img.data);
  });
}

/** Sample `count` normalised patches from the pictures (seeded), [count, patchDim]. */
export function samplePatches(pictures: readonly Float32Array[], c: ImageFeatureConfig, count: number, rng: Rng): Float32Array {
  const pd = patchDim(c);
  const side = patchGridSide(c);
  const perImage = side * side;
  const all = new Float32Array(perImage * pd);
  const out = new Float32Array(count * pd);
  const perPicture = Math.ceil(count / Math.max(1, pictures.length));
  let filled = 0;
  for (let i = 0; filled < count && pictures.length > 0; i = (i + 1) % pictures.length) {
    writePatches(pictures[i], c, all, 0);
    for (let t = 0; t < perPicture && filled < count; t++) {
      const p = rng.int(perImage);
      out.set(all.subarray(p * pd, p * pd + pd), filled * pd);
      filled++;
    }
  }
  return out;
}

export function fitDictionary(pictures: readonly Float32Array[], c: ImageFeatureConfig, patches: number, rng: Rng, iterations = 10): PatchDictionary {
  const sample = samplePatches(pictures, c, patches, rng.fork());
  return fitPatchDictionary(sample, patches, c, rng.fork(), iterations);
}

/** Features of decoded pictures, [n, featureDim]. */
export function pictureFeatures(pictures: readonly Float32Array[], c: ImageFeatureConfig, dict: PatchDictionary): Float32Array {
  const dim = featureDim(c);
  const hd = handcraftedDim(c);
  const pd = patchDim(c);
  const perImage = patchGridSide(c) ** 2;
  const out = new Float32Array(pictures.length * dim);
  const patchBuf = new Float32Array(FEATURE_BATCH * perImage * pd);
  for (let start = 0; start < pictures.length; start += FEATURE_BATCH) {
    const count = Math.min(FEATURE_BATCH, pictures.length - start);
    for (let i = 0; i < count; i++) {
      writeHandcrafted(pictures[start + i], c, out, (start + i) * dim);
      writePatches(pictures[start + i], c, patchBuf, i * perImage);
    }
    const rows = out.subarray(start * dim, (start + count) * dim);
    writePooledActivations(patchBuf.subarray(0, count * perImage * pd), count, dict, c, rows, dim, hd);
  }
  return out;
}
