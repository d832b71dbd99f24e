import { bucketOf, validateEdges } from '../data/stats.ts';
import { RetformerError } from '../util/errors.ts';
import { type Bucket, type BucketEdges, type EvalMetrics, LIFT_BUCKETS } from './types.ts';

export interface MetricsInput {
  /** Predicted class index per test sample. */
  predictions: ArrayLike<number>; // [n]
  /** True class index per test sample. */
  labels: ArrayLike<number>; // [n]
  /** Class names in class-index order. */
  classes: readonly string[]; // [C]
  /** Training images per class (class order): decides each class's Many/Medium/Few bucket, as LIFT does. */
  trainCounts: ArrayLike<number>; // [C]
  edges?: BucketEdges;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/**
 * Top-1 metrics of a prediction run: sample-level overall accuracy; Many/Medium/Few as the mean per-class accuracy
 * of test-present classes bucketed by TRAINING count; macro-F1 over test-present classes; worst class; per-class
 * accuracy; balanced accuracy = mean per-class accuracy over test-present classes. All in percent. An empty bucket
 * reports null.
 */
export function computeMetrics(args: MetricsInput): EvalMetrics {
  const { predictions, labels, classes, trainCounts } = args;
  const edges = validateEdges(args.edges ?? LIFT_BUCKETS);
  const n = labels.length;
  const C = classes.length;
  if (predictions.length !== n) throw new RetformerError(`metrics: ${predictions.length} predictions for ${n} labels`);
  if (trainCounts.length !== C) throw new RetformerError(`metrics: ${trainCounts.length} training counts for ${C} classes`);
  if (n === 0) throw new RetformerError('metrics: no test samples');
  const support = new Float64Array(C); // [C] test samples per true class
  const predicted = new Float64Array(C); // [C] test samples predicted as each class
  const correct = new Float64Array(C); // [C] true positives
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    const p = predictions[i];
    if (!Number.isInteger(y) || y < 0 || y >= C) throw new RetformerError(`metrics: label ${y} of sample ${i} is not a class index in 0..${C - 1}`);
    if (!Number.isInteger(p)) throw new RetformerError(`metrics: prediction ${p} of sample ${i} is not an integer`);
    support[y]++;
    if (p >= 0 && p < C) predicted[p]++; // out-of-range predictions (e.g. -1 = abstain) count as wrong
    if (p === y) {
      correct[y]++;
      hits++;
    }
  }
  const perClass: Record<string, number> = {};
  const byBucket: Record<Bucket, number[]> = { many: [], medium: [], few: [] };
  const f1s: number[] = [];
  let worst = { label: '', accuracy: Number.POSITIVE_INFINITY };
  for (let c = 0; c < C; c++) {
    if (support[c] === 0) continue;
    const acc = (100 * correct[c]) / support[c];
    perClass[classes[c]] = acc;
    byBucket[bucketOf(trainCounts[c], edges)].push(acc);
    const precision = predicted[c] ? correct[c] / predicted[c] : 0;
    const recall = correct[c] / support[c];
    f1s.push(precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0);
    if (acc < worst.accuracy) worst = { label: classes[c], accuracy: acc };
  }
  return {
    overall: (100 * hits) / n,
    many: mean(byBucket.many),
    medium: mean(byBucket.medium),
    few: mean(byBucket.few),
    balanced: mean(Object.values(perClass)) ?? 0,
    macroF1: 100 * (mean(f1s) ?? 0),
    worstClass: worst,
    perClass,
    buckets: { many: byBucket.many.length, medium: byBucket.medium.length, few: byBucket.few.length },
    n,
  };
}

const cell = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(1));

/** The line printed under every metrics table: which figures are class means and which is per picture. */
export const METRICS_TABLE_NOTE =
  'Many / Medium / Few and Balanced are means of per-class accuracy (over the bucket\'s classes, over all classes); Overall is per test picture, so on a long-tailed test set it weighs the head.';

/**
 * A Markdown table `| method | Many | Medium | Few | Overall | Balanced |`, one decimal, rows in the given order,
 * followed by a blank line and METRICS_TABLE_NOTE unless `note` is false.
 */
export function formatMetricsTable(rows: { name: string; metrics: EvalMetrics }[], options: { note?: boolean } = {}): string {
  const lines = ['| method | Many | Medium | Few | Overall | Balanced |', '|---|---:|---:|---:|---:|---:|'];
  for (const { name, metrics: m } of rows) {
    lines.push(`| ${name.replace(/\|/g, '\\|')} | ${cell(m.many)} | ${cell(m.medium)} | ${cell(m.few)} | ${cell(m.overall)} | ${cell(m.balanced)} |`);
  }
  if (options.note !== false) lines.push('', METRICS_TABLE_NOTE);
  return `${lines.join('\n')}\n`;
}
