/**
 * The one encoder interface. Every part of retformer that needs vectors (KB build, training,
 * evaluation, serving) talks to this, never to a concrete encoder.
 *
 * Contract:
 * - `embedImages` / `embedTexts` return row-major Float32Array [n, dim], every row L2-normalised.
 * - Image and text vectors live in one shared space (image-to-text retrieval works).
 * - `id` is stable: the same weights and preprocessing give the same id in every process; a
 *   different model gives a different id. The KB stores it and refuses queries from another id.
 * - Frozen: embedding never changes the encoder.
 */
export type ImageSource = string | Uint8Array; // a file path, or the encoded bytes of a PNG/JPEG/WebP/...

export interface EmbedOptions {
  /** Called as work proceeds: (done, total) in items. */
  onProgress?: (done: number, total: number) => void;
  /** Items per forward pass; encoders choose a sensible default. */
  batchSize?: number;
}

/** What the KB manifest stores to reopen exactly this encoder. `kind` picks the loader in the registry. */
export interface EncoderDescriptor {
  kind: string;
  id: string;
  dim: number;
  [key: string]: unknown;
}

export interface Encoder {
  readonly id: string;
  readonly dim: number;
  embedImages(images: readonly ImageSource[], options?: EmbedOptions): Promise<Float32Array>; // [n, dim]
  embedTexts(texts: readonly string[], options?: EmbedOptions): Promise<Float32Array>; // [n, dim]
  /**
   * Persist whatever is needed to reopen this encoder into `dir` (the KB's `encoder/` folder):
   * the embedded encoder writes its fitted weights; the ONNX encoder writes nothing big and
   * records its model folder and checksum. Returns the descriptor for the manifest.
   */
  save(dir: string): Promise<EncoderDescriptor>;
  close(): Promise<void>;
}

/** An (image, text) pair an encoder may be fitted on (the embedded encoder fits on the KB's pairs). */
export interface FitPair {
  image: ImageSource;
  text: string;
}

export interface EncoderBuildContext {
  /** Pairs to fit on; only encoders that learn (embedded) read them. */
  fitPairs?: readonly FitPair[];
  seed?: number;
  quiet?: boolean;
}
