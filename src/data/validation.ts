import { readCsv, toCsv } from '../util/csv.ts';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { Rng } from '../util/rng.ts';
import type { Dataset } from './types.ts';

/**
 * A validation split carved from the training data, so that settings (k, tau) are chosen without
 * the test split. Stratified and seeded: from each class, round(share x n) of its n samples
 * (drawn by a seeded shuffle) go to validation, but every class keeps at least one training sample
 * (a class of one sample stays whole in training).
 */
export const DEFAULT_VALIDATION_SHARE = 0.2;

export interface ValidationSplit {
  /** Sample indices (into the dataset) kept for training / held out for validation, ascending. */
  train: number[];
  validation: number[];
}

export function carveValidation(dataset: Dataset, options: { share?: number; seed?: number } = {}): ValidationSplit {
  const share = options.share ?? DEFAULT_VALIDATION_SHARE;
  if (!(share > 0 && share < 1)) throw new RetformerError(`validation share must be in (0, 1), got ${share}`);
  const rng = new Rng((options.seed ?? 0) + 9173);
  const byClass = new Map<string, number[]>();
  dataset.samples.forEach((s, i) => {
    const list = byClass.get(s.label) ?? [];
    list.push(i);
    byClass.set(s.label, list);
  });
  const validation: number[] = [];
  for (const label of [...byClass.keys()].sort()) {
    const members = rng.shuffle(byClass.get(label)!);
    const take = Math.min(members.length - 1, Math.round(share * members.length));
    validation.push(...members.slice(0, take));
  }
  const held = new Set(validation);
  return {
    train: dataset.samples.map((_, i) => i).filter((i) => !held.has(i)),
    validation: validation.sort((a, b) => a - b),
  };
}

/**
 * Write the two parts of a carved CSV manifest as CSVs with every column of the original (id,
 * clean_label, ...) and image paths made absolute, so that they can live in any folder.
 */
export function writeValidationCsvs(trainCsv: string, dataset: Dataset, split: ValidationSplit, files: { train: string; validation: string }): void {
  const table = readCsv(trainCsv);
  const byRow = new Map(table.rows.map((r) => [r.row, r.values]));
  const write = (file: string, indices: number[]) => {
    const rows = indices.map((i) => {
      const s = dataset.samples[i];
      return { ...byRow.get(s.row), path: s.path };
    });
    writeFileAtomic(file, toCsv(table.columns, rows));
  };
  write(files.train, split.train);
  write(files.validation, split.validation);
}
