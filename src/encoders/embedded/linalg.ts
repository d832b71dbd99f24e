/**
 * The small amount of dense linear algebra the embedded encoder needs, on row-major Float32Arrays.
 * Large products go through tfjs-wasm's plain matMul (no transpose flags: those run ~10x slower
 * there); small symmetric eigenproblems use cyclic Jacobi in float64.
 */
import type { Rng } from '../../util/rng.ts';
import { tf } from '../../util/tfjs.ts';

/** C = A B for row-major A [m, k], B [k, n] -> [m, n] (tfjs-wasm; call initTf first). */
export function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  if (m === 0 || n === 0) return new Float32Array(m * n);
  const ta = tf.tensor2d(a, [m, k]);
  const tb = tf.tensor2d(b, [k, n]);
  const tc = tf.matMul(ta, tb);
  // copy out before disposing (never return a typed array from tf.tidy: it walks every element)
  const out = (tc.dataSync() as Float32Array).slice();
  ta.dispose();
  tb.dispose();
  tc.dispose();
  return out;
}

/** Transpose a row-major [rows, cols] matrix. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** A^T A for A [m, n] -> [n, n]. */
export function gram(a: Float32Array, m: number, n: number): Float32Array {
  return matmul(transpose(a, m, n), a, n, m, n);
}

/** Column means of a row-major [m, n] matrix. */
export function columnMeans(a: Float32Array, m: number, n: number): Float32Array {
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) acc[j] += a[i * n + j];
  return Float32Array.from(acc, (v) => v / Math.max(1, m));
}

/** Subtract a row vector from every row, in place. */
export function subtractRow(a: Float32Array, row: Float32Array): Float32Array {
  const n = row.length;
  for (let off = 0; off < a.length; off += n) for (let j = 0; j < n; j++) a[off + j] -= row[j];
  return a;
}

export interface SymEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Eigenvectors as columns of a row-major [n, n] matrix, in the order of `values`. */
  vectors: Float64Array;
}

/** Eigen-decomposition of a small symmetric matrix [n, n] by cyclic Jacobi rotations (float64). */
export function symmetricEigen(input: ArrayLike<number>, n: number): SymEigen {
  const a = Float64Array.from(input);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += a[i] * a[i];
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-24 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // rotate rows/columns p and q of a (kept symmetric) and columns of v
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i] || i - j);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) vectors[r * n + c] = v[r * n + order[c]];
  return { values, vectors };
}

/**
 * Orthonormalise the columns of Y [d, r] by modified Gram-Schmidt in float64, twice (robust where a
 * Cholesky-QR in float32 loses the small directions). Columns that vanish stay zero.
 */
export function orthonormalizeColumns(y: Float32Array, d: number, r: number): Float32Array {
  const cols = Array.from({ length: r }, (_, j) => {
    const c = new Float64Array(d);
    for (let i = 0; i < d; i++) c[i] = y[i * r + j];
    return c;
  });
  for (let j = 0; j < r; j++) {
    const cj = cols[j];
    const before = Math.sqrt(cj.reduce((s, v) => s + v * v, 0));
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const ck = cols[k];
        let dot = 0;
        for (let i = 0; i < d; i++) dot += ck[i] * cj[i];
        for (let i = 0; i < d; i++) cj[i] -= dot * ck[i];
      }
    }
    const norm = Math.sqrt(cj.reduce((s, v) => s + v * v, 0));
    const scale = norm > 1e-10 * before && norm > 0 ? 1 / norm : 0;
    for (let i = 0; i < d; i++) cj[i] *= scale;
  }
  const out = new Float32Array(d * r);
  for (let j = 0; j < r; j++) for (let i = 0; i < d; i++) out[i * r + j] = cols[j][i];
  return out;
}

export interface TopEigen {
  /** Eigenvalues, descending, [r]. */
  values: Float64Array;
  /** Orthonormal eigenvectors as columns of row-major [d, r]. */
  vectors: Float32Array;
}

/**
 * Top-r eigenpairs of a PSD operator on R^d (e.g. a covariance given as v -> X^T X v) by seeded
 * randomised subspace iteration with Rayleigh-Ritz. `apply` maps Q [d, r'] to C Q [d, r'].
 */
export function topEigen(apply: (q: Float32Array, cols: number) => Float32Array, d: number, r: number, rng: Rng, iterations = 6): TopEigen {
  const rr = Math.min(d, r + 16); // oversampling
  let q: Float32Array = new Float32Array(d * rr);
  for (let i = 0; i < q.length; i++) q[i] = rng.normal();
  q = orthonormalizeColumns(q, d, rr);
  for (let it = 0; it < iterations; it++) q = orthonormalizeColumns(apply(q, rr), d, rr);
  const cq = apply(q, rr); // [d, rr]
  const b = matmul(transpose(q, d, rr), cq, rr, d, rr); // [rr, rr] = Q^T C Q
  for (let i = 0; i < rr; i++) for (let j = i + 1; j < rr; j++) b[i * rr + j] = b[j * rr + i] = (b[i * rr + j] + b[j * rr + i]) / 2;
  const eig = symmetricEigen(b, rr);
  const keep = Math.min(r, rr);
  const w = new Float32Array(rr * keep);
  for (let i = 0; i < rr; i++) for (let j = 0; j < keep; j++) w[i * keep + j] = eig.vectors[i * rr + j];
  return { values: eig.values.slice(0, keep), vectors: matmul(q, w, d, rr, keep) };
}
