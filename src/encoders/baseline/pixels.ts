import { Rng } from '../../util/rng.ts';
import { mapConcurrent } from '../../util/concurrency.ts';
import { decodeImage } from '../image.ts';
import type { EmbedOptions, Encoder, EncoderDescriptor, ImageSource } from '../types.ts';
import { normalizeRows } from '../vector.ts';

/**
 * The `pixels` baseline: training-free and instant. Images are shrunk to 16x16 RGB, centred
 * (value/255 - 0.5) and sent through a fixed seeded Gaussian random projection; texts are hashed
 * character trigrams and words sent through another fixed projection. Both land in 128 dims,
 * L2-normalised. Image and text vectors do NOT share a meaningful space (no learning).
 */
export const PIXELS_CONFIG = {
  id: 'pixels-v1',
  dim: 128,
  imageSize: 16,
  /** Hash buckets for text features before the projection. */
  textBuckets: 4096,
  imageSeed: 0x5eed1,
  textSeed: 0x5eed2,
  decodeConcurrency: 4,
} as const;

const IMAGE_INPUTS = PIXELS_CONFIG.imageSize * PIXELS_CONFIG.imageSize * 3; // 768

/** A [rows, dim] Gaussian matrix scaled by 1/sqrt(dim), from a fixed seed. */
function gaussianProjection(rows: number, dim: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const m = new Float32Array(rows * dim); // [rows, dim]
  const scale = 1 / Math.sqrt(dim);
  for (let i = 0; i < m.length; i++) m[i] = rng.normal() * scale;
  return m;
}

let imageProjection: Float32Array | undefined; // [768, 128]
let textProjection: Float32Array | undefined; // [4096, 128]

/** FNV-1a over UTF-16 code units. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Words and character trigrams of the lower-cased text (padded with spaces). */
export function textFeatures(text: string): string[] {
  const norm = text.toLowerCase().replace(/\s+/g, ' ').trim();
  const words = norm.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
  const padded = ` ${norm} `;
  const features = words.map((w) => `w:${w}`);
  for (let i = 0; i + 3 <= padded.length; i++) features.push(`c:${padded.slice(i, i + 3)}`);
  return features;
}

function embedOneText(text: string, out: Float32Array, offset: number): void {
  const { dim, textBuckets, textSeed } = PIXELS_CONFIG;
  textProjection ??= gaussianProjection(textBuckets, dim, textSeed);
  for (const f of textFeatures(text)) {
    const h = hash32(f);
    const bucket = h % textBuckets;
    const sign = (h >>> 31) === 1 ? -1 : 1;
    const base = bucket * dim;
    for (let j = 0; j < dim; j++) out[offset + j] += sign * textProjection[base + j];
  }
}

async function embedOneImage(src: ImageSource, out: Float32Array, offset: number): Promise<void> {
  const { dim, imageSize, imageSeed } = PIXELS_CONFIG;
  imageProjection ??= gaussianProjection(IMAGE_INPUTS, dim, imageSeed);
  const img = await decodeImage(src, { size: imageSize, kernel: 'linear' });
  for (let i = 0; i < IMAGE_INPUTS; i++) {
    const v = img.data[i] / 255 - 0.5;
    const base = i * dim;
    for (let j = 0; j < dim; j++) out[offset + j] += v * imageProjection[base + j];
  }
}

class PixelsEncoder implements Encoder {
  readonly id = PIXELS_CONFIG.id;
  readonly dim = PIXELS_CONFIG.dim;

  async embedImages(images: readonly ImageSource[], options: EmbedOptions = {}): Promise<Float32Array> {
    const out = new Float32Array(images.length * this.dim); // [n, 128]
    let done = 0;
    await mapConcurrent(images, PIXELS_CONFIG.decodeConcurrency, async (src, i) => {
      await embedOneImage(src, out, i * this.dim);
      options.onProgress?.(++done, images.length);
    });
    return normalizeRows(out, this.dim);
  }

  async embedTexts(texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array> {
    const out = new Float32Array(texts.length * this.dim); // [n, 128]
    for (const [i, t] of texts.entries()) embedOneText(t, out, i * this.dim);
    options.onProgress?.(texts.length, texts.length);
    return normalizeRows(out, this.dim);
  }

  async save(_dir: string): Promise<EncoderDescriptor> {
    return { kind: 'pixels', id: this.id, dim: this.dim };
  }

  async close(): Promise<void> {}
}

export async function createPixelsEncoder(): Promise<Encoder> {
  return new PixelsEncoder();
}
