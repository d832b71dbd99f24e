import { z } from 'zod';
import { RetformerError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { classCounts } from './stats.ts';
import type { Dataset } from './types.ts';

export const longTailOptionsSchema = z.object({
  /** Imbalance factor IF = n_max / n_min (>= 1). */
  imbalance: z.number().min(1),
  /** exp: n_c = floor(n_max * (1/IF)^(c/(C-1))); step: first half n_max, second half floor(n_max / IF). */
  profile: z.enum(['exp', 'step']).default('exp'),
  /** n_max; defaults to the largest available class count. */
  maxPerClass: z.number().int().positive().optional(),
  seed: z.number().int().default(0),
});
export type LongTailOptions = z.input<typeof longTailOptionsSchema>;

/** Target image count per class (class-list order), the LIFT / CIFAR-100-LT rule (floor). */
export function longTailCounts(numClasses: number, nMax: number, imbalance: number, profile: 'exp' | 'step'): number[] {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RetformerError(`long tail needs at least one class (got ${numClasses})`);
  if (!(imbalance >= 1)) throw new RetformerError(`imbalance factor must be >= 1 (got ${imbalance})`);
  const ratio = 1 / imbalance;
  return Array.from({ length: numClasses }, (_, c) => {
    if (profile === 'step') return c < Math.floor(numClasses / 2) ? nMax : Math.floor(nMax * ratio);
    return numClasses === 1 ? nMax : Math.floor(nMax * ratio ** (c / (numClasses - 1)));
  });
}

export interface LongTailResult {
  dataset: Dataset;
  /** Target per class (before capping at what is available). */
  targets: number[];
  /** Images kept per class. */
  counts: number[];
  /** Classes that had fewer images than their target (all were kept). */
  short: { label: string; target: number; available: number }[];
  nMax: number;
}

/**
 * Subsample a dataset into a long-tailed one: class c (class-list order) keeps `targets[c]` images chosen uniformly
 * at random (seeded) from its images; kept samples stay in their original order. Deterministic for a seed.
 */
export function makeLongTail(dataset: Dataset, options: LongTailOptions): LongTailResult {
  const opts = longTailOptionsSchema.parse(options);
  const available = classCounts(dataset);
  const nMax = opts.maxPerClass ?? Math.max(...available);
  const targets = longTailCounts(dataset.classes.length, nMax, opts.imbalance, opts.profile);
  const index = new Map(dataset.classes.map((c, i) => [c, i]));
  const members: number[][] = dataset.classes.map(() => []); // per class: sample indices
  dataset.samples.forEach((s, i) => {
    members[index.get(s.label)!].push(i);
  });
  const rng = new Rng(opts.seed);
  const keep = new Uint8Array(dataset.samples.length);
  const counts: number[] = [];
  const short: LongTailResult['short'] = [];
  members.forEach((idx, c) => {
    const classRng = rng.fork(); // one stream per class: a class's choice does not depend on the others' sizes
    const n = Math.min(targets[c], idx.length);
    if (idx.length < targets[c]) short.push({ label: dataset.classes[c], target: targets[c], available: idx.length });
    for (const i of classRng.shuffle([...idx]).slice(0, n)) keep[i] = 1;
    counts.push(n);
  });
  return {
    dataset: { source: dataset.source, classes: dataset.classes, samples: dataset.samples.filter((_, i) => keep[i] === 1) },
    targets,
    counts,
    short,
    nMax,
  };
}
