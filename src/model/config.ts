import { z } from 'zod';

/** Model variants (ablations and the RAC-like baseline) selectable with --variant. */
export const VARIANTS = ['full', 'no-text', 'no-image', 'image-only', 'mlp-only'] as const;
export type Variant = (typeof VARIANTS)[number];

/**
 * Label memory (beyond the paper; RAC keeps labels in its memory): each neighbour token gets an
 * embedding of the neighbour's label added to its image and text streams (a KB pair without a
 * label, or with one outside the model's classes, adds nothing; the query's own slot stays zero).
 * 'table': a free [C, d] table per stream; 'tied': the rows of the classifier's output weights
 * (head.w, the I and T halves) times a learned gain per stream, so that a class seen rarely in
 * training still has the direction the head reads as that class. 'vote': 'tied', and L_R also gets
 * VOTE_GAIN x a learned gain (from 1) x the neighbours' labels weighted by the last layer's
 * attention of the query token (mean over heads and both directions): a kNN vote whose weights the
 * model learns. 'off': the paper's model.
 */
export const LABEL_MEMORY = ['off', 'table', 'tied', 'vote'] as const;

/** The default gain of the similarity bias (simBiasGain): the learned scale starts at 0 and moves at the optimizer's pace, cosines differ by tenths. */
export const SIM_BIAS_GAIN_DEFAULT = 10;

/** The fixed factor of the 'vote' label memory's learned gain (a vote is a share in [0, 1], logits are larger). */
export const VOTE_GAIN = 5;
export type LabelMemory = (typeof LABEL_MEMORY)[number];

/** Architecture of the RetFormer model (the trainable head on top of frozen embeddings). */
export const modelConfigFields = {
    variant: z.enum(VARIANTS).default('full'),
    /** Neighbours per query. */
    k: z.number().int().min(1).max(256).default(32),
    /** Cross-fusion width d (each stream is projected from the encoder dim D to d). */
    width: z.number().int().min(8).max(1024).default(64),
    heads: z.number().int().min(1).max(32).default(4),
    /** Cross-fusion layers L. */
    layers: z.number().int().min(1).max(16).default(4),
    /** Hidden width of the MLP branch. */
    hidden: z.number().int().min(8).max(8192).default(512),
    /** Optional per-stream feed-forward block after each cross-attention layer. */
    ffn: z.boolean().default(false),
    /** Beyond the paper: per-query gate between the branches and a null key/value token in every attention. */
    adaptive: z.boolean().default(false),
    /** Fusion scale: f = tau/2 (L_I + L_R). */
    tau: z.number().positive().default(1),
    /** Neighbour-label embeddings added to the neighbour tokens (see LABEL_MEMORY); runs saved without it load as 'off'. */
    labelMemory: z.enum(LABEL_MEMORY).default('off'),
    /**
     * Beyond the paper: every attention adds a learned per-head scale (initially 0) times
     * simBiasGain times the query-neighbour cosine similarity to the logits of each neighbour key
     * (a `neighbourSims` input [n, k]; the query's own key gets 0). Runs saved without it load as false.
     */
    simBias: z.boolean().default(false),
    /**
     * The similarity bias's fixed gain. AdamW moves the learned scale by about lr per step whatever
     * its gradient, so the gain sets how far the bias can go in a run: at the emoji demo's recipe the
     * scales end near 0.3 with gain 10 (a bias of ~3 logits) and the bias pays more with gain 60
     * (docs/results.md). Runs saved without it load as SIM_BIAS_GAIN.
     */
    simBiasGain: z.number().positive().max(10000).default(SIM_BIAS_GAIN_DEFAULT),
};

export const ModelConfigSchema = z
  .object(modelConfigFields)
  .refine((c) => c.width % c.heads === 0, { message: 'width must be a multiple of heads' });

export type ModelConfig = z.infer<typeof ModelConfigSchema>;

/** Sizes fixed by the data rather than by the config. */
export interface ModelDims {
  /** Encoder embedding dim D. */
  inputDim: number;
  /** Number of classes C. */
  classes: number;
}

export function usesRetrieval(config: Pick<ModelConfig, 'variant'>): boolean {
  return config.variant !== 'mlp-only';
}

/** Whether the model reads the query-neighbour similarities (a `neighbourSims` input). */
export function usesSims(config: Pick<ModelConfig, 'variant' | 'simBias'>): boolean {
  return usesRetrieval(config) && config.simBias;
}

/** Whether the model reads its neighbours' labels (a `neighbourLabels` input). */
export function usesLabels(config: Pick<ModelConfig, 'variant' | 'labelMemory'>): boolean {
  return usesRetrieval(config) && config.labelMemory !== 'off';
}
