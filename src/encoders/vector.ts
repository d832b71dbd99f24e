/** L2-normalise each row of a row-major [n, dim] matrix in place; zero rows stay zero. Returns the matrix. */
export function normalizeRows(m: Float32Array, dim: number): Float32Array {
  for (let off = 0; off < m.length; off += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += m[off + j] * m[off + j];
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let j = 0; j < dim; j++) m[off + j] *= inv;
    }
  }
  return m;
}

/** Dot product of row i of a and row j of b (both [*, dim]). */
export function dotRows(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let s = 0;
  const ai = i * dim;
  const bj = j * dim;
  for (let t = 0; t < dim; t++) s += a[ai + t] * b[bj + t];
  return s;
}
