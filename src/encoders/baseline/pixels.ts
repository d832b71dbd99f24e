import { RetformerError } from '../../util/errors.ts';
import type { Encoder } from '../types.ts';

// Placeholder: replaced by the pixels baseline encoder.
export async function createPixelsEncoder(): Promise<Encoder> {
  throw new RetformerError('pixels encoder not implemented yet');
}
