import { resolve } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import type { Encoder, EncoderBuildContext, EncoderDescriptor } from './types.ts';

/**
 * Encoder specs as users write them on the command line:
 *   embedded                      the default; fitted on the KB's own pairs, saved inside the KB
 *   onnx:<dir>                    a CLIP export in the Hugging Face ONNX layout, fp32
 *   onnx:<dir>#fp16               the same with a precision variant (fp16, quantized, int8, uint8, q4, ...)
 *   pixels                        a training-free baseline (raw pixels; hashed text n-grams); no shared space
 */
export type EncoderSpec = { kind: 'embedded' } | { kind: 'pixels' } | { kind: 'onnx'; dir: string; variant?: string };

export const DEFAULT_ENCODER_SPEC = 'embedded';

export function parseEncoderSpec(spec: string): EncoderSpec {
  const s = spec.trim();
  if (s === 'embedded') return { kind: 'embedded' };
  if (s === 'pixels') return { kind: 'pixels' };
  if (s.startsWith('onnx:')) {
    const rest = s.slice('onnx:'.length);
    const hash = rest.lastIndexOf('#');
    const dir = hash >= 0 ? rest.slice(0, hash) : rest;
    const variant = hash >= 0 ? rest.slice(hash + 1) : undefined;
    if (dir === '') throw new RetformerError(`encoder spec "${spec}": missing folder after "onnx:" (e.g. onnx:./models/clip-vit-base-patch16)`);
    return { kind: 'onnx', dir: resolve(dir), variant: variant || undefined };
  }
  throw new RetformerError(`unknown encoder spec "${spec}": use "embedded", "pixels" or "onnx:<folder>[#variant]"`);
}

/** Make an encoder for building a new KB (fits the embedded encoder on ctx.fitPairs). */
export async function createEncoder(spec: EncoderSpec, ctx: EncoderBuildContext = {}): Promise<Encoder> {
  switch (spec.kind) {
    case 'embedded': {
      const { fitEmbeddedEncoder } = await import('./embedded/index.ts');
      if (!ctx.fitPairs || ctx.fitPairs.length === 0) throw new RetformerError('the embedded encoder is fitted on image-text pairs, and none were given');
      return fitEmbeddedEncoder(ctx.fitPairs, { seed: ctx.seed ?? 0, quiet: ctx.quiet });
    }
    case 'pixels': {
      const { createPixelsEncoder } = await import('./baseline/pixels.ts');
      return createPixelsEncoder();
    }
    case 'onnx': {
      const { loadOnnxClipEncoder } = await import('./onnx/index.ts');
      return loadOnnxClipEncoder(spec.dir, { variant: spec.variant, quiet: ctx.quiet });
    }
  }
}

/** Reopen the exact encoder a KB (or run) was made with, from its descriptor and saved folder. */
export async function openEncoder(descriptor: EncoderDescriptor, dir: string): Promise<Encoder> {
  switch (descriptor.kind) {
    case 'embedded': {
      const { loadEmbeddedEncoder } = await import('./embedded/index.ts');
      return loadEmbeddedEncoder(dir, descriptor);
    }
    case 'pixels': {
      const { createPixelsEncoder } = await import('./baseline/pixels.ts');
      return createPixelsEncoder();
    }
    case 'onnx': {
      const { reopenOnnxClipEncoder } = await import('./onnx/index.ts');
      return reopenOnnxClipEncoder(descriptor);
    }
    default:
      throw new RetformerError(`unknown encoder kind "${descriptor.kind}" in saved descriptor (${dir})`);
  }
}
