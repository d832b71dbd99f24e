import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  AutoImageProcessor,
  AutoTokenizer,
  CLIPTextModelWithProjection,
  CLIPVisionModelWithProjection,
  env,
  type ImageProcessor,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  RawImage,
  Tensor,
} from '@huggingface/transformers';
import { env as settings } from '../../util/env.ts';
import { RetformerError } from '../../util/errors.ts';
import { writeJsonAtomic } from '../../util/fs.ts';
import { startProgress } from '../../util/progress.ts';
import { decodeImage } from '../image.ts';
import type { EmbedOptions, Encoder, EncoderDescriptor, ImageSource } from '../types.ts';
import { normalizeRows } from '../vector.ts';
import { type ClipConfig, type ClipFolder, checkClipFolder, folderChecksum, readClipConfig } from './layout.ts';

export { availableVariants, CLIP_DOWNLOAD_HINT, checkClipFolder, readClipConfig, resolveVariant } from './layout.ts';

/** Execution device: `cpu` everywhere; `cuda` needs onnxruntime-node installed with its CUDA binaries (docs/encoders-onnx.md). */
export type OnnxDevice = 'cpu' | 'cuda';

export interface OnnxClipOptions {
  /** Precision variant (fp32 default, fp16, quantized/q8, int8, uint8, q4, ...). */
  variant?: string;
  quiet?: boolean;
  /** Default: $RETFORMER_ORT_DEVICE, else cpu. */
  device?: OnnxDevice;
  /** onnxruntime intra-op threads. Default: $RETFORMER_ORT_THREADS, else onnxruntime's choice (all cores). */
  threads?: number;
}

/** What a KB manifest stores for this encoder; `reopenOnnxClipEncoder` needs nothing else. */
export interface OnnxClipDescriptor extends EncoderDescriptor {
  kind: 'onnx';
  modelDir: string;
  variant: string;
  checksum: string;
}

/** Images decoded at once ahead of the model (sharp decodes on libuv's thread pool). */
const DEFAULT_IMAGE_BATCH = 16;
const DEFAULT_TEXT_BATCH = 64;
/** Inputs at least this large get a progress bar when the caller passes no onProgress. */
const PROGRESS_BAR_MIN_ITEMS = 256;

/** transformers.js must never reach for the network or write a cache: local folders only. */
function lockTransformersToLocalFiles(): void {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.useBrowserCache = false;
  // fatal only: load errors reach the user as one line (our message quotes ONNX Runtime's), not as
  // ONNX Runtime's multi-line log blocks on stderr first
  env.logLevel = 50;
  (env.backends.onnx as { setLogLevel?: (level: number) => void }).setLogLevel?.(50);
}

function resolveDevice(option: OnnxDevice | undefined): OnnxDevice {
  const d = option ?? settings.ortDevice() ?? 'cpu';
  if (d !== 'cpu' && d !== 'cuda') throw new RetformerError(`RETFORMER_ORT_DEVICE must be "cpu" or "cuda", got "${d}"`);
  return d;
}

function resolveThreads(option: number | undefined): number | undefined {
  const threads = settings.ortThreads();
  const raw = option ?? (threads ? Number(threads) : undefined);
  if (raw === undefined) return undefined;
  if (!Number.isInteger(raw) || raw < 1) throw new RetformerError(`RETFORMER_ORT_THREADS must be a positive integer, got "${raw}"`);
  return raw;
}

function batches(n: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let start = 0; start < n; start += size) out.push([start, Math.min(n, start + size)]);
  return out;
}

/**
 * A frozen CLIP from a local Hugging Face ONNX folder. Preprocessing (shortest-edge resize with the
 * configured resampling, centre crop, CLIP mean/std) and BPE tokenisation come from
 * transformers.js, read from the folder's own config files; the towers run on onnxruntime-node.
 */
export class OnnxClipEncoder implements Encoder {
  readonly id: string;
  readonly dim: number;

  constructor(
    private readonly folder: ClipFolder,
    private readonly config: ClipConfig,
    private readonly checksum: string,
    private readonly processor: ImageProcessor,
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly vision: PreTrainedModel,
    private readonly text: PreTrainedModel,
    private readonly quiet: boolean,
  ) {
    this.dim = config.projectionDim;
    this.id = `onnx:${config.name}:${folder.variant.name}:${checksum.slice(0, 16)}`;
  }

  /** Decode + preprocess one batch: pixel_values [b, 3, S, S]. Decoding runs all images of the batch at once. */
  private async preprocess(images: readonly ImageSource[]): Promise<Tensor> {
    const raws = await Promise.all(
      images.map(async (src) => {
        const img = await decodeImage(src); // RGB, alpha flattened on white
        return new RawImage(img.data, img.width, img.height, 3);
      }),
    );
    const { pixel_values } = (await this.processor(raws)) as { pixel_values: Tensor };
    return pixel_values;
  }

  /** Exposed for tests: the exact model input for these images. */
  async pixelValues(images: readonly ImageSource[]): Promise<{ dims: number[]; data: Float32Array }> {
    const t = await this.preprocess(images);
    return { dims: [...t.dims], data: t.data as Float32Array };
  }

  /** The caller's progress callback, or a progress bar of our own for large inputs. */
  private progressFor(label: string, total: number, options: EmbedOptions): { report: (done: number, total: number) => void; stop: () => void } {
    if (options.onProgress) return { report: options.onProgress, stop() {} };
    const bar = total >= PROGRESS_BAR_MIN_ITEMS ? startProgress(label, total, { unit: 'item', quiet: this.quiet }) : undefined;
    return { report: (done) => bar?.update(done), stop: () => bar?.stop() };
  }

  async embedImages(images: readonly ImageSource[], options: EmbedOptions = {}): Promise<Float32Array> {
    const progress = this.progressFor('embed images (onnx clip)', images.length, options);
    try {
      return await this.embedImageBatches(images, options, progress.report);
    } finally {
      progress.stop();
    }
  }

  private async embedImageBatches(images: readonly ImageSource[], options: EmbedOptions, report: (done: number, total: number) => void): Promise<Float32Array> {
    const out = new Float32Array(images.length * this.dim); // [n, dim]
    const spans = batches(images.length, options.batchSize ?? DEFAULT_IMAGE_BATCH);
    // Pipeline: batch i+1 decodes (thread pool) while batch i runs through the model.
    let pending = spans.length > 0 ? this.preprocess(images.slice(spans[0][0], spans[0][1])) : undefined;
    for (let b = 0; b < spans.length; b++) {
      const pixels = await pending!; // [batch, 3, S, S]
      const [start, end] = spans[b];
      pending = b + 1 < spans.length ? this.preprocess(images.slice(spans[b + 1][0], spans[b + 1][1])) : undefined;
      pending?.catch(() => {}); // surfaced when awaited
      const { image_embeds } = (await this.vision({ pixel_values: pixels })) as { image_embeds: Tensor };
      this.copyRows(image_embeds, out, start, end, 'image_embeds');
      report(end, images.length);
    }
    return normalizeRows(out, this.dim);
  }

  /**
   * CLIP tokenisation: start + BPE tokens + end, at most `contextLength` ids. Long texts keep the
   * end token (as the reference tokenizer does): the text tower pools at it.
   */
  tokenize(texts: readonly string[]): { ids: bigint[][]; length: number } {
    const c = this.config.contextLength;
    const ids = texts.map((t) => {
      const full = this.tokenizer.encode(t);
      return full.length <= c ? full : [...full.slice(0, c - 1), full[full.length - 1]];
    });
    const length = Math.max(1, ...ids.map((r) => r.length));
    const pad = this.tokenizer.pad_token_id ?? ids[0]?.[ids[0].length - 1] ?? 0;
    return { ids: ids.map((r) => [...r, ...new Array(length - r.length).fill(pad)].map((x) => BigInt(x))), length };
  }

  async embedTexts(texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array> {
    const progress = this.progressFor('embed texts (onnx clip)', texts.length, options);
    try {
      return await this.embedTextBatches(texts, options, progress.report);
    } finally {
      progress.stop();
    }
  }

  private async embedTextBatches(texts: readonly string[], options: EmbedOptions, report: (done: number, total: number) => void): Promise<Float32Array> {
    const out = new Float32Array(texts.length * this.dim); // [n, dim]
    for (const [start, end] of batches(texts.length, options.batchSize ?? DEFAULT_TEXT_BATCH)) {
      const { ids, length } = this.tokenize(texts.slice(start, end));
      const input_ids = new Tensor('int64', BigInt64Array.from(ids.flat()), [end - start, length]); // [batch, T]
      const { text_embeds } = (await this.text({ input_ids })) as { text_embeds: Tensor };
      this.copyRows(text_embeds, out, start, end, 'text_embeds');
      report(end, texts.length);
    }
    return normalizeRows(out, this.dim);
  }

  private copyRows(t: Tensor, out: Float32Array, start: number, end: number, name: string): void {
    const want = [end - start, this.dim];
    if (t.dims.length !== 2 || t.dims[0] !== want[0] || t.dims[1] !== want[1]) {
      throw new RetformerError(
        `${this.folder.dir}: the model's ${name} has shape [${t.dims.join(', ')}], expected [${want.join(', ')}] (projection_dim in config.json)`,
      );
    }
    const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
    out.set(data, start * this.dim);
  }

  descriptor(): OnnxClipDescriptor {
    return { kind: 'onnx', id: this.id, dim: this.dim, modelDir: this.folder.dir, variant: this.folder.variant.name, checksum: this.checksum };
  }

  async save(dir: string): Promise<OnnxClipDescriptor> {
    const d = this.descriptor();
    mkdirSync(dir, { recursive: true });
    writeJsonAtomic(join(dir, 'onnx-encoder.json'), d); // small: where the model lives, not the model
    return d;
  }

  async close(): Promise<void> {
    await Promise.all([this.vision.dispose(), this.text.dispose()]);
  }
}

async function loadFromFolder(folder: ClipFolder, options: OnnxClipOptions, expectedChecksum?: string): Promise<OnnxClipEncoder> {
  const config = readClipConfig(folder.dir);
  const checksum = await folderChecksum(folder);
  if (expectedChecksum !== undefined && checksum !== expectedChecksum) {
    throw new RetformerError(
      `ONNX CLIP folder ${folder.dir} changed since this KB was built (checksum ${checksum.slice(0, 16)} != ${expectedChecksum.slice(0, 16)}): ` +
        'restore the original model files or rebuild the KB with the new model',
    );
  }
  lockTransformersToLocalFiles();
  const device = resolveDevice(options.device);
  const threads = resolveThreads(options.threads);
  const modelOptions = {
    local_files_only: true,
    dtype: folder.variant.dtype,
    device,
    ...(threads === undefined ? {} : { session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 } }),
  };
  try {
    const [processor, tokenizer, vision, text] = await Promise.all([
      AutoImageProcessor.from_pretrained(folder.dir, { local_files_only: true }),
      AutoTokenizer.from_pretrained(folder.dir, { local_files_only: true }),
      CLIPVisionModelWithProjection.from_pretrained(folder.dir, modelOptions),
      CLIPTextModelWithProjection.from_pretrained(folder.dir, modelOptions),
    ]);
    return new OnnxClipEncoder(folder, config, checksum, processor, tokenizer, vision, text, options.quiet ?? false);
  } catch (err) {
    if (err instanceof RetformerError) throw err;
    const msg = ((err as Error).message ?? String(err)).split('\n')[0];
    const hint = device === 'cuda' ? ' (the CUDA provider needs onnxruntime-node installed with onnxruntime-node-install=cuda12; see docs/encoders-onnx.md)' : '';
    throw new RetformerError(`ONNX CLIP folder ${folder.dir} (variant ${folder.variant.name}, device ${device}): cannot load: ${msg}${hint}`, { cause: err });
  }
}

/** Load a CLIP from a local Hugging Face ONNX folder (`--encoder onnx:<dir>[#variant]`). */
export async function loadOnnxClipEncoder(dir: string, options: OnnxClipOptions = {}): Promise<OnnxClipEncoder> {
  return loadFromFolder(checkClipFolder(resolve(dir), options.variant), options);
}

const descriptorFields = ['modelDir', 'variant', 'checksum'] as const;

/** Reopen the encoder a KB was built with; refuses if its folder is gone or its files changed. */
export async function reopenOnnxClipEncoder(descriptor: EncoderDescriptor, options: Omit<OnnxClipOptions, 'variant'> = {}): Promise<OnnxClipEncoder> {
  for (const f of descriptorFields) {
    if (typeof descriptor[f] !== 'string') throw new RetformerError(`saved ONNX encoder descriptor has no ${f} (id ${descriptor.id})`);
  }
  const d = descriptor as OnnxClipDescriptor;
  if (!existsSync(d.modelDir)) {
    throw new RetformerError(`this KB was built with the ONNX CLIP in ${d.modelDir}, which is gone: put the folder back there, or rebuild the KB`);
  }
  const enc = await loadFromFolder(checkClipFolder(d.modelDir, d.variant), options, d.checksum);
  if (enc.id !== d.id || enc.dim !== d.dim) {
    await enc.close();
    throw new RetformerError(`ONNX CLIP in ${d.modelDir} reopened as ${enc.id} (dim ${enc.dim}), but the KB expects ${d.id} (dim ${d.dim})`);
  }
  return enc;
}
