import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { RetformerError } from '../util/errors.ts';
import type { ImageSource } from './types.ts';

/** The fixed background transparent pictures are flattened onto (white, as emoji are shown). */
export const DEFAULT_BACKGROUND = { r: 255, g: 255, b: 255 } as const;

export interface DecodedImage {
  width: number;
  height: number;
  /** RGB, 3 bytes per pixel, row-major [height, width, 3]. */
  data: Uint8Array;
}

export interface DecodeOptions {
  /** Resize to exactly size x size (after flattening). Omit to keep the original size. */
  size?: number;
  /** Resampling kernel for the resize. */
  kernel?: 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
  background?: { r: number; g: number; b: number };
}

function describe(src: ImageSource): string {
  return typeof src === 'string' ? src : `<${src.byteLength} bytes>`;
}

/**
 * Decode any image sharp reads (PNG in palette/grey/RGB/RGBA, JPEG, WebP, GIF, TIFF, AVIF) to RGB,
 * flattening alpha onto a fixed background. Errors name the file: missing, unknown format,
 * truncated or corrupt.
 */
export async function decodeImage(src: ImageSource, options: DecodeOptions = {}): Promise<DecodedImage> {
  if (typeof src === 'string' && !existsSync(src)) throw new RetformerError(`${src}: image file not found`);
  try {
    let pipeline = sharp(src, { failOn: 'error' }).flatten({ background: options.background ?? DEFAULT_BACKGROUND });
    if (options.size !== undefined) {
      pipeline = pipeline.resize(options.size, options.size, { fit: 'fill', kernel: options.kernel ?? 'lanczos3' });
    }
    const { data, info } = await pipeline.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after decoding, got ${info.channels}`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    const kind = /unsupported image format|Input file contains unsupported|Input buffer contains unsupported/i.test(msg)
      ? 'unknown or unsupported image format'
      : /premature|truncat|end of (file|stream)|corrupt|Invalid|bad|read error/i.test(msg)
        ? 'unreadable image (truncated or corrupt)'
        : 'cannot decode image';
    const detail = msg.split('\n')[0].replace(/[\s:]+$/, ''); // sharp's messages can end in a dangling colon
    throw new RetformerError(`${describe(src)}: ${kind}${detail ? `: ${detail}` : ''}`, { cause: err });
  }
}
