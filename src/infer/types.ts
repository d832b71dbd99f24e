import type { Encoder, ImageSource } from '../encoders/types.ts';
import type { KnowledgeBase, Neighbour } from '../kb/types.ts';

/**
 * Inference contract (issue 12 builds it; the CLI, the evaluator and the HTTP service share it).
 * A `Predictor` is made from a trained run folder — `await Predictor.fromRun(dir, options)` in
 * src/infer/predictor.ts — and classifies images (paths or encoded bytes) or embeddings.
 */

/** One neighbour behind a prediction, with the attention the fusion gave it. */
export interface Evidence extends Neighbour {
  /** Attention weight in the fusion (mean over layers and heads, normalised to sum 1 over the k neighbours). */
  attention: number;
}

/** One query's prediction with the evidence behind it. */
export interface Prediction {
  /** Class index of the top-1 prediction. */
  label: number;
  /** Its class name. */
  className: string;
  /** Its softmax probability. */
  probability: number;
  /** Softmax probabilities over classes: [C]. */
  probs: Float32Array;
  /** The top classes, best first (5 by default). */
  top: Array<{ label: number; className: string; probability: number }>;
  /** The k neighbours used (empty for mlp-only), best first by similarity. */
  neighbours: Neighbour[];
  /** Per-neighbour attention weight, aligned with `neighbours`: [k]. */
  attention: Float32Array;
  /**
   * The two branches' logits for the predicted class, before fusion: L_I (MLP) and L_R (retrieval),
   * so a user sees how much retrieval contributed. `retrieval` is absent for mlp-only.
   */
  branches: { image: number; retrieval?: number };
  /** Adaptive variant only: the learned weight of the retrieval branch in [0, 1]. */
  gate?: number;
}

export interface ClassifyOptions {
  /** Per-query pair ids the retrieval must leave out (the leakage guard). */
  excludeIds?: readonly (ReadonlySet<string> | undefined)[];
  /**
   * Absolute image path per query: KB pairs whose `source` is the query's own picture are left out
   * (the leakage guard when the queries are training pictures held in a downstream KB: validation, audit).
   */
  sources?: readonly (string | undefined)[];
  /** How many top classes to report (default 5). */
  top?: number;
  /** Called as work proceeds: (done, total) queries. */
  onProgress?: (done: number, total: number) => void;
}

export interface PredictorOptions {
  /** Use this KB spec (folder or postgres://) instead of the one the run recorded (a moved KB). */
  kb?: string;
  /** Use this open KB (in-memory KBs, tests, the server's shared KB); must have the run's encoder id. */
  kbInstance?: KnowledgeBase;
  encoder?: Encoder;
  /** Rows per forward pass (default 128). */
  batchSize?: number;
  /** ONNX Runtime intra-op threads (default 1). */
  threads?: number;
}

export interface Predictor {
  readonly runDir: string;
  readonly classes: readonly string[];
  /** Training images per class, in class order (for long-tail buckets). */
  readonly trainCounts: readonly number[];
  /** The run's resolved training config. */
  readonly config: Readonly<Record<string, unknown>> & { variant: string; k: number; seed: number };
  readonly kb: KnowledgeBase;
  readonly encoder: Encoder;
  /** Classify images (paths or encoded bytes): embeds them with the run's encoder, then `classifyEmbeddings`. */
  classify(images: readonly ImageSource[], options?: ClassifyOptions): Promise<Prediction[]>;
  /** Classify query embeddings [n, dim] (L2-normalised, from `encoder`), retrieving from the KB as it is now. */
  classifyEmbeddings(embeddings: Float32Array, options?: ClassifyOptions): Promise<Prediction[]>;
  close(): Promise<void>;
}
