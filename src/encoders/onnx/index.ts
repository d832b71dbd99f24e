import { RetformerError } from '../../util/errors.ts';
import type { Encoder, EncoderDescriptor } from '../types.ts';

// Placeholder: replaced by the ONNX CLIP encoder implementation.
export async function loadOnnxClipEncoder(_dir: string, _options: { variant?: string; quiet?: boolean }): Promise<Encoder> {
  throw new RetformerError('onnx encoder not implemented yet');
}
export async function reopenOnnxClipEncoder(_descriptor: EncoderDescriptor): Promise<Encoder> {
  throw new RetformerError('onnx encoder not implemented yet');
}
