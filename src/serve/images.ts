import sharp, { type Metadata } from 'sharp';
import { HttpError } from './errors.ts';

/** Image formats the service accepts, recognised by their first bytes (never by name or declared type). */
export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'avif';

export interface ImageLimits {
  /** Largest encoded image accepted, in bytes. */
  maxUploadBytes: number;
  /** Largest decoded size accepted, width x height (x frames), checked from the header before decoding. */
  maxPixels: number;
}

const ascii = (bytes: Uint8Array, start: number, text: string) => {
  if (bytes.length < start + text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[start + i] !== text.charCodeAt(i)) return false;
  return true;
};

/**
 * The format of an encoded image from its magic bytes, or undefined for anything else
 * (text, SVG, PDF, archives, truncated headers). SVG is refused on purpose: it is text that can
 * name other files.
 */
export function sniffImage(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && ascii(bytes, 1, 'PNG\r\n\x1a\n')) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (ascii(bytes, 0, 'GIF87a') || ascii(bytes, 0, 'GIF89a')) return 'gif';
  if (ascii(bytes, 0, 'RIFF') && ascii(bytes, 8, 'WEBP')) return 'webp';
  if (ascii(bytes, 4, 'ftyp') && (ascii(bytes, 8, 'avif') || ascii(bytes, 8, 'avis'))) return 'avif';
  return undefined;
}

const SHARP_FORMAT: Record<ImageFormat, string[]> = { png: ['png'], jpeg: ['jpeg', 'jpg'], gif: ['gif'], webp: ['webp'], avif: ['heif', 'avif'] };

export interface CheckedImage {
  bytes: Uint8Array;
  format: ImageFormat;
  width: number;
  height: number;
}

/**
 * Accept an uploaded image or refuse it with the right status: 413 over the byte limit, 415 when
 * the bytes are not an image format we take, 413 when the header announces more pixels than the
 * limit (a decompression bomb is refused before anything is decoded), 400 for an unreadable header.
 */
export async function checkImage(bytes: Uint8Array, limits: ImageLimits, what = 'image'): Promise<CheckedImage> {
  if (bytes.byteLength === 0) throw new HttpError(400, `${what} is empty`);
  if (bytes.byteLength > limits.maxUploadBytes) throw new HttpError(413, `${what} is ${bytes.byteLength} bytes, over the limit of ${limits.maxUploadBytes}`);
  const format = sniffImage(bytes);
  if (!format) throw new HttpError(415, `${what} is not a PNG, JPEG, GIF, WebP or AVIF image (judged by its content)`);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata(); // reads the header only
  } catch (err) {
    throw new HttpError(400, `${what}: unreadable ${format} header (${(err as Error).message.split('\n')[0]})`);
  }
  if (!SHARP_FORMAT[format].includes(String(meta.format))) throw new HttpError(415, `${what} starts like ${format} but decodes as ${meta.format}`);
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width <= 0 || height <= 0) throw new HttpError(400, `${what}: the ${format} header gives no size`);
  const pixels = width * height * Math.max(1, meta.pages ?? 1);
  if (pixels > limits.maxPixels) throw new HttpError(413, `${what} is ${width}x${height}${(meta.pages ?? 1) > 1 ? `x${meta.pages} frames` : ''} = ${pixels} pixels, over the limit of ${limits.maxPixels}`);
  return { bytes, format, width, height };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decode a base64 image (optionally a `data:image/...;base64,` URL) to bytes; malformed text is a 400. */
export function decodeBase64Image(text: string, what = 'image'): Uint8Array {
  const comma = text.startsWith('data:') ? text.indexOf(',') : -1;
  if (text.startsWith('data:') && (comma < 0 || !text.slice(0, comma).endsWith(';base64'))) throw new HttpError(400, `${what}: a data URL must be base64 (data:image/png;base64,...)`);
  const body = (comma >= 0 ? text.slice(comma + 1) : text).replace(/\s+/g, '');
  if (!BASE64.test(body)) throw new HttpError(400, `${what} is not valid base64`);
  return new Uint8Array(Buffer.from(body, 'base64'));
}
