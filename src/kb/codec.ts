import type { KbDtype } from './types.ts';

/**
 * Vectors on disk at the KB's dtype. f32: as is. f16: IEEE half, round to nearest even.
 * i8: round(x * 127) of the unit vector, clamped to [-127, 127]; decoded as q / 127 and
 * re-normalised to unit length (the same scheme usearch's i8 cosine quantisation uses).
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> 0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encode rows of f32 values ([n, dim]) at a dtype: the bytes to write. */
export function encodeVectors(values: Float32Array, dtype: KbDtype): Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'f16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = toHalf(values[i]);
      return new Uint8Array(out.buffer);
    }
    case 'i8': {
      const out = new Int8Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = Math.max(-127, Math.min(127, Math.round(values[i] * 127)));
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
      const halves = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      return Float32Array.from(halves, fromHalf);
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
