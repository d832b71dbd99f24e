import { RetformerError } from '../util/errors.ts';

/**
 * Check one vector on its way into a KB (length, finite values, not all zeros) and write it,
 * scaled to unit length, into `out` at `offset` ([dim] values). Every backend's writer stores
 * vectors through this, so they refuse the same input with the same words.
 */
export function writeUnitChecked(v: Float32Array, dim: number, what: string, out: Float32Array, offset = 0): void {
  if (!(v instanceof Float32Array) || v.length !== dim) throw new RetformerError(`${what} has ${v?.length ?? 0} values, expected ${dim} (wrong dimension)`);
  let s = 0;
  for (let j = 0; j < dim; j++) {
    const x = v[j];
    if (!Number.isFinite(x)) throw new RetformerError(`${what} contains ${x} at position ${j} (NaN or infinite value)`);
    s += x * x;
  }
  if (s === 0) throw new RetformerError(`${what} is all zeros (cannot be normalised)`);
  const inv = 1 / Math.sqrt(s);
  for (let j = 0; j < dim; j++) out[offset + j] = v[j] * inv;
}
