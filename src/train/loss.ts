/** LACE's additive term tau_la * log(prior_c) from training class counts (empty classes get a count of 1). */
export function logPriorAdjustment(counts: readonly number[], tauLa: number): Float32Array {
  const total = counts.reduce((a, b) => a + Math.max(b, 1), 0);
  return Float32Array.from(counts, (c) => tauLa * Math.log(Math.max(c, 1) / total));
}

/** Smoothed one-hot rows: [n, C], 1 - eps + eps/C on the label, eps/C elsewhere. */
export function smoothedOneHot(labels: ArrayLike<number>, classes: number, eps: number): Float32Array {
  const out = new Float32Array(labels.length * classes).fill(eps / classes);
  for (let i = 0; i < labels.length; i++) out[i * classes + labels[i]] += 1 - eps;
  return out;
}
