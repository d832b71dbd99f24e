import { floatToHalf, halfToFloat } from '../util/half.ts';
import type { KbDtype } from './types.ts';

/**
 * Vectors on disk at the KB's dtype. f32: as is. f16: IEEE half, round to nearest even.
 * i8: each row scaled to max |x| = 1, then round(x * 127) (a unit 512-d row's components are
 * ~0.04: round(x * 127) alone, as usearch's i8 does, keeps ~6 levels); decoded re-normalised to
 * unit length, so no scale is stored. rerank.ts re-scores i8 index candidates with these rows.
 */

/** Encode rows of f32 values ([n, dim]) at a dtype: the bytes to write. */
export function encodeVectors(values: Float32Array, dtype: KbDtype, dim: number): Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'f16': {
      return new Uint8Array(floatToHalf(values).buffer);
    }
    case 'i8': {
      const scaled = scaleRowsToMaxAbs(values, dim); // [n, dim], max |x| = 1 per row
      const out = new Int8Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = Math.max(-127, Math.min(127, Math.round(scaled[i] * 127)));
      return new Uint8Array(out.buffer);
    }
  }
}

/** Decode `bytes` of rows at a dtype into f32 ([n, dim]); i8 rows are re-normalised. */
export function decodeVectors(bytes: Uint8Array, dtype: KbDtype, dim: number): Float32Array {
  switch (dtype) {
    case 'f32': {
      const copy = new Uint8Array(bytes.byteLength);
      copy.set(bytes);
      return new Float32Array(copy.buffer);
    }
    case 'f16': {
      // a view when aligned (rows read into a fresh buffer are), a copy otherwise
      const halves = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(bytes.slice().buffer);
      return halfToFloat(halves);
    }
    case 'i8': {
      const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out = new Float32Array(q.length);
      for (let r = 0; r < q.length / dim; r++) {
        let s = 0;
        for (let j = 0; j < dim; j++) s += q[r * dim + j] * q[r * dim + j];
        const inv = s === 0 ? 0 : 1 / Math.sqrt(s);
        for (let j = 0; j < dim; j++) out[r * dim + j] = q[r * dim + j] * inv;
      }
      return out;
    }
  }
}

/** Each row ([n, dim]) divided by its largest |x|, so that i8 rounding uses the whole range. */
export function scaleRowsToMaxAbs(rows: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(rows.length); // [n, dim]
  for (let r = 0; r < rows.length / dim; r++) {
    let max = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) max = Math.max(max, Math.abs(rows[j]));
    const inv = max === 0 ? 0 : 1 / max;
    for (let j = r * dim; j < (r + 1) * dim; j++) out[j] = rows[j] * inv;
  }
  return out;
}
