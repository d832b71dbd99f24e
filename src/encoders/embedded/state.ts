/**
 * The fitted, frozen state of the embedded encoder and its on-disk form inside a KB's encoder folder:
 *   embedded.json  header: format, configuration, array names and lengths, checksum
 *   embedded.f32   the arrays back to back, little-endian float32
 * The checksum is the SHA-256 of the canonical header (without the checksum) followed by the
 * array bytes; the encoder id embeds its first 16 hex digits.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { RetformerError } from '../../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.ts';
import type { SharedSpace, SharedSpaceConfig } from './cca.ts';
import type { ImageFeatureConfig, PatchDictionary } from './image-features.ts';
import type { TextFeatureConfig } from './text-features.ts';

export const HEADER_FILE = 'embedded.json';
export const WEIGHTS_FILE = 'embedded.f32';
export const FORMAT = 'retformer-embedded-encoder/1';

export interface EmbeddedConfig {
  image: ImageFeatureConfig;
  text: TextFeatureConfig;
  space: SharedSpaceConfig;
  /** Patches sampled from the KB pictures to fit the dictionary. */
  dictionaryPatches: number;
  kmeansIterations: number;
  /** Larger KBs are fitted on a seeded sample of this many pairs (bounds memory and time). */
  maxFitPairs: number;
}

export interface EmbeddedState {
  config: EmbeddedConfig;
  dim: number;
  dictionary: PatchDictionary;
  idf: Float32Array;
  space: SharedSpace;
}

const configSchema = z.object({
  image: z.object({
    size: z.number().int().min(8),
    thumb: z.number().int().min(1),
    histBins: z.number().int().min(1),
    hogCells: z.number().int().min(1),
    hogOrientations: z.number().int().min(1),
    patch: z.number().int().min(2),
    stride: z.number().int().min(1),
    centroids: z.number().int().min(1),
    weights: z.object({ thumb: z.number(), hist: z.number(), hog: z.number(), patches: z.number() }),
  }),
  text: z.object({
    buckets: z.number().int().min(1),
    charGrams: z.array(z.number().int().min(1)).readonly(),
    weights: z.object({ word: z.number(), bigram: z.number(), char: z.number() }),
  }),
  space: z.object({
    imageRank: z.number().int().min(1),
    textRank: z.number().int().min(1),
    ridge: z.number().min(0).max(1),
    dim: z.number().int().min(1),
    power: z.number(),
  }),
  dictionaryPatches: z.number().int().min(1),
  kmeansIterations: z.number().int().min(0),
  maxFitPairs: z.number().int().min(2),
});

const headerSchema = z.object({
  format: z.literal(FORMAT),
  dim: z.number().int().min(1),
  config: configSchema,
  arrays: z.array(z.object({ name: z.string(), length: z.number().int().min(0) })),
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
});

type ArrayName = 'encode' | 'bias' | 'idf' | 'imageMean' | 'imageProjection' | 'textMean' | 'textProjection' | 'correlations';
const ARRAY_ORDER: readonly ArrayName[] = ['encode', 'bias', 'idf', 'imageMean', 'imageProjection', 'textMean', 'textProjection', 'correlations'];

function arraysOf(s: EmbeddedState): Record<ArrayName, Float32Array> {
  return { encode: s.dictionary.encode, bias: s.dictionary.bias, idf: s.idf, ...s.space };
}

/** JSON with object keys sorted at every level, so the checksum does not depend on key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function checksumOf(headerWithoutChecksum: object, bytes: Uint8Array): string {
  return createHash('sha256').update(canonicalJson(headerWithoutChecksum)).update(bytes).digest('hex');
}

function serialise(s: EmbeddedState): { header: z.infer<typeof headerSchema>; bytes: Uint8Array } {
  const arrays = arraysOf(s);
  const total = ARRAY_ORDER.reduce((acc, n) => acc + arrays[n].length, 0);
  const all = new Float32Array(total);
  let off = 0;
  for (const n of ARRAY_ORDER) {
    all.set(arrays[n], off);
    off += arrays[n].length;
  }
  const bytes = new Uint8Array(all.buffer); // little-endian on every platform Node runs on
  const base = { format: FORMAT, dim: s.dim, config: s.config, arrays: ARRAY_ORDER.map((name) => ({ name, length: arrays[name].length })) } as const;
  return { header: { ...base, checksum: checksumOf(base, bytes) }, bytes };
}

export function encoderId(checksum: string): string {
  return `embedded-${checksum.slice(0, 16)}`;
}

/** The id a state gets once saved (same for the fitted and the reloaded encoder). */
export function stateChecksum(s: EmbeddedState): string {
  return serialise(s).header.checksum;
}

export function saveState(s: EmbeddedState, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const { header, bytes } = serialise(s);
  writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
  writeJsonAtomic(join(dir, HEADER_FILE), header);
  return header.checksum;
}

/** Read a saved state; refuses (one line, naming the file) a missing, malformed or tampered one, or one whose checksum is not `expected`. */
export function loadState(dir: string, expectedChecksum?: string): { state: EmbeddedState; checksum: string } {
  const headerPath = join(dir, HEADER_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  for (const p of [headerPath, weightsPath]) if (!existsSync(p)) throw new RetformerError(`${p}: embedded encoder file missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(headerPath, 'utf8'));
  } catch (err) {
    throw new RetformerError(`${headerPath}: not valid JSON: ${(err as Error).message}`);
  }
  const parsed = headerSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`${headerPath}: not an embedded encoder header (${issue.path.join('.') || 'root'}: ${issue.message})`);
  }
  const header = parsed.data;
  const buf = readFileSync(weightsPath);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const { checksum, ...base } = header;
  const actual = checksumOf(base, bytes);
  if (actual !== checksum) throw new RetformerError(`${weightsPath}: embedded encoder weights are corrupt or were changed (checksum ${actual.slice(0, 16)} != ${checksum.slice(0, 16)} in ${HEADER_FILE})`);
  if (expectedChecksum !== undefined && actual !== expectedChecksum) {
    throw new RetformerError(`${weightsPath}: embedded encoder checksum ${actual.slice(0, 16)} does not match the descriptor's ${expectedChecksum.slice(0, 16)}: this folder holds another encoder than the one the KB was built with`);
  }
  const expectedLength = header.arrays.reduce((a, x) => a + x.length, 0) * 4;
  if (bytes.byteLength !== expectedLength || header.arrays.map((a) => a.name).join() !== ARRAY_ORDER.join()) {
    throw new RetformerError(`${weightsPath}: embedded encoder weights have ${bytes.byteLength} bytes, the header describes ${expectedLength}`);
  }
  const all = new Float32Array(bytes.slice().buffer);
  const arrays = {} as Record<ArrayName, Float32Array>;
  let off = 0;
  header.arrays.forEach((a, i) => {
    arrays[ARRAY_ORDER[i]] = all.slice(off, off + a.length);
    off += a.length;
  });
  const state: EmbeddedState = {
    config: header.config,
    dim: header.dim,
    dictionary: { encode: arrays.encode, bias: arrays.bias },
    idf: arrays.idf,
    space: {
      imageMean: arrays.imageMean,
      imageProjection: arrays.imageProjection,
      textMean: arrays.textMean,
      textProjection: arrays.textProjection,
      correlations: arrays.correlations,
    },
  };
  return { state, checksum: actual };
}
