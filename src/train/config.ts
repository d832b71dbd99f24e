import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { type ModelConfig, modelConfigFields } from '../model/config.ts';
import { RetformerError } from '../util/errors.ts';

/**
 * Everything a training run is made of, in one validated object with the paper's recipe as defaults:
 * AdamW (wd 0.1), lr 5e-4, batch 256, 1 warmup epoch then cosine, label smoothing 0.1, Mixup
 * (alpha 0.8), 25 epochs, k = 32, L = 4. Saved as RUN_DIR/config.json.
 */
export const TrainConfigSchema = z
  .object({
    ...modelConfigFields,
    epochs: z.number().int().min(1).max(10000).default(25),
    batchSize: z.number().int().min(1).max(65536).default(256),
    /** Rows per forward/backward pass; gradients are accumulated up to batchSize. */
    microBatch: z.number().int().min(1).max(4096).default(128),
    lr: z.number().positive().max(10).default(5e-4),
    weightDecay: z.number().min(0).max(10).default(0.1),
    warmupEpochs: z.number().min(0).max(1000).default(1),
    /** 'ce' or 'lace' (logit-adjusted CE: + lacTau * log prior during training). */
    loss: z.enum(['ce', 'lace']).default('ce'),
    lacTau: z.number().min(0).max(10).default(1),
    labelSmoothing: z.number().min(0).max(0.99).default(0.1),
    /** Mixup Beta(alpha, alpha); 0 disables Mixup. */
    mixupAlpha: z.number().min(0).max(100).default(0.8),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
    /** ONNX Runtime intra-op threads for training; 1 gives bit-reproducible runs and leaves cores to parallel jobs. */
    threads: z.number().int().min(1).max(64).default(1),
    /** Extra neighbours searched so that k remain after the leakage guard drops the query's own pair. */
    retrievalExtra: z.number().int().min(0).max(1024).default(8),
  })
  .strict()
  .refine((c) => c.width % c.heads === 0, { message: 'width must be a multiple of heads' });

export type TrainConfig = z.infer<typeof TrainConfigSchema>;
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/** Validate a config object, naming `where` (a file or "--flags") in the one-line error. */
export function parseTrainConfig(value: unknown, where: string): TrainConfig {
  const r = TrainConfigSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new RetformerError(`${where}: invalid config at "${path}": ${issue.message}`);
  }
  return r.data;
}

/** Read a JSON config file (partial: defaults fill the rest). */
export function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new RetformerError(`${file}: config file not found`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RetformerError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RetformerError(`${file}: expected a JSON object of config fields`);
  return value as Record<string, unknown>;
}

/** Merge layers (defaults <- file <- flags), dropping undefined values, and validate. */
export function resolveTrainConfig(fileLayer: Record<string, unknown> | undefined, flagLayer: Record<string, unknown>, where: string): TrainConfig {
  const merged: Record<string, unknown> = { ...(fileLayer ?? {}) };
  for (const [key, v] of Object.entries(flagLayer)) if (v !== undefined) merged[key] = v;
  return parseTrainConfig(merged, where);
}

/** The model config part of a train config. */
export function modelConfigOf(config: TrainConfig): ModelConfig {
  const { variant, k, width, heads, layers, hidden, ffn, adaptive, tau, labelMemory, simBias, simBiasGain } = config;
  return { variant, k, width, heads, layers, hidden, ffn, adaptive, tau, labelMemory, simBias, simBiasGain };
}
