import { bucketOf } from '../data/stats.ts';
import { RetformerError } from '../util/errors.ts';
import type { Bucket, BucketEdges } from './types.ts';

/**
 * Calibration and abstention from top-1 confidences: expected calibration error (ECE), the
 * reliability diagram behind it, and the coverage-accuracy curve of "answer only when the top
 * probability is at least P". Confidences are the probability of the predicted class, in [0, 1].
 */

/** The number of equal-width confidence bins ECE uses by default (Guo et al. 2017). */
export const ECE_BINS = 15;

export interface ReliabilityBin {
  /** Confidence range (lower, upper]; the first bin also holds confidence 0. */
  lower: number;
  upper: number;
  /** Predictions whose confidence falls in the bin. */
  count: number;
  /** Share of them that were right, in [0, 1]; null for an empty bin. */
  accuracy: number | null;
  /** Their mean confidence, in [0, 1]; null for an empty bin. */
  confidence: number | null;
}

function checkInputs(confidences: ArrayLike<number>, correct: ArrayLike<boolean>): void {
  if (confidences.length !== correct.length) throw new RetformerError(`calibration: ${confidences.length} confidences for ${correct.length} outcomes`);
  for (let i = 0; i < confidences.length; i++) {
    const c = confidences[i];
    if (!(c >= 0 && c <= 1)) throw new RetformerError(`calibration: confidence ${c} of sample ${i} is not in [0, 1]`);
  }
}

/** Bin index of a confidence among `bins` equal-width bins over (0, 1]: (i/B, (i+1)/B], with 0 in the first bin. */
function binOf(confidence: number, bins: number): number {
  return Math.min(bins - 1, Math.max(0, Math.ceil(confidence * bins) - 1));
}

/** The reliability diagram: per equal-width confidence bin, how many predictions, their accuracy and mean confidence. */
export function reliabilityBins(confidences: ArrayLike<number>, correct: ArrayLike<boolean>, bins = ECE_BINS): ReliabilityBin[] {
  checkInputs(confidences, correct);
  if (!Number.isInteger(bins) || bins < 1) throw new RetformerError(`calibration: bins must be a positive integer, got ${bins}`);
  const count = new Float64Array(bins);
  const hits = new Float64Array(bins);
  const confSum = new Float64Array(bins);
  for (let i = 0; i < confidences.length; i++) {
    const b = binOf(confidences[i], bins);
    count[b]++;
    confSum[b] += confidences[i];
    if (correct[i]) hits[b]++;
  }
  return Array.from({ length: bins }, (_, b) => ({
    lower: b / bins,
    upper: (b + 1) / bins,
    count: count[b],
    accuracy: count[b] > 0 ? hits[b] / count[b] : null,
    confidence: count[b] > 0 ? confSum[b] / count[b] : null,
  }));
}

/** Expected calibration error in [0, 1]: sum over bins of (bin share) x |accuracy - mean confidence|. */
export function expectedCalibrationError(confidences: ArrayLike<number>, correct: ArrayLike<boolean>, bins = ECE_BINS): number {
  const n = confidences.length;
  if (n === 0) throw new RetformerError('calibration: no predictions');
  let ece = 0;
  for (const bin of reliabilityBins(confidences, correct, bins)) {
    if (bin.count === 0) continue;
    ece += (bin.count / n) * Math.abs(bin.accuracy! - bin.confidence!);
  }
  return ece;
}

export interface CoveragePoint {
  /** Answer when the top probability is at least this. */
  threshold: number;
  /** Share of the pictures answered, in [0, 1]. */
  coverage: number;
  /** Share of the answered pictures that were right, in [0, 1]; null when nothing is answered. */
  accuracy: number | null;
  answered: number;
  /** Pictures in the scope (answered or not). */
  total: number;
}

/** Coverage and accuracy of the answered pictures when everything below `threshold` abstains. */
export function selectiveAccuracy(confidences: ArrayLike<number>, correct: ArrayLike<boolean>, threshold: number): CoveragePoint {
  checkInputs(confidences, correct);
  let answered = 0;
  let hits = 0;
  for (let i = 0; i < confidences.length; i++) {
    if (confidences[i] < threshold) continue;
    answered++;
    if (correct[i]) hits++;
  }
  const n = confidences.length;
  return { threshold, coverage: n > 0 ? answered / n : 0, accuracy: answered > 0 ? hits / answered : null, answered, total: n };
}

/**
 * The coverage-accuracy curve: answering the `answered` most confident pictures, for `points`
 * evenly spaced coverages from 1/points to 1 (ties in confidence are answered together, so a point
 * may cover a little more than asked). Each point carries the confidence threshold that gives it.
 */
export function coverageAccuracyCurve(confidences: ArrayLike<number>, correct: ArrayLike<boolean>, points = 20): CoveragePoint[] {
  checkInputs(confidences, correct);
  const n = confidences.length;
  if (n === 0) return [];
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => confidences[b] - confidences[a] || a - b);
  const hitsUpTo = new Float64Array(n + 1); // [n + 1] right answers among the first i
  for (let i = 0; i < n; i++) hitsUpTo[i + 1] = hitsUpTo[i] + (correct[order[i]] ? 1 : 0);
  const out: CoveragePoint[] = [];
  for (let p = 1; p <= points; p++) {
    let answered = Math.max(1, Math.round((p / points) * n));
    const threshold = confidences[order[answered - 1]];
    while (answered < n && confidences[order[answered]] === threshold) answered++; // a threshold answers all its ties
    if (out.length > 0 && out[out.length - 1].answered === answered) continue;
    out.push({ threshold, coverage: answered / n, accuracy: hitsUpTo[answered] / answered, answered, total: n });
  }
  return out;
}

/** Top-1 probability of each prediction (its confidence). */
export function topConfidences(predictions: readonly { label: number; probs: ArrayLike<number> }[]): number[] {
  return predictions.map((p) => p.probs[p.label]);
}

/** Predictions with those below `threshold` replaced by -1 (abstain); metrics count an abstention as wrong. */
export function abstainBelow(predictions: readonly number[], confidences: ArrayLike<number>, threshold: number): number[] {
  return predictions.map((p, i) => (confidences[i] < threshold ? -1 : p));
}

/** Summary of calibration for one method: ECE (percent) and the reliability bins. */
export interface CalibrationSummary {
  /** Expected calibration error in percent (15 bins). */
  ece: number;
  bins: ReliabilityBin[];
}

export function calibrationSummary(confidences: ArrayLike<number>, correct: ArrayLike<boolean>, bins = ECE_BINS): CalibrationSummary {
  return { ece: 100 * expectedCalibrationError(confidences, correct, bins), bins: reliabilityBins(confidences, correct, bins) };
}

/** Coverage and accuracy of the answered pictures, overall and per long-tail bucket (per picture, not per class). */
export interface AbstentionSummary {
  threshold: number;
  overall: CoveragePoint;
  buckets: Record<Bucket, CoveragePoint>;
}

/**
 * What `--abstain-below P` does on a labelled split: every picture whose top probability is below P
 * abstains; coverage is the share answered, accuracy the share of answered pictures that were right,
 * overall and within each bucket (classes bucketed by training count).
 */
export function abstentionSummary(args: {
  predictions: ArrayLike<number>;
  labels: ArrayLike<number>;
  confidences: ArrayLike<number>;
  trainCounts: ArrayLike<number>;
  edges: BucketEdges;
  threshold: number;
}): AbstentionSummary {
  const { predictions, labels, confidences, trainCounts, edges, threshold } = args;
  if (!(threshold >= 0 && threshold <= 1)) throw new RetformerError(`abstain threshold must be in [0, 1], got ${threshold}`);
  const correct = Array.from(labels, (y, i) => predictions[i] === y);
  const byBucket = (bucket: Bucket) => {
    const members = Array.from(labels, (_, i) => i).filter((i) => bucketOf(trainCounts[labels[i]], edges) === bucket);
    return selectiveAccuracy(
      members.map((i) => confidences[i]),
      members.map((i) => correct[i]),
      threshold,
    );
  };
  return {
    threshold,
    overall: selectiveAccuracy(confidences, correct, threshold),
    buckets: { many: byBucket('many'), medium: byBucket('medium'), few: byBucket('few') },
  };
}

/** One line per scope: "answered 71.2% (1,360 of 1,911), accuracy on them 78.3%". */
export function formatAbstention(s: AbstentionSummary): string {
  const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);
  const line = (name: string, p: CoveragePoint) => `  ${name.padEnd(8)} answered ${pct(p.coverage)} (${p.answered} of ${p.total}), accuracy on them ${pct(p.accuracy)}`;
  return [
    `abstaining below p = ${s.threshold}:`,
    line('overall', s.overall),
    line('Many', s.buckets.many),
    line('Medium', s.buckets.medium),
    line('Few', s.buckets.few),
  ].join('\n');
}
