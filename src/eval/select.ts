import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readDataset } from '../data/index.ts';
import { carveValidation, DEFAULT_VALIDATION_SHARE, writeValidationCsvs } from '../data/validation.ts';
import { mapConcurrent } from '../util/concurrency.ts';
import { readConfigFile } from '../train/config.ts';
import type { LabelMemory, Variant } from '../model/config.ts';
import { RetformerError } from '../util/errors.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { runRetformer } from '../util/retformer-process.ts';

/**
 * Settings chosen on validation, never on test (`--k auto`, `--tau auto`): carve a seeded,
 * stratified validation split from the training CSV (src/data/validation.ts), train one run per
 * candidate setting on the rest (child processes, `jobs` at a time, the same recipe otherwise),
 * evaluate each on the held-out training pictures (the leakage guard drops each one's own KB pair),
 * and choose the candidate with the highest balanced accuracy (mean per-class accuracy, so the tail
 * counts as much as the head); ties go to the earlier candidate (smaller k, then smaller tau).
 */

export const K_GRID = [4, 8, 16, 32] as const;
export const TAU_GRID = [0.5, 1, 2] as const;

export interface SelectOptions {
  /** Training CSV the validation split is carved from. */
  train: string;
  kb: string;
  /** Work folder: split CSVs, candidate runs and results, selection.json. */
  out: string;
  config?: string;
  variant?: Variant;
  adaptive?: boolean;
  /** Label memory of every candidate (--label-memory); undefined keeps the config's. */
  labelMemory?: LabelMemory;
  /** The similarity bias for every candidate (--sim-bias). */
  simBias?: boolean;
  /** Candidate values; a field left out keeps the config's value. */
  grid: { k?: readonly number[]; tau?: readonly number[] };
  seed?: number;
  epochs?: number;
  jobs?: number;
  share?: number;
  cacheDir?: string;
  onStep?: (line: string) => void;
}

export interface CandidateResult {
  k: number;
  tau: number;
  overall: number;
  balanced: number;
  many: number | null;
  medium: number | null;
  few: number | null;
}

export interface SelectionResult {
  criterion: 'balanced accuracy on validation';
  share: number;
  seed: number;
  variant: Variant;
  adaptive: boolean;
  trainSize: number;
  validationSize: number;
  candidates: CandidateResult[];
  chosen: { k: number; tau: number };
}

const cli = (args: readonly string[]) => runRetformer(args, `settings selection: retformer ${args[0]}`);

/** The best candidate: highest balanced accuracy, the earlier one on a tie. */
export function chooseCandidate(candidates: readonly CandidateResult[]): CandidateResult {
  if (candidates.length === 0) throw new RetformerError('settings selection: no candidates');
  return candidates.reduce((best, c) => (c.balanced > best.balanced + 1e-9 ? c : best));
}

export async function selectSettings(options: SelectOptions): Promise<SelectionResult> {
  const out = resolve(options.out);
  const step = options.onStep ?? (() => {});
  const seed = options.seed ?? 0;
  const share = options.share ?? DEFAULT_VALIDATION_SHARE;
  const variant = options.variant ?? 'full';
  const base = options.config ? readConfigFile(resolve(options.config)) : {};
  const ks = options.grid.k ?? [Number(base.k ?? 32)];
  const taus = options.grid.tau ?? [Number(base.tau ?? 1)];
  mkdirSync(join(out, 'configs'), { recursive: true });
  mkdirSync(join(out, 'results'), { recursive: true });

  const dataset = readDataset(resolve(options.train));
  const split = carveValidation(dataset, { share, seed });
  const files = { train: join(out, 'train.csv'), validation: join(out, 'validation.csv') };
  writeValidationCsvs(resolve(options.train), dataset, split, files);
  step(`validation split: ${split.train.length} training / ${split.validation.length} validation pictures (share ${share}, seed ${seed})`);

  const candidates = ks.flatMap((k) => taus.map((tau) => ({ k, tau })));
  let finished = 0;
  const results = await mapConcurrent(candidates, options.jobs ?? 2, async ({ k, tau }): Promise<CandidateResult> => {
    const name = `${variant}${options.adaptive ? '-adaptive' : ''}${options.labelMemory ? `-labels-${options.labelMemory}` : ''}${options.simBias ? '-simbias' : ''}-k${k}-tau${tau}-s${seed}${options.epochs ? `-e${options.epochs}` : ''}`;
    const config = { ...base, k, tau };
    const stamp = JSON.stringify({ config, variant, adaptive: options.adaptive ?? false, labelMemory: options.labelMemory, simBias: options.simBias, seed, epochs: options.epochs, kb: resolve(options.kb), train: readFileSync(files.train, 'utf8').length });
    const resultFile = join(out, 'results', `${name}.json`);
    if (existsSync(resultFile)) {
      const saved = JSON.parse(readFileSync(resultFile, 'utf8')) as { stamp: string; result: CandidateResult };
      if (saved.stamp === stamp) {
        step(`[${++finished}/${candidates.length}] ${name}: reused`);
        return saved.result;
      }
    }
    const configFile = join(out, 'configs', `${name}.json`);
    writeJsonAtomic(configFile, config);
    const runDir = join(out, 'runs', name);
    const train = ['train', '--train', files.train, '--kb', resolve(options.kb), '--out', runDir, '--config', configFile, '--variant', variant, '--seed', String(seed), '--force', '--quiet'];
    if (options.adaptive) train.push('--adaptive');
    if (options.labelMemory) train.push('--label-memory', options.labelMemory);
    if (options.simBias) train.push('--sim-bias');
    if (options.epochs) train.push('--epochs', String(options.epochs));
    if (options.cacheDir) train.push('--cache', resolve(options.cacheDir));
    await cli(train);
    const evalArgs = ['eval', '--run', runDir, '--test', files.validation, '--json', '--quiet'];
    if (options.cacheDir) evalArgs.push('--cache', resolve(options.cacheDir));
    const m = JSON.parse(await cli(evalArgs)) as { overall: number; balanced: number; many: number | null; medium: number | null; few: number | null };
    const result: CandidateResult = { k, tau, overall: m.overall, balanced: m.balanced, many: m.many, medium: m.medium, few: m.few };
    writeJsonAtomic(resultFile, { stamp, result });
    step(`[${++finished}/${candidates.length}] ${name}: balanced ${m.balanced.toFixed(1)}, overall ${m.overall.toFixed(1)} on validation`);
    return result;
  });
  const best = chooseCandidate(results);
  const selection: SelectionResult = {
    criterion: 'balanced accuracy on validation',
    share,
    seed,
    variant,
    adaptive: options.adaptive ?? false,
    trainSize: split.train.length,
    validationSize: split.validation.length,
    candidates: results,
    chosen: { k: best.k, tau: best.tau },
  };
  writeJsonAtomic(join(out, 'selection.json'), selection);
  return selection;
}

/** The candidates as a Markdown table, the chosen one marked. */
export function formatSelection(s: SelectionResult): string {
  const cell = (v: number | null) => (v === null ? '-' : v.toFixed(1));
  const lines = [
    `Settings chosen on a validation split carved from the training data (${s.validationSize} of ${s.trainSize + s.validationSize} pictures, seed ${s.seed}); criterion: ${s.criterion}.`,
    '',
    '| k | tau | Many | Medium | Few | Overall | Balanced | |',
    '|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const c of s.candidates) {
    const chosen = c.k === s.chosen.k && c.tau === s.chosen.tau ? 'chosen' : '';
    lines.push(`| ${c.k} | ${c.tau} | ${cell(c.many)} | ${cell(c.medium)} | ${cell(c.few)} | ${cell(c.overall)} | ${cell(c.balanced)} | ${chosen} |`);
  }
  return `${lines.join('\n')}\n`;
}
