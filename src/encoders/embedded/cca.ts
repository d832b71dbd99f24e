/**
 * The shared image-text space: regularised CCA between PCA-reduced image features and PCA-reduced
 * text features of the KB pairs.
 *
 *   x  [dx] image features     -> centre, project on the top rx principal axes, whiten with a ridge
 *   t  [dt] text TF-IDF (sparse) -> centre, project on the top rt principal axes, whiten with a ridge
 *   M = Xw^T Tw / n  [rx, rt];  M = U S V^T
 *   image embedding = (x - mx) Px,  Px = Ux diag(wx) U[:, :d] diag(s^p)   [dx, d]
 *   text  embedding = (t - mt) Pt,  Pt = Ut diag(wt) V[:, :d] diag(s^p)   [dt, d]
 * Weighting canonical directions by a power of their correlation (Gong et al. 2014) keeps the
 * directions that image and text agree on dominant, for both image-text and image-image search.
 */
import type { Rng } from '../../util/rng.ts';
import { columnMeans, matmul, subtractRow, symmetricEigen, topEigen, transpose } from './linalg.ts';
import { type SparseVector, sparseTimesDense, sparseTransposeTimesDense } from './text-features.ts';

export interface SharedSpaceConfig {
  /** Principal axes kept on the image side. */
  imageRank: number;
  /** Principal axes kept on the text side. */
  textRank: number;
  /** Ridge in [0, 1]: whitening uses (1 - ridge) * eigenvalue + ridge * mean eigenvalue. */
  ridge: number;
  /** Output dimension d (<= min(imageRank, textRank)). */
  dim: number;
  /** Canonical direction i is scaled by correlation_i ^ power. */
  power: number;
}

export const DEFAULT_SHARED_SPACE: SharedSpaceConfig = { imageRank: 256, textRank: 256, ridge: 0.1, dim: 128, power: 1 };

export interface SharedSpace {
  imageMean: Float32Array; // [dx]
  imageProjection: Float32Array; // [dx, d]
  textMean: Float32Array; // [dt]
  textProjection: Float32Array; // [dt, d]
  /** Canonical correlations of the kept directions on the fitting pairs, [d]. */
  correlations: Float32Array;
}

function whiteningScales(values: Float64Array, ridge: number): Float32Array {
  let mean = 0;
  for (const v of values) mean += Math.max(v, 0);
  mean /= Math.max(1, values.length);
  return Float32Array.from(values, (v) => 1 / Math.sqrt((1 - ridge) * Math.max(v, 0) + ridge * mean + 1e-12));
}

/** Scale the columns of a row-major [rows, cols] matrix in place. */
function scaleColumns(m: Float32Array, cols: number, scales: ArrayLike<number>): Float32Array {
  for (let off = 0; off < m.length; off += cols) for (let j = 0; j < cols; j++) m[off + j] *= scales[j];
  return m;
}

/** Fit the shared space on n pairs: image features [n, dx] and sparse text vectors in R^dt. */
export function fitSharedSpace(
  images: Float32Array,
  dx: number,
  texts: readonly SparseVector[],
  dt: number,
  c: SharedSpaceConfig,
  rng: Rng,
): SharedSpace {
  const n = texts.length;
  // image side: centred covariance operator through the dense covariance [dx, dx]
  const imageMean = columnMeans(images, n, dx);
  const xc = subtractRow(images.slice(), imageMean); // [n, dx]
  const cov = matmul(transpose(xc, n, dx), xc, dx, n, dx);
  for (let i = 0; i < cov.length; i++) cov[i] /= n;
  const rx = Math.min(c.imageRank, dx, n - 1);
  const ix = topEigen((q, cols) => matmul(cov, q, dx, dx, cols), dx, rx, rng.fork());
  const ux = scaleColumns(ix.vectors, rx, whiteningScales(ix.values, c.ridge)); // [dx, rx]
  const xw = matmul(xc, ux, n, dx, rx); // [n, rx]

  // text side: centred covariance operator with sparse products
  const textMean = new Float32Array(dt);
  for (const t of texts) for (let j = 0; j < t.index.length; j++) textMean[t.index[j]] += t.value[j] / n;
  const applyText = (q: Float32Array, cols: number): Float32Array => {
    const tq = sparseTimesDense(texts, q, cols); // [n, cols]
    const mq = matmul(textMean, q, 1, dt, cols); // [1, cols]
    for (let i = 0; i < n; i++) for (let j = 0; j < cols; j++) tq[i * cols + j] -= mq[j];
    const out = sparseTransposeTimesDense(texts, tq, cols, dt); // [dt, cols]; the mean term sums to zero
    for (let i = 0; i < out.length; i++) out[i] /= n;
    return out;
  };
  const rt = Math.min(c.textRank, dt, n - 1);
  const it = topEigen(applyText, dt, rt, rng.fork());
  const ut = scaleColumns(it.vectors, rt, whiteningScales(it.values, c.ridge)); // [dt, rt]
  const tw = sparseTimesDense(texts, ut, rt); // [n, rt]
  const meanProj = matmul(textMean, ut, 1, dt, rt);
  for (let i = 0; i < n; i++) for (let j = 0; j < rt; j++) tw[i * rt + j] -= meanProj[j];

  // cross-covariance and its SVD through M M^T
  const m = matmul(transpose(xw, n, rx), tw, rx, n, rt); // [rx, rt]
  for (let i = 0; i < m.length; i++) m[i] /= n;
  const mmt = matmul(m, transpose(m, rx, rt), rx, rt, rx);
  const eig = symmetricEigen(mmt, rx);
  const d = Math.min(c.dim, rx, rt);
  const s = Float32Array.from({ length: d }, (_, i) => Math.sqrt(Math.max(eig.values[i], 0)));
  const u = new Float32Array(rx * d);
  for (let i = 0; i < rx; i++) for (let j = 0; j < d; j++) u[i * d + j] = eig.vectors[i * rx + j];
  const v = matmul(transpose(m, rx, rt), u, rt, rx, d); // [rt, d] = M^T U
  scaleColumns(
    v,
    d,
    Array.from(s, (x) => (x > 0 ? 1 / x : 0)),
  );
  const weights = Array.from(s, (x) => x ** c.power);
  const imageProjection = scaleColumns(matmul(ux, u, dx, rx, d), d, weights);
  const textProjection = scaleColumns(matmul(ut, v, dt, rt, d), d, weights);
  return { imageMean, imageProjection, textMean, textProjection, correlations: s };
}

/** Image features [n, dx] -> embeddings [n, d] (not yet normalised). */
export function projectImages(space: SharedSpace, features: Float32Array, n: number, dx: number, d: number): Float32Array {
  return matmul(subtractRow(features, space.imageMean), space.imageProjection, n, dx, d);
}

/** Sparse text vectors -> embeddings [n, d] (not yet normalised). */
export function projectTexts(space: SharedSpace, texts: readonly SparseVector[], dt: number, d: number): Float32Array {
  const out = sparseTimesDense(texts, space.textProjection, d);
  const meanProj = matmul(space.textMean, space.textProjection, 1, dt, d);
  for (let i = 0; i < texts.length; i++) for (let j = 0; j < d; j++) out[i * d + j] -= meanProj[j];
  return out;
}
