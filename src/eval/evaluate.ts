import type { Dataset } from '../data/types.ts';
import { checkImagesExist } from '../data/readers.ts';
import { EmbeddingCache, defaultCacheDir } from '../encoders/cache.ts';
import type { Encoder } from '../encoders/types.ts';
import type { Prediction, Predictor } from '../infer/types.ts';
import { inputError } from '../util/errors.ts';
import { startProgress } from '../util/progress.ts';
import { type AbstentionSummary, abstentionSummary, expectedCalibrationError, topConfidences } from './calibration.ts';
import { computeMetrics } from './metrics.ts';
import { type BucketEdges, type EvalMetrics, LIFT_BUCKETS } from './types.ts';

export interface EvaluateOptions {
  /** Long-tail bucket edges in training images per class (default LIFT's 100 / 20). */
  edges?: BucketEdges;
  /** Embedding cache folder (default `defaultCacheDir()`). */
  cacheDir?: string;
  /** Queries per `classifyEmbeddings` call. */
  batchSize?: number;
  /** Test embeddings already computed with the predictor's encoder ([n, dim], test order): skips embedding. */
  embeddings?: Float32Array;
  quiet?: boolean;
  /** Abstain where the top probability is below this (coverage and accuracy of the answered pictures in `abstention`). */
  abstainBelow?: number;
}

export interface EvaluateDetails {
  /** True class index per test sample, in the predictor's class order. */
  labels: number[];
  /** The predictor's full output per test sample (probabilities, neighbours, attention, branches, gate). */
  outputs: Prediction[];
  /** Test image embeddings [n, dim]. */
  embeddings: Float32Array;
  seconds: { embed: number; predict: number };
}

export interface EvaluateResult {
  metrics: EvalMetrics;
  /** Predicted class index per test sample, in test order. */
  predictions: number[];
  details: EvaluateDetails;
  /** Present when `abstainBelow` was given. */
  abstention?: AbstentionSummary;
}

/**
 * Class index of every test sample in `classes`. A label the model does not know is a one-line
 * error naming the test file and line.
 */
export function labelIndices(test: Dataset, classes: readonly string[], owner = "the run's"): number[] {
  const index = new Map(classes.map((c, i) => [c, i]));
  return test.samples.map((s) => {
    const c = index.get(s.label);
    if (c === undefined) {
      const shown = classes.slice(0, 5).join(', ') + (classes.length > 5 ? ', ...' : '');
      throw inputError(test.source, s.row, `label "${s.label}" is not one of ${owner} ${classes.length} classes (${shown})`);
    }
    return c;
  });
}

/** Embed the test pictures with `encoder` through the on-disk embedding cache, with a progress bar: [n, dim]. */
export async function embedTestImages(encoder: Encoder, test: Dataset, options: { cacheDir?: string; quiet?: boolean } = {}): Promise<Float32Array> {
  checkImagesExist(test);
  const cache = new EmbeddingCache(options.cacheDir ?? defaultCacheDir(), encoder);
  const paths = test.samples.map((s) => s.path);
  const progress = startProgress('embed test', paths.length, { unit: 'img', quiet: options.quiet });
  try {
    return await cache.embedImages(encoder, paths, { onProgress: (done) => progress.update(done) });
  } finally {
    progress.update(paths.length);
    progress.stop();
  }
}

/**
 * Evaluate a trained run on a test split: embed the test pictures with the run's encoder (cached),
 * classify in batches through its Predictor (retrieving from the KB as it is now), and compute the
 * long-tail metrics with the run's training counts.
 */
export async function evaluateRun(run: Predictor, test: Dataset, options: EvaluateOptions = {}): Promise<EvaluateResult> {
  const labels = labelIndices(test, run.classes);
  const t0 = performance.now();
  const embeddings = options.embeddings ?? (await embedTestImages(run.encoder, test, options)); // [n, dim]
  const t1 = performance.now();
  const dim = run.encoder.dim;
  const n = test.samples.length;
  const batchSize = options.batchSize ?? 256;
  const outputs: Prediction[] = [];
  const progress = startProgress('predict', n, { unit: 'img', quiet: options.quiet });
  try {
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      // leakage guard: a test picture never sees a KB pair made from itself (matters for a downstream KB holding the split)
      const sources = test.samples.slice(start, end).map((s) => s.path);
      const batch = await run.classifyEmbeddings(embeddings.subarray(start * dim, end * dim), { sources }); // [batch] predictions
      outputs.push(...batch);
      progress.update(end);
    }
  } finally {
    progress.stop();
  }
  const t2 = performance.now();
  const predictions = outputs.map((p) => p.label);
  const metrics = computeMetrics({
    predictions,
    labels,
    classes: run.classes,
    trainCounts: run.trainCounts,
    edges: options.edges ?? LIFT_BUCKETS,
  });
  const confidences = topConfidences(outputs);
  metrics.ece = 100 * expectedCalibrationError(
    confidences,
    predictions.map((p, i) => p === labels[i]),
  );
  const edges = options.edges ?? LIFT_BUCKETS;
  const abstention =
    options.abstainBelow === undefined
      ? undefined
      : abstentionSummary({ predictions, labels, confidences, trainCounts: run.trainCounts, edges, threshold: options.abstainBelow });
  return {
    metrics,
    predictions,
    ...(abstention ? { abstention } : {}),
    details: { labels, outputs, embeddings, seconds: { embed: (t1 - t0) / 1000, predict: (t2 - t1) / 1000 } },
  };
}
