/**
 * The embedded default encoder (`--encoder embedded`): needs no downloaded weights; fitted on the
 * KB's own image-text pairs (seeded, deterministic), then frozen and saved inside the KB.
 *
 * Image: 32x32 picture -> colour thumbnail, colour histogram, HOG, Coates-Ng patch-dictionary
 * activations (dictionary learned on the KB pictures) [featureDim]. Text: hashed word/bigram/char
 * n-gram TF-IDF [buckets]. Both are mapped into one d-dimensional space by a regularised CCA
 * fitted on the pairs (see docs/embedded-encoder.md for the choice and its measurements).
 */
import { RetformerError } from '../../util/errors.ts';
import { startProgress } from '../../util/progress.ts';
import { Rng } from '../../util/rng.ts';
import type { Encoder, EmbedOptions, EncoderDescriptor, FitPair, ImageSource } from '../types.ts';
import { normalizeRows } from '../vector.ts';
import { DEFAULT_SHARED_SPACE, fitSharedSpace, projectImages, projectTexts } from './cca.ts';
import { DEFAULT_IMAGE_FEATURES, featureDim } from './image-features.ts';
import { initTf } from '../../util/tfjs.ts';
import { decodePictures, FEATURE_BATCH, fitDictionary, pictureFeatures } from './pipeline.ts';
import { type EmbeddedConfig, type EmbeddedState, encoderId, HEADER_FILE, loadState, saveState, stateChecksum, WEIGHTS_FILE } from './state.ts';
import { DEFAULT_TEXT_FEATURES, fitIdf, textVector } from './text-features.ts';

export type { EmbeddedConfig } from './state.ts';

export const DEFAULT_EMBEDDED_CONFIG: EmbeddedConfig = {
  image: DEFAULT_IMAGE_FEATURES,
  text: DEFAULT_TEXT_FEATURES,
  space: DEFAULT_SHARED_SPACE,
  dictionaryPatches: 50_000,
  kmeansIterations: 10,
  maxFitPairs: 20_000,
};

/** Descriptor stored in the KB manifest. */
export interface EmbeddedDescriptor extends EncoderDescriptor {
  kind: 'embedded';
  checksum: string;
  files: { header: string; weights: string };
}

class EmbeddedEncoder implements Encoder {
  readonly id: string;
  readonly dim: number;
  /** `checksum`: the state's, when the caller has it already (a reload); computed otherwise. */
  constructor(
    private readonly state: EmbeddedState,
    checksum = stateChecksum(state),
  ) {
    this.id = encoderId(checksum);
    this.dim = state.dim;
  }

  /** [n, dim], rows L2-normalised. Decoding the next batch (sharp, thread pool) overlaps the features of this one. */
  async embedImages(images: readonly ImageSource[], options: EmbedOptions = {}): Promise<Float32Array> {
    await initTf();
    const { image: ic } = this.state.config;
    const dx = featureDim(ic);
    const d = this.dim;
    const batch = Math.max(1, options.batchSize ?? FEATURE_BATCH);
    const out = new Float32Array(images.length * d);
    const decodeBatch = (start: number) => decodePictures(images.slice(start, start + batch), ic, batch);
    let pending = images.length > 0 ? decodeBatch(0) : undefined;
    for (let start = 0; start < images.length; start += batch) {
      const pictures = await pending!;
      pending = start + batch < images.length ? decodeBatch(start + batch) : undefined;
      pending?.catch(() => {}); // surfaced when awaited; avoid an unhandled rejection meanwhile
      const features = pictureFeatures(pictures, ic, this.state.dictionary); // [b, dx]
      out.set(projectImages(this.state.space, features, pictures.length, dx, d), start * d); // [b, d]
      options.onProgress?.(start + pictures.length, images.length);
    }
    return normalizeRows(out, d);
  }

  async embedTexts(texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array> {
    await initTf();
    const { text: tc } = this.state.config;
    const d = this.dim;
    const batch = Math.max(1, options.batchSize ?? 1024);
    const out = new Float32Array(texts.length * d);
    for (let start = 0; start < texts.length; start += batch) {
      const chunk = texts.slice(start, start + batch).map((t) => textVector(t, tc, this.state.idf));
      out.set(projectTexts(this.state.space, chunk, tc.buckets, d), start * d); // [b, d]
      options.onProgress?.(start + chunk.length, texts.length);
    }
    return normalizeRows(out, d);
  }

  async save(dir: string): Promise<EmbeddedDescriptor> {
    const checksum = saveState(this.state, dir);
    return { kind: 'embedded', id: encoderId(checksum), dim: this.dim, checksum, files: { header: HEADER_FILE, weights: WEIGHTS_FILE } };
  }

  async close(): Promise<void> {}
}

/**
 * Fit the embedded encoder on image-text pairs (the KB's). Deterministic for a seed: seeded patch
 * sampling, k-means initialisation and subspace iterations; single-threaded products.
 */
export async function fitEmbeddedEncoder(
  allPairs: readonly FitPair[],
  options: { seed: number; quiet?: boolean; config?: Partial<EmbeddedConfig> },
): Promise<Encoder> {
  const config: EmbeddedConfig = { ...DEFAULT_EMBEDDED_CONFIG, ...options.config };
  if (allPairs.length < 2) throw new RetformerError(`the embedded encoder needs at least 2 image-text pairs to fit, got ${allPairs.length}`);
  await initTf();
  const rng = new Rng(options.seed);
  const pairs =
    allPairs.length <= config.maxFitPairs
      ? allPairs
      : rng
          .fork()
          .shuffle(Array.from({ length: allPairs.length }, (_, i) => i))
          .slice(0, config.maxFitPairs)
          .sort((a, b) => a - b)
          .map((i) => allPairs[i]);
  const n = pairs.length;
  const progress = startProgress('fit embedded encoder', 2 * n + 3, { unit: 'step', quiet: options.quiet });
  const pictures: Float32Array[] = [];
  for (let start = 0; start < n; start += FEATURE_BATCH) {
    const chunk = pairs.slice(start, start + FEATURE_BATCH).map((p) => p.image);
    pictures.push(...(await decodePictures(chunk, config.image)));
    progress.tick(chunk.length);
  }
  const dictionary = fitDictionary(pictures, { ...config.image }, config.dictionaryPatches, rng.fork(), config.kmeansIterations);
  progress.tick(1);
  const dx = featureDim(config.image);
  const features = new Float32Array(n * dx); // [n, dx]
  for (let start = 0; start < n; start += FEATURE_BATCH) {
    const chunk = pictures.slice(start, start + FEATURE_BATCH);
    features.set(pictureFeatures(chunk, config.image, dictionary), start * dx);
    progress.tick(chunk.length);
  }
  const texts = pairs.map((p) => p.text);
  const idf = fitIdf(texts, config.text);
  const vectors = texts.map((t) => textVector(t, config.text, idf));
  progress.tick(1);
  const space = fitSharedSpace(features, dx, vectors, config.text.buckets, config.space, rng.fork());
  progress.tick(1);
  progress.stop();
  return new EmbeddedEncoder({ config, dim: space.correlations.length, dictionary, idf, space });
}

/** Reopen a saved embedded encoder; refuses a folder whose checksum differs from the descriptor's. */
export async function loadEmbeddedEncoder(dir: string, descriptor: EncoderDescriptor): Promise<Encoder> {
  const expected = typeof descriptor.checksum === 'string' ? descriptor.checksum : undefined;
  const { state, checksum } = loadState(dir, expected);
  const id = encoderId(checksum);
  if (id !== descriptor.id) {
    throw new RetformerError(`${dir}: embedded encoder id ${id} does not match the descriptor's ${descriptor.id}: this folder holds another encoder than the one the KB was built with`);
  }
  if (state.dim !== descriptor.dim) throw new RetformerError(`${dir}: embedded encoder has dim ${state.dim}, the descriptor says ${descriptor.dim}`);
  return new EmbeddedEncoder(state, checksum);
}
