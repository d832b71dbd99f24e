import { z } from 'zod';
import { RetformerError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Dataset, Sample } from './types.ts';

export const noiseOptionsSchema = z.object({
  /** Probability that a sample's label is flipped, in [0, 1]. */
  rate: z.number().min(0).max(1),
  /** sym: to a uniformly chosen other class; asym: class i -> class (i+1) mod C. */
  mode: z.enum(['sym', 'asym']).default('sym'),
  seed: z.number().int().default(0),
});
export type NoiseOptions = z.input<typeof noiseOptionsSchema>;

export interface NoiseResult {
  dataset: Dataset;
  /** Samples whose label was changed. */
  flipped: number;
  /** flipped / samples. */
  realisedRate: number;
}

/** Where class `from` flips to: asym is the fixed pair map i -> (i+1) mod C; sym a uniform draw among the C-1 others. */
export function flipTarget(from: number, numClasses: number, mode: 'sym' | 'asym', rng: Rng): number {
  if (mode === 'asym') return (from + 1) % numClasses;
  const j = rng.int(numClasses - 1);
  return j >= from ? j + 1 : j;
}

/**
 * Corrupt labels: each sample independently, with probability `rate`, gets a different class (see `flipTarget`).
 * The label before corruption is kept in `cleanLabel` (an existing clean label is preserved, so noise composes).
 * Deterministic for a seed.
 */
export function addLabelNoise(dataset: Dataset, options: NoiseOptions): NoiseResult {
  const opts = noiseOptionsSchema.parse(options);
  const numClasses = dataset.classes.length;
  if (numClasses < 2 && opts.rate > 0) throw new RetformerError(`${dataset.source}: label noise needs at least two classes`);
  const index = new Map(dataset.classes.map((c, i) => [c, i]));
  const rng = new Rng(opts.seed);
  let flipped = 0;
  const samples: Sample[] = dataset.samples.map((s) => {
    const from = index.get(s.label);
    if (from === undefined) throw new RetformerError(`${dataset.source}:${s.row}: unknown label "${s.label}"`);
    const draw = rng.next(); // one Bernoulli draw per sample, always consumed, so sample i's fate does not depend on earlier flips
    const target = flipTarget(from, numClasses, opts.mode, rng);
    const out: Sample = { ...s, cleanLabel: s.cleanLabel ?? s.label };
    if (draw < opts.rate) {
      out.label = dataset.classes[target];
      flipped++;
    }
    return out;
  });
  return {
    dataset: { source: dataset.source, classes: dataset.classes, samples },
    flipped,
    realisedRate: samples.length ? flipped / samples.length : 0,
  };
}
