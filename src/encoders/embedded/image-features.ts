/**
 * Training-free and dictionary image features for the embedded encoder, on small RGB pictures.
 *
 * A picture [size, size, 3] (floats in [0, 1], transparent parts already flattened onto white) gives:
 * - a colour thumbnail (mean-pooled to thumb x thumb RGB),
 * - a joint RGB colour histogram (bins^3, square-rooted: Hellinger),
 * - a gradient-orientation histogram (HOG-like) on a cells x cells grid,
 * - Coates-Ng patch-dictionary activations: every patch x patch x 3 patch (on a stride) is
 *   brightness/contrast normalised, ZCA-whitened and compared with K unit-norm centroids learned by
 *   spherical k-means on the KB's pictures; activations relu(s_k - mean(s)) are average-pooled over
 *   the 2x2 quadrants.
 * Each block is L2-normalised and scaled by its weight, then all blocks are concatenated.
 */
import type { Rng } from '../../util/rng.ts';
import { normalizeRows } from '../vector.ts';
import { columnMeans, matmul, symmetricEigen, transpose } from './linalg.ts';

export interface ImageFeatureConfig {
  /** Side the picture is resized to before any feature. */
  size: number;
  thumb: number;
  histBins: number;
  hogCells: number;
  hogOrientations: number;
  patch: number;
  stride: number;
  /** Dictionary size K. */
  centroids: number;
  /** Block weights after per-block L2 normalisation. */
  weights: { thumb: number; hist: number; hog: number; patches: number };
}

export const DEFAULT_IMAGE_FEATURES: ImageFeatureConfig = {
  size: 32,
  thumb: 8,
  histBins: 4,
  hogCells: 4,
  hogOrientations: 9,
  patch: 6,
  stride: 2,
  centroids: 256,
  weights: { thumb: 0.5, hist: 0.3, hog: 1, patches: 2.5 },
};

export function handcraftedDim(c: ImageFeatureConfig): number {
  return c.thumb * c.thumb * 3 + c.histBins ** 3 + c.hogCells * c.hogCells * c.hogOrientations;
}
export function patchGridSide(c: ImageFeatureConfig): number {
  return Math.floor((c.size - c.patch) / c.stride) + 1;
}
export function patchDim(c: ImageFeatureConfig): number {
  return c.patch * c.patch * 3;
}
export function featureDim(c: ImageFeatureConfig): number {
  return handcraftedDim(c) + 4 * c.centroids;
}

function l2Scale(v: Float32Array, from: number, to: number, weight: number): void {
  let s = 0;
  for (let i = from; i < to; i++) s += v[i] * v[i];
  if (s <= 0) return;
  const k = weight / Math.sqrt(s);
  for (let i = from; i < to; i++) v[i] *= k;
}

/** Pixels (RGB bytes [size, size, 3]) -> floats in [0, 1]. */
export function toUnitFloats(rgb: Uint8Array): Float32Array {
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) out[i] = rgb[i] / 255;
  return out;
}

/** Thumbnail + colour histogram + HOG, written into out[offset .. offset + handcraftedDim). */
export function writeHandcrafted(px: Float32Array, c: ImageFeatureConfig, out: Float32Array, offset: number): void {
  const n = c.size;
  let o = offset;
  // thumbnail [thumb, thumb, 3]
  const cell = n / c.thumb;
  const start = o;
  for (let ty = 0; ty < c.thumb; ty++) {
    for (let tx = 0; tx < c.thumb; tx++) {
      for (let ch = 0; ch < 3; ch++) {
        let s = 0;
        for (let y = Math.floor(ty * cell); y < Math.floor((ty + 1) * cell); y++) {
          for (let x = Math.floor(tx * cell); x < Math.floor((tx + 1) * cell); x++) s += px[(y * n + x) * 3 + ch];
        }
        out[o++] = s;
      }
    }
  }
  l2Scale(out, start, o, c.weights.thumb);
  // joint RGB histogram [bins^3], Hellinger
  const hStart = o;
  const b = c.histBins;
  for (let i = 0; i < n * n; i++) {
    const r = Math.min(b - 1, Math.floor(px[i * 3] * b));
    const g = Math.min(b - 1, Math.floor(px[i * 3 + 1] * b));
    const bl = Math.min(b - 1, Math.floor(px[i * 3 + 2] * b));
    out[hStart + (r * b + g) * b + bl] += 1;
  }
  o += b * b * b;
  for (let i = hStart; i < o; i++) out[i] = Math.sqrt(out[i]);
  l2Scale(out, hStart, o, c.weights.hist);
  // HOG: gradient of the channel with the largest magnitude, unsigned orientations, cells x cells
  const gStart = o;
  const nb = c.hogOrientations;
  const cellPx = n / c.hogCells;
  for (let y = 1; y < n - 1; y++) {
    for (let x = 1; x < n - 1; x++) {
      let best = -1;
      let gx = 0;
      let gy = 0;
      for (let ch = 0; ch < 3; ch++) {
        const dx = px[(y * n + x + 1) * 3 + ch] - px[(y * n + x - 1) * 3 + ch];
        const dy = px[((y + 1) * n + x) * 3 + ch] - px[((y - 1) * n + x) * 3 + ch];
        const m = dx * dx + dy * dy;
        if (m > best) {
          best = m;
          gx = dx;
          gy = dy;
        }
      }
      if (best <= 0) continue;
      let angle = Math.atan2(gy, gx);
      if (angle < 0) angle += Math.PI;
      const pos = (angle / Math.PI) * nb - 0.5;
      const lo = Math.floor(pos);
      const frac = pos - lo;
      const b0 = (lo + nb) % nb;
      const b1 = (lo + 1) % nb;
      const mag = Math.sqrt(best);
      const cellIndex = Math.min(c.hogCells - 1, Math.floor(y / cellPx)) * c.hogCells + Math.min(c.hogCells - 1, Math.floor(x / cellPx));
      out[gStart + cellIndex * nb + b0] += mag * (1 - frac);
      out[gStart + cellIndex * nb + b1] += mag * frac;
    }
  }
  o += c.hogCells * c.hogCells * nb;
  for (let i = gStart; i < o; i++) out[i] = Math.sqrt(out[i]);
  l2Scale(out, gStart, o, c.weights.hog);
}

/** Brightness/contrast-normalised patches of one picture into out [grid*grid, patchDim] at row `rowOffset`. */
export function writePatches(px: Float32Array, c: ImageFeatureConfig, out: Float32Array, rowOffset: number): void {
  const n = c.size;
  const p = c.patch;
  const pd = patchDim(c);
  const side = patchGridSide(c);
  const eps = 10 / (255 * 255);
  let row = rowOffset;
  for (let gy = 0; gy < side; gy++) {
    for (let gx = 0; gx < side; gx++) {
      const base = row * pd;
      let k = base;
      let mean = 0;
      for (let y = 0; y < p; y++) {
        const src = ((gy * c.stride + y) * n + gx * c.stride) * 3;
        for (let t = 0; t < p * 3; t++) {
          const v = px[src + t];
          out[k++] = v;
          mean += v;
        }
      }
      mean /= pd;
      let variance = 0;
      for (let t = base; t < base + pd; t++) {
        out[t] -= mean;
        variance += out[t] * out[t];
      }
      const inv = 1 / Math.sqrt(variance / pd + eps);
      for (let t = base; t < base + pd; t++) out[t] *= inv;
      row++;
    }
  }
}

/** The learned part: ZCA + spherical k-means centroids folded into one map s = patch E + bias. */
export interface PatchDictionary {
  /** [patchDim, K] = W D^T (ZCA whitening then centroid similarities). */
  encode: Float32Array;
  /** [K] = -mean W D^T. */
  bias: Float32Array;
}

/**
 * Fit the patch dictionary on normalised patches [count, patchDim]: ZCA whitening (eps 0.1 on the
 * eigenvalues, as Coates & Ng) then seeded spherical k-means with K centroids.
 */
export function fitPatchDictionary(patches: Float32Array, count: number, c: ImageFeatureConfig, rng: Rng, iterations = 10): PatchDictionary {
  const pd = patchDim(c);
  const k = c.centroids;
  const mean = columnMeans(patches, count, pd);
  const centred = patches.slice();
  for (let off = 0; off < centred.length; off += pd) for (let j = 0; j < pd; j++) centred[off + j] -= mean[j];
  const cov = matmul(transpose(centred, count, pd), centred, pd, count, pd);
  for (let i = 0; i < cov.length; i++) cov[i] /= count;
  const eig = symmetricEigen(cov, pd);
  const zca = new Float32Array(pd * pd); // symmetric W = V diag(1/sqrt(l + eps)) V^T
  for (let i = 0; i < pd; i++) {
    for (let j = 0; j < pd; j++) {
      let s = 0;
      for (let t = 0; t < pd; t++) s += (eig.vectors[i * pd + t] * eig.vectors[j * pd + t]) / Math.sqrt(Math.max(eig.values[t], 0) + 0.1);
      zca[i * pd + j] = s;
    }
  }
  const white = matmul(centred, zca, count, pd, pd); // [count, pd]
  // spherical k-means: centroids D [K, pd] with unit rows, assignment by largest similarity
  const d = new Float32Array(k * pd);
  const order = rng.shuffle(Array.from({ length: count }, (_, i) => i));
  for (let i = 0; i < k; i++) d.set(white.subarray(order[i % count] * pd, order[i % count] * pd + pd), i * pd);
  normalizeRows(d, pd);
  for (let it = 0; it < iterations; it++) {
    const s = matmul(white, transpose(d, k, pd), count, pd, k); // [count, K]
    const acc = new Float64Array(k * pd);
    const hits = new Int32Array(k);
    for (let i = 0; i < count; i++) {
      let best = 0;
      let bestV = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < k; j++) {
        const v = s[i * k + j];
        if (v > bestV) {
          bestV = v;
          best = j;
        }
      }
      hits[best]++;
      for (let t = 0; t < pd; t++) acc[best * pd + t] += white[i * pd + t] * bestV;
    }
    for (let j = 0; j < k; j++) {
      if (hits[j] === 0) {
        const pick = rng.int(count);
        for (let t = 0; t < pd; t++) d[j * pd + t] = white[pick * pd + t];
      } else for (let t = 0; t < pd; t++) d[j * pd + t] = acc[j * pd + t];
    }
    normalizeRows(d, pd);
  }
  const encode = matmul(zca, transpose(d, k, pd), pd, pd, k); // [pd, K]
  const bias = matmul(mean, encode, 1, pd, k);
  for (let j = 0; j < k; j++) bias[j] = -bias[j];
  return { encode, bias };
}

/**
 * Patch activations of `count` pictures whose patches fill `patches` [count*grid*grid, patchDim],
 * pooled over quadrants into out rows [count, rowStride] at column `colOffset` (4*K columns).
 */
export function writePooledActivations(
  patches: Float32Array,
  count: number,
  dict: PatchDictionary,
  c: ImageFeatureConfig,
  out: Float32Array,
  rowStride: number,
  colOffset: number,
): void {
  const side = patchGridSide(c);
  const perImage = side * side;
  const k = c.centroids;
  const s = matmul(patches, dict.encode, count * perImage, patchDim(c), k); // [count*perImage, K]
  const half = Math.ceil(side / 2);
  for (let img = 0; img < count; img++) {
    const o = img * rowStride + colOffset;
    for (let gy = 0; gy < side; gy++) {
      for (let gx = 0; gx < side; gx++) {
        const row = (img * perImage + gy * side + gx) * k;
        let mean = 0;
        for (let j = 0; j < k; j++) {
          s[row + j] += dict.bias[j];
          mean += s[row + j];
        }
        mean /= k;
        const q = o + ((gy < half ? 0 : 2) + (gx < half ? 0 : 1)) * k;
        for (let j = 0; j < k; j++) {
          const a = s[row + j] - mean;
          if (a > 0) out[q + j] += a;
        }
      }
    }
    for (let t = o; t < o + 4 * k; t++) out[t] = Math.sqrt(out[t]);
    l2Scale(out, o, o + 4 * k, c.weights.patches);
  }
}
