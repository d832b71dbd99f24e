import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { RetformerError } from '../../util/errors.ts';

/** Where users get a real CLIP folder in this layout (also in docs/encoders-onnx.md). */
export const CLIP_DOWNLOAD_HINT =
  'get a CLIP export in the Hugging Face ONNX layout, e.g. `git clone https://huggingface.co/Xenova/clip-vit-base-patch16` (git lfs) ' +
  'or `optimum-cli export onnx --model openai/clip-vit-base-patch16 <dir>`; see docs/encoders-onnx.md';

/** Files every CLIP folder needs besides the two ONNX towers. */
export const CONFIG_FILES = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json'] as const;

/**
 * Precision variants: the user's name -> transformers.js `dtype` and the file suffix of the
 * Hugging Face export (`onnx/vision_model<suffix>.onnx`).
 */
const VARIANTS = {
  fp32: { dtype: 'fp32', suffix: '' },
  fp16: { dtype: 'fp16', suffix: '_fp16' },
  q8: { dtype: 'q8', suffix: '_quantized' },
  int8: { dtype: 'int8', suffix: '_int8' },
  uint8: { dtype: 'uint8', suffix: '_uint8' },
  q4: { dtype: 'q4', suffix: '_q4' },
  q4f16: { dtype: 'q4f16', suffix: '_q4f16' },
  bnb4: { dtype: 'bnb4', suffix: '_bnb4' },
} as const;
const VARIANT_ALIASES: Record<string, keyof typeof VARIANTS> = { quantized: 'q8', float32: 'fp32', float16: 'fp16' };

export type VariantName = keyof typeof VARIANTS;
export interface Variant {
  name: VariantName;
  dtype: (typeof VARIANTS)[VariantName]['dtype'];
  suffix: string;
}

/** Resolve a user's variant name (`fp16`, `quantized`, `q8`, ...; default fp32) or refuse with the list. */
export function resolveVariant(name: string | undefined): Variant {
  const key = (name ?? 'fp32').trim().toLowerCase();
  const canonical = (VARIANT_ALIASES[key] ?? key) as VariantName;
  if (!Object.hasOwn(VARIANTS, canonical)) {
    throw new RetformerError(
      `unknown ONNX precision variant "${name}": use one of ${[...Object.keys(VARIANTS), ...Object.keys(VARIANT_ALIASES)].join(', ')}`,
    );
  }
  return { name: canonical, ...VARIANTS[canonical] };
}

export interface ClipFolder {
  dir: string;
  variant: Variant;
  visionFile: string;
  textFile: string;
}

/** The variants whose two tower files are both present in `dir/onnx/`. */
export function availableVariants(dir: string): VariantName[] {
  const onnxDir = join(dir, 'onnx');
  if (!existsSync(onnxDir)) return [];
  const names = new Set(readdirSync(onnxDir));
  return (Object.keys(VARIANTS) as VariantName[]).filter((v) => {
    const s = VARIANTS[v].suffix;
    return names.has(`vision_model${s}.onnx`) && names.has(`text_model${s}.onnx`);
  });
}

/**
 * Check that `dir` is a CLIP folder with everything this variant needs; the error names the first
 * missing file and where to get one. Never touches the network.
 */
export function checkClipFolder(dir: string, variantName: string | undefined): ClipFolder {
  const variant = resolveVariant(variantName);
  if (!existsSync(dir)) throw new RetformerError(`ONNX CLIP folder ${dir} does not exist: ${CLIP_DOWNLOAD_HINT}`);
  if (!statSync(dir).isDirectory()) throw new RetformerError(`ONNX CLIP folder ${dir} is not a folder: ${CLIP_DOWNLOAD_HINT}`);
  for (const f of CONFIG_FILES) {
    if (!existsSync(join(dir, f))) throw new RetformerError(`ONNX CLIP folder ${dir} is missing ${f}: ${CLIP_DOWNLOAD_HINT}`);
  }
  const visionFile = join('onnx', `vision_model${variant.suffix}.onnx`);
  const textFile = join('onnx', `text_model${variant.suffix}.onnx`);
  for (const f of [visionFile, textFile]) {
    if (existsSync(join(dir, f))) continue;
    const have = availableVariants(dir);
    const also = have.length > 0 ? ` (this folder has the variants: ${have.join(', ')}; pick one with onnx:<dir>#<variant>)` : '';
    throw new RetformerError(`ONNX CLIP folder ${dir} is missing ${f} for variant ${variant.name}${variantName !== undefined && variantName !== variant.name ? ` ("${variantName}")` : ''}${also}: ${CLIP_DOWNLOAD_HINT}`);
  }
  return { dir, variant, visionFile, textFile };
}

const towerSchema = z.looseObject({
  projection_dim: z.number().int().positive().optional(),
  max_position_embeddings: z.number().int().positive().optional(),
  image_size: z.number().int().positive().optional(),
});
const clipConfigSchema = z.looseObject({
  _name_or_path: z.string().optional(),
  model_type: z.string().optional(),
  projection_dim: z.number().int().positive().optional(),
  text_config: towerSchema.optional(),
  vision_config: towerSchema.optional(),
});

export interface ClipConfig {
  /** A readable model name: `_name_or_path` from config.json, else the folder's name. */
  name: string;
  /** Width of the shared embedding space. */
  projectionDim: number;
  /** Text context length in tokens, start and end tokens included (77 for OpenAI CLIP). */
  contextLength: number;
}

/** Read what the encoder needs from config.json; errors name the file. */
export function readClipConfig(dir: string): ClipConfig {
  const file = join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RetformerError(`${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = clipConfigSchema.safeParse(raw);
  if (!parsed.success) throw new RetformerError(`${file}: not a CLIP config: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const c = parsed.data;
  if (c.model_type !== undefined && !/clip/i.test(c.model_type)) {
    throw new RetformerError(`${file}: model_type is "${c.model_type}", expected a CLIP model ("clip")`);
  }
  const projectionDim = c.projection_dim ?? c.text_config?.projection_dim ?? c.vision_config?.projection_dim;
  if (projectionDim === undefined) throw new RetformerError(`${file}: no projection_dim, cannot tell the embedding width`);
  return {
    name: c._name_or_path?.trim() || basename(dir),
    projectionDim,
    contextLength: c.text_config?.max_position_embeddings ?? 77,
  };
}

/** Files whose bytes define the encoder's output: the two towers, the tokenizer and the preprocessing. */
export function checksumFiles(folder: ClipFolder): string[] {
  return [folder.visionFile, folder.textFile, 'tokenizer.json', 'preprocessor_config.json'];
}

/** sha256 over the files (name and bytes, streamed: real towers are hundreds of MB). Hex digest. */
export async function folderChecksum(folder: ClipFolder): Promise<string> {
  const hash = createHash('sha256');
  for (const f of checksumFiles(folder)) {
    hash.update(`${f}\0`);
    for await (const chunk of createReadStream(join(folder.dir, f))) hash.update(chunk as Buffer);
    hash.update('\0');
  }
  return hash.digest('hex');
}
