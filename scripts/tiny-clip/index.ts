import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { clipTokenizerConfig, clipTokenizerJson, END_TOKEN, START_TOKEN, trainBpe } from './bpe.ts';
import { buildTextModel, buildVisionModel, DEFAULT_TINY_CLIP_SIZES, randomTinyClipWeights, type TinyClipSizes } from './model.ts';

export { DEFAULT_TINY_CLIP_SIZES, type TinyClipSizes } from './model.ts';

/** CLIP's image normalisation constants (OpenAI CLIP, also in every HF CLIP preprocessor_config.json). */
export const CLIP_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];

export interface TinyClipOptions {
  seed: number;
  sizes: TinyClipSizes;
  /** BPE merges to learn (fewer if the word list runs out of repeated pairs). */
  merges: number;
  /** Extra precision variants to write beside fp32 (`onnx/*_fp16.onnx`). */
  fp16: boolean;
  /** The model name written to config.json (`_name_or_path`). */
  name: string;
}

export const DEFAULT_TINY_CLIP_OPTIONS: TinyClipOptions = {
  seed: 1234,
  sizes: DEFAULT_TINY_CLIP_SIZES,
  merges: 300,
  fp16: true,
  name: 'retformer/tiny-clip-random',
};

export interface TinyClipSummary {
  dir: string;
  files: string[];
  vocabSize: number;
  merges: number;
}

/** Words for the tokenizer: the emoji keyword list the project already depends on, split into letter/digit words. */
function trainingWords(): string[] {
  const require = createRequire(import.meta.url);
  const lib = require('emojilib') as Record<string, string[]>;
  const words: string[] = [];
  for (const keywords of Object.values(lib)) {
    for (const k of keywords) for (const w of k.toLowerCase().split(/[^a-z0-9]+/)) if (w) words.push(w);
  }
  return words;
}

/**
 * Write a complete tiny CLIP in the Hugging Face ONNX layout: config.json, preprocessor_config.json,
 * tokenizer.json, tokenizer_config.json, special_tokens_map.json, onnx/vision_model.onnx,
 * onnx/text_model.onnx (and the `_fp16` variants). Deterministic for a given seed.
 */
export function writeTinyClip(outDir: string, options: Partial<TinyClipOptions> = {}): TinyClipSummary {
  const opts = { ...DEFAULT_TINY_CLIP_OPTIONS, ...options };
  const s = opts.sizes;
  if (s.imageSize % s.patchSize !== 0) throw new Error('tiny-clip: imageSize must be a multiple of patchSize');
  if (s.hidden % s.heads !== 0) throw new Error('tiny-clip: hidden must be a multiple of heads');
  const dir = resolve(outDir);
  mkdirSync(join(dir, 'onnx'), { recursive: true });

  const bpe = trainBpe(trainingWords(), opts.merges);
  const vocabSize = bpe.vocab.size;
  const startId = bpe.vocab.get(START_TOKEN)!;
  const endId = bpe.vocab.get(END_TOKEN)!;
  const weights = randomTinyClipWeights(s, vocabSize, opts.seed);

  const files: string[] = [];
  const write = (name: string, data: string | Uint8Array) => {
    writeFileSync(join(dir, name), data);
    files.push(name);
  };
  const json = (name: string, value: unknown) => write(name, `${JSON.stringify(value, null, 2)}\n`);

  const tower = { hidden_size: s.hidden, intermediate_size: s.intermediate, num_attention_heads: s.heads, hidden_act: 'quick_gelu', layer_norm_eps: s.layerNormEps, projection_dim: s.projectionDim };
  json('config.json', {
    _name_or_path: opts.name,
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: s.projectionDim,
    logit_scale_init_value: 2.6592,
    text_config: { model_type: 'clip_text_model', ...tower, num_hidden_layers: s.textLayers, vocab_size: vocabSize, max_position_embeddings: s.contextLength, bos_token_id: startId, eos_token_id: endId, pad_token_id: endId },
    vision_config: { model_type: 'clip_vision_model', ...tower, num_hidden_layers: s.visionLayers, image_size: s.imageSize, patch_size: s.patchSize, num_channels: 3 },
    retformer_tiny_clip: { seed: opts.seed, note: 'random weights, for tests only' },
  });
  json('preprocessor_config.json', {
    image_processor_type: 'CLIPImageProcessor',
    do_resize: true,
    size: { shortest_edge: s.imageSize },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: s.imageSize, width: s.imageSize },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: CLIP_IMAGE_MEAN,
    image_std: CLIP_IMAGE_STD,
    do_convert_rgb: true,
  });
  json('tokenizer.json', clipTokenizerJson(bpe));
  json('tokenizer_config.json', clipTokenizerConfig(s.contextLength));
  json('special_tokens_map.json', { bos_token: START_TOKEN, eos_token: END_TOKEN, pad_token: END_TOKEN, unk_token: END_TOKEN });

  const precisions = opts.fp16 ? (['fp32', 'fp16'] as const) : (['fp32'] as const);
  for (const p of precisions) {
    const suffix = p === 'fp32' ? '' : '_fp16';
    write(`onnx/vision_model${suffix}.onnx`, buildVisionModel(weights, s, p));
    write(`onnx/text_model${suffix}.onnx`, buildTextModel(weights, s, p));
  }
  return { dir, files, vocabSize, merges: bpe.merges.length };
}
