import { RetformerError } from '../../util/errors.ts';
import type { Encoder, EncoderDescriptor, FitPair } from '../types.ts';

// Placeholder: replaced by the embedded encoder implementation.
export async function fitEmbeddedEncoder(_pairs: readonly FitPair[], _options: { seed: number; quiet?: boolean }): Promise<Encoder> {
  throw new RetformerError('embedded encoder not implemented yet');
}
export async function loadEmbeddedEncoder(_dir: string, _descriptor: EncoderDescriptor): Promise<Encoder> {
  throw new RetformerError('embedded encoder not implemented yet');
}
