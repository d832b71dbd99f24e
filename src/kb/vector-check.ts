import { RetformerError } from '../util/errors.ts';
import type { SearchOptions } from './types.ts';

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

/**
 * Check a search request before any backend runs it: the query's encoder must be the KB's, the
 * queries ([n, dim]) finite, k a positive integer. Returns n. Every backend refuses the same input
 * with the same words.
 */
export function checkSearchRequest(kb: { spec: string; encoderId: string; dim: number }, queries: Float32Array, options: SearchOptions): number {
  if (options.queryEncoderId !== kb.encoderId) {
    throw new RetformerError(`query embedded with encoder "${options.queryEncoderId}" but the knowledge base ${kb.spec} was built with "${kb.encoderId}"; embed queries with the KB's encoder`);
  }
  const dim = kb.dim;
  if (queries.length % dim !== 0 || queries.length === 0) throw new RetformerError(`query vectors have ${queries.length} values, not a multiple of the KB's dimension ${dim} (wrong dimension)`);
  for (let i = 0; i < queries.length; i++) {
    if (!Number.isFinite(queries[i])) throw new RetformerError(`query ${Math.floor(i / dim) + 1} contains ${queries[i]} (NaN or infinite value)`);
  }
  const { k } = options;
  if (!Number.isInteger(k) || k <= 0) throw new RetformerError(`k must be a positive integer, got ${k}`);
  return queries.length / dim;
}
