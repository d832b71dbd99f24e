import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { classCounts, readDataset } from '../data/index.ts';
import { carveValidation, DEFAULT_VALIDATION_SHARE, writeValidationCsvs } from '../data/validation.ts';
import { mapConcurrent } from '../util/concurrency.ts';
import { readConfigFile } from '../train/config.ts';
import type { LabelMemory, Variant } from '../model/config.ts';
import { RetformerError } from '../util/errors.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { runRetformer } from '../util/retformer-process.ts';
import { computeMetrics } from './metrics.ts';
import type { EvalMetrics } from './types.ts';

/**
 * Settings chosen on validation, never on test (`--k auto`, `--tau auto`, the demo): carve a seeded,
 * stratified validation split from the training CSV (src/data/validation.ts), train one run per
 * candidate setting on the rest (child processes, `jobs` at a time, the same recipe otherwise),
 * evaluate each on the held-out training pictures (the leakage guard drops each one's own KB pair),
 * and choose by balanced accuracy (mean per-class accuracy, so the tail counts as much as the head).
 *
 * The rule (`one-se`, the default) is the one-standard-error rule: the candidates are listed in order
 * of preference (k ascending: fewer neighbours cost less to train and to serve; tau as listed), and the
 * first one whose balanced accuracy is within one standard error of the best candidate's is chosen.
 * The standard error is paired: over the classes, of the per-class accuracy difference between the
 * candidate and the best (sd / sqrt(classes)). A difference smaller than that is not evidence on this
 * split (different HNSW near-tie orders alone move it by ~1 point on the emoji benchmark). `best`
 * takes the highest balanced accuracy outright (ties to the earlier candidate).
 */

export const K_GRID = [4, 8, 16, 32] as const;
export const TAU_GRID = [0.5, 1, 2] as const;

export const SELECTION_RULES = ['one-se', 'best'] as const;
export type SelectionRule = (typeof SELECTION_RULES)[number];
export const DEFAULT_SELECTION_RULE: SelectionRule = 'one-se';

const CRITERIA: Record<SelectionRule, string> = {
  'one-se': 'balanced accuracy on validation, the first candidate (k ascending) within one paired standard error of the best',
  best: 'balanced accuracy on validation (the highest)',
};

/** A trained method whose settings are chosen: its variant and fusion options. */
export interface SelectArm {
  /** Name of the method in results (e.g. "full", "image-only"). */
  key: string;
  variant: Variant;
  adaptive?: boolean;
  /** Label memory of every candidate (--label-memory); undefined keeps the config's. */
  labelMemory?: LabelMemory;
  /** The similarity bias for every candidate (--sim-bias). */
  simBias?: boolean;
}

interface CommonSelectOptions {
  /** Training CSV the validation split is carved from. */
  train: string;
  kb: string;
  /** Work folder: split CSVs, candidate runs and results, selection.json. */
  out: string;
  config?: string;
  /** Candidate values; a field left out keeps the config's value. */
  grid: { k?: readonly number[]; tau?: readonly number[] };
  rule?: SelectionRule;
  seed?: number;
  epochs?: number;
  jobs?: number;
  share?: number;
  cacheDir?: string;
  onStep?: (line: string) => void;
}

export interface SelectOptions extends CommonSelectOptions {
  variant?: Variant;
  adaptive?: boolean;
  labelMemory?: LabelMemory;
  simBias?: boolean;
}

export interface CandidateResult {
  k: number;
  tau: number;
  overall: number;
  balanced: number;
  many: number | null;
  medium: number | null;
  few: number | null;
  /** Accuracy (%) per class present in the validation split: what the paired standard error is computed from. */
  perClass?: Record<string, number>;
}

export interface SelectionResult {
  criterion: string;
  rule: SelectionRule;
  /** The method whose settings were chosen: a trained variant's key, or "knn-vote". */
  method: string;
  share: number;
  seed: number;
  variant?: Variant;
  adaptive: boolean;
  trainSize: number;
  validationSize: number;
  candidates: CandidateResult[];
  /** Per candidate (same order): the paired standard error of its gap to the best candidate (0 for the best; null without per-class accuracies). */
  standardErrors: (number | null)[];
  chosen: { k: number; tau: number };
}

const cli = (args: readonly string[]) => runRetformer(args, `settings selection: retformer ${args[0]}`);

/** Standard error of the mean per-class accuracy difference a - b, over the classes both report (null when fewer than two). */
export function pairedStandardError(a: CandidateResult, b: CandidateResult): number | null {
  if (!a.perClass || !b.perClass) return null;
  const diffs = Object.keys(a.perClass)
    .filter((c) => b.perClass![c] !== undefined)
    .map((c) => a.perClass![c] - b.perClass![c]);
  if (diffs.length < 2) return null;
  const mean = diffs.reduce((s, d) => s + d, 0) / diffs.length;
  const variance = diffs.reduce((s, d) => s + (d - mean) ** 2, 0) / (diffs.length - 1);
  return Math.sqrt(variance / diffs.length);
}

/** The chosen candidate under `rule` (see the module comment): candidates in order of preference. */
export function chooseCandidate(candidates: readonly CandidateResult[], rule: SelectionRule = DEFAULT_SELECTION_RULE): CandidateResult {
  if (candidates.length === 0) throw new RetformerError('settings selection: no candidates');
  const best = candidates.reduce((top, c) => (c.balanced > top.balanced + 1e-9 ? c : top));
  if (rule === 'best') return best;
  for (const c of candidates) {
    if (c === best) return c;
    const se = pairedStandardError(c, best);
    if (se !== null && best.balanced - c.balanced <= se + 1e-9) return c;
  }
  return best;
}

function summarise(method: string, arm: SelectArm | undefined, rule: SelectionRule, split: ValidationFiles, candidates: CandidateResult[]): SelectionResult {
  const top = chooseCandidate(candidates, 'best');
  const chosen = chooseCandidate(candidates, rule);
  return {
    criterion: CRITERIA[rule],
    rule,
    method,
    share: split.share,
    seed: split.seed,
    ...(arm ? { variant: arm.variant } : {}),
    adaptive: arm?.adaptive ?? false,
    trainSize: split.trainSize,
    validationSize: split.validationSize,
    candidates,
    standardErrors: candidates.map((c) => (c === top ? 0 : pairedStandardError(c, top))),
    chosen: { k: chosen.k, tau: chosen.tau },
  };
}

/** The carved split as files: OUT/train.csv and OUT/validation.csv. */
export interface ValidationFiles {
  train: string;
  validation: string;
  trainSize: number;
  validationSize: number;
  share: number;
  seed: number;
}

/** Carve the validation split of `train` (seeded, stratified) and write both parts under `out`. */
export function prepareValidation(train: string, out: string, options: { seed?: number; share?: number } = {}): ValidationFiles {
  const seed = options.seed ?? 0;
  const share = options.share ?? DEFAULT_VALIDATION_SHARE;
  mkdirSync(out, { recursive: true });
  const dataset = readDataset(resolve(train));
  const split = carveValidation(dataset, { share, seed });
  const files = { train: join(out, 'train.csv'), validation: join(out, 'validation.csv') };
  writeValidationCsvs(resolve(train), dataset, split, files);
  return { ...files, trainSize: split.train.length, validationSize: split.validation.length, share, seed };
}

/** One trained method's settings on validation (`train --k auto`). */
export async function selectSettings(options: SelectOptions): Promise<SelectionResult> {
  const arm: SelectArm = { key: options.variant ?? 'full', variant: options.variant ?? 'full', adaptive: options.adaptive, labelMemory: options.labelMemory, simBias: options.simBias };
  const [selection] = await selectForArms({ ...options, arms: [arm] });
  writeJsonAtomic(join(resolve(options.out), 'selection.json'), selection);
  return selection;
}

/**
 * Several trained methods' settings on one validation split, every candidate run of every method in
 * one pool of `jobs` training processes; one SelectionResult per arm, in order.
 */
export async function selectForArms(options: CommonSelectOptions & { arms: readonly SelectArm[]; split?: ValidationFiles }): Promise<SelectionResult[]> {
  const out = resolve(options.out);
  const step = options.onStep ?? (() => {});
  const rule = options.rule ?? DEFAULT_SELECTION_RULE;
  const base = options.config ? readConfigFile(resolve(options.config)) : {};
  const ks = options.grid.k ?? [Number(base.k ?? 32)];
  const taus = options.grid.tau ?? [Number(base.tau ?? 1)];
  mkdirSync(join(out, 'configs'), { recursive: true });
  mkdirSync(join(out, 'results'), { recursive: true });
  const split = options.split ?? prepareValidation(options.train, out, { seed: options.seed, share: options.share });
  const seed = split.seed;
  if (!options.split) step(`validation split: ${split.trainSize} training / ${split.validationSize} validation pictures (share ${split.share}, seed ${seed})`);
  const trainBytes = readFileSync(split.train, 'utf8').length;

  const grid = ks.flatMap((k) => taus.map((tau) => ({ k, tau })));
  const jobs = options.arms.flatMap((arm, armIndex) => grid.map((setting) => ({ arm, armIndex, ...setting })));
  // The costliest runs (largest k) start first, so that the pool does not end waiting on one of them.
  const byCost = jobs.map((_, i) => i).sort((a, b) => jobs[b].k - jobs[a].k || a - b);
  let finished = 0;
  const ranked = await mapConcurrent(byCost, options.jobs ?? 2, async (index): Promise<CandidateResult> => {
    const { arm, k, tau } = jobs[index];
    const name = `${arm.variant}${arm.adaptive ? '-adaptive' : ''}${arm.labelMemory ? `-labels-${arm.labelMemory}` : ''}${arm.simBias ? '-simbias' : ''}-k${k}-tau${tau}-s${seed}${options.epochs ? `-e${options.epochs}` : ''}`;
    const config = { ...base, k, tau };
    const stamp = JSON.stringify({ config, variant: arm.variant, adaptive: arm.adaptive ?? false, labelMemory: arm.labelMemory, simBias: arm.simBias, seed, epochs: options.epochs, kb: resolve(options.kb), train: trainBytes });
    const resultFile = join(out, 'results', `${name}.json`);
    if (existsSync(resultFile)) {
      const saved = JSON.parse(readFileSync(resultFile, 'utf8')) as { stamp: string; result: CandidateResult };
      if (saved.stamp === stamp && saved.result.perClass) {
        step(`[${++finished}/${jobs.length}] ${name}: reused`);
        return saved.result;
      }
    }
    const configFile = join(out, 'configs', `${name}.json`);
    writeJsonAtomic(configFile, config);
    const runDir = join(out, 'runs', name);
    const train = ['train', '--train', split.train, '--kb', resolve(options.kb), '--out', runDir, '--config', configFile, '--variant', arm.variant, '--seed', String(seed), '--force', '--quiet'];
    if (arm.adaptive) train.push('--adaptive');
    if (arm.labelMemory) train.push('--label-memory', arm.labelMemory);
    if (arm.simBias) train.push('--sim-bias');
    if (options.epochs) train.push('--epochs', String(options.epochs));
    if (options.cacheDir) train.push('--cache', resolve(options.cacheDir));
    await cli(train);
    const evalArgs = ['eval', '--run', runDir, '--test', split.validation, '--json', '--quiet'];
    if (options.cacheDir) evalArgs.push('--cache', resolve(options.cacheDir));
    const m = JSON.parse(await cli(evalArgs)) as EvalJson;
    const result = candidateOf(k, tau, m);
    writeJsonAtomic(resultFile, { stamp, result });
    step(`[${++finished}/${jobs.length}] ${name}: balanced ${m.balanced.toFixed(1)}, overall ${m.overall.toFixed(1)} on validation`);
    return result;
  });
  const results: CandidateResult[] = [];
  byCost.forEach((index, r) => {
    results[index] = ranked[r];
  });
  return options.arms.map((arm, i) =>
    summarise(
      arm.key,
      arm,
      rule,
      split,
      results.filter((_, j) => jobs[j].armIndex === i),
    ),
  );
}

type EvalJson = Pick<EvalMetrics, 'overall' | 'many' | 'medium' | 'few' | 'perClass'> & { balanced: number };

function candidateOf(k: number, tau: number, m: EvalJson): CandidateResult {
  return { k, tau, overall: m.overall, balanced: m.balanced, many: m.many, medium: m.medium, few: m.few, perClass: m.perClass };
}

/**
 * The kNN vote's k on the same validation split, with no training: each validation picture votes
 * with its k nearest KB pairs (its own pair left out by source, as at test time), classes and
 * buckets from the carved training part.
 */
export async function selectVoteK(options: { split: ValidationFiles; kb: string; grid: readonly number[]; rule?: SelectionRule; cacheDir?: string; quiet?: boolean }): Promise<SelectionResult> {
  const { voteOnSplit } = await import('./baselines.ts');
  const { embedTestImages, labelIndices } = await import('./evaluate.ts');
  const { normalizeKbSpec, openKbEncoder, openKnowledgeBase } = await import('../kb/index.ts');
  const trainSet = readDataset(options.split.train);
  const validation = readDataset(options.split.validation);
  const counts = classCounts(trainSet);
  const labels = labelIndices(validation, trainSet.classes, "the carved training part's");
  const spec = normalizeKbSpec(options.kb);
  const encoder = await openKbEncoder(spec);
  const kb = await openKnowledgeBase(spec);
  try {
    const embeddings = await embedTestImages(encoder, validation, { cacheDir: options.cacheDir, quiet: options.quiet ?? true });
    const candidates: CandidateResult[] = [];
    for (const k of options.grid) {
      const predictions = await voteOnSplit(kb, embeddings, validation.samples, trainSet.classes, counts, k, encoder.id);
      const metrics = computeMetrics({ predictions, labels, classes: trainSet.classes, trainCounts: counts });
      candidates.push(candidateOf(k, 1, { ...metrics, balanced: metrics.balanced ?? 0 }));
    }
    return summarise('knn-vote', undefined, options.rule ?? DEFAULT_SELECTION_RULE, options.split, candidates);
  } finally {
    await kb.close();
    await encoder.close();
  }
}

/** The candidates as a Markdown table, the chosen one marked. */
export function formatSelection(s: SelectionResult): string {
  const cell = (v: number | null) => (v === null ? '-' : v.toFixed(1));
  const lines = [
    `Settings chosen on a validation split carved from the training data (${s.validationSize} of ${s.trainSize + s.validationSize} pictures, seed ${s.seed}); criterion: ${s.criterion}.`,
    '',
    '| k | tau | Many | Medium | Few | Overall | Balanced | SE of the gap to the best | |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const [i, c] of s.candidates.entries()) {
    const chosen = c.k === s.chosen.k && c.tau === s.chosen.tau ? 'chosen' : '';
    const se = s.standardErrors?.[i];
    const seCell = se === undefined || se === null ? '-' : se === 0 ? 'best' : se.toFixed(1);
    lines.push(`| ${c.k} | ${c.tau} | ${cell(c.many)} | ${cell(c.medium)} | ${cell(c.few)} | ${cell(c.overall)} | ${cell(c.balanced)} | ${seCell} | ${chosen} |`);
  }
  return `${lines.join('\n')}\n`;
}
