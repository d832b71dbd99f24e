/**
 * Settings read on a VALIDATION split of the emoji benchmark, so that the demo's test pictures
 * (google) play no part: RetFormer (full unless a --try names another variant) with each set of
 * overrides, over several seeds, against MLP only. This is how the default width/heads were
 * checked, and how the k ablation is read without the test split:
 *
 *   node --import tsx scripts/validation-sweep.ts --try width=64,heads=4 --try width=128,heads=4 \
 *     [--seeds 0,1,2] [--jobs 2] [--out out/validation-sweep]
 *
 * Each --try is comma-separated config fields (any of src/train/config.ts, validated) applied on
 * top of the demo's recipe (configs/emoji-demo.json). Validation split: train on the apple
 * pictures, validate on the facebook pictures; the KB is the twitter pictures with their texts (the
 * demo's KB). Buckets use half the demo's edges (Many > 20, Few < 8) because one vendor gives half
 * the training pictures per class, so the same classes land in the same buckets. Every run is
 * `retformer train` then `retformer eval --json` in a child process; finished runs are reused.
 * Prints (and writes OUT/results.md) mean ± sample standard deviation over seeds per setting.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mapConcurrent } from '../src/util/concurrency.ts';
import { parseTrainConfig } from '../src/train/config.ts';
import { runRetformer } from '../src/util/retformer-process.ts';

process.on('uncaughtException', (err) => {
  process.stderr.write(`validation-sweep: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

const DEMO_CONFIG = fileURLToPath(new URL('../configs/emoji-demo.json', import.meta.url));

/** Strict flags: a misspelt one is an error, not silently the default. */
const { values: flags } = parseArgs({
  options: {
    try: { type: 'string', multiple: true, default: [] },
    seeds: { type: 'string', default: '0,1,2' },
    jobs: { type: 'string', default: '2' },
    out: { type: 'string', default: 'out/validation-sweep' },
  },
});
const naturals = (name: string, raw: string, min: number): number[] =>
  raw.split(',').map((x) => {
    const v = Number(x);
    if (!Number.isInteger(v) || v < min || x.trim() === '') throw new Error(`--${name}: ${raw} is not a comma-separated list of integers >= ${min}`);
    return v;
  });
const out = resolve(flags.out);
const seeds = naturals('seeds', flags.seeds, 0);
const [jobs] = naturals('jobs', flags.jobs, 1);
const recipe = JSON.parse(readFileSync(DEMO_CONFIG, 'utf8')) as Record<string, unknown>;
/** A --try value as JSON would read it (numbers, true/false), else the string itself (`loss=lace`). */
function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
/** `--try width=128,heads=4` -> the recipe with those fields, checked by the training config schema. */
const tries = flags.try.map((spec) => {
  const fields = Object.fromEntries(
    spec.split(',').map((kv) => {
      const [key, value] = kv.split('=');
      return [key.trim(), parseValue(value ?? '')];
    }),
  );
  parseTrainConfig({ ...recipe, ...fields }, `--try ${spec}`); // one-line error on a bad field or value
  const { variant = 'full', ...rest } = fields;
  const others = Object.entries(rest).map(([key, value]) => `${key}=${value}`);
  return { name: [variant, ...others].join(' '), variant: String(variant), config: { ...recipe, ...rest } };
});
if (tries.length === 0) tries.push({ name: 'full', variant: 'full', config: recipe });

const cli = (args: string[]) => runRetformer(args);

const data = join(out, 'data');
const kb = join(out, 'kb');
mkdirSync(out, { recursive: true });
if (!existsSync(join(data, 'info.json'))) {
  process.stderr.write('building the validation split (train apple, validate facebook, KB twitter)\n');
  await cli(['data', 'emoji', '--out', data, '--train-vendors', 'apple', '--test-vendors', 'facebook', '--kb-vendors', 'twitter']);
}
if (!existsSync(join(kb, 'manifest.json'))) {
  process.stderr.write('building the knowledge base (embedded encoder fitted on the KB pairs, about a minute)\n');
  await cli(['kb', 'build', '--pairs', join(data, 'kb.csv'), '--out', kb, '--quiet']);
}

interface Job {
  name: string;
  seed: number;
  variant: string;
  config: Record<string, unknown>;
}
const all: Job[] = seeds.flatMap((seed) => [{ name: 'MLP only', seed, variant: 'mlp-only', config: recipe }, ...tries.map((t) => ({ ...t, seed }))]);

interface Metrics {
  overall: number;
  many: number;
  medium: number;
  few: number;
  /** Absent in results written before balanced accuracy existed. */
  balanced?: number;
}
let done = 0;
const results = await mapConcurrent(all, jobs, async (job): Promise<Metrics & { job: Job }> => {
  const slug = `${job.name.replace(/[^\w.]+/g, '-')}-s${job.seed}`;
  const run = join(out, 'runs', slug);
  const resultFile = join(out, 'results', `${slug}.json`);
  if (!existsSync(resultFile)) {
    mkdirSync(join(out, 'configs'), { recursive: true });
    mkdirSync(join(out, 'results'), { recursive: true });
    const cfgFile = join(out, 'configs', `${slug}.json`);
    writeFileSync(cfgFile, JSON.stringify(job.config));
    const t0 = performance.now();
    await cli(['train', '--train', join(data, 'train.csv'), '--kb', kb, '--out', run, '--config', cfgFile, '--variant', job.variant, '--seed', String(job.seed), '--force', '--quiet']);
    const seconds = (performance.now() - t0) / 1000;
    const json = await cli(['eval', '--run', run, '--test', join(data, 'test.csv'), '--many', '20', '--few', '8', '--json', '--quiet']);
    writeFileSync(resultFile, JSON.stringify({ ...JSON.parse(json), trainSeconds: seconds }));
  }
  done++;
  process.stderr.write(`[${done}/${all.length}] ${job.name} seed ${job.seed}\n`);
  return { ...(JSON.parse(readFileSync(resultFile, 'utf8')) as Metrics), job };
});

const meanSd = (xs: number[]) => {
  const mu = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mu) ** 2, 0) / (xs.length - 1)) : 0;
  return `${mu.toFixed(1)} ± ${sd.toFixed(1)}`;
};
const lines = [
  `Validation split (train apple -> validate facebook, KB twitter), seeds ${seeds.join(',')}; mean ± sd over seeds.`,
  '',
  '| method | Many | Medium | Few | Overall | Balanced |',
  '|---|---:|---:|---:|---:|---:|',
];
for (const name of [...new Set(all.map((j) => j.name))]) {
  const rs = results.filter((r) => r.job.name === name);
  lines.push(`| ${name} | ${meanSd(rs.map((r) => r.many))} | ${meanSd(rs.map((r) => r.medium))} | ${meanSd(rs.map((r) => r.few))} | ${meanSd(rs.map((r) => r.overall))} | ${rs.every((r) => r.balanced !== undefined) ? meanSd(rs.map((r) => r.balanced!)) : '-'} |`);
}
lines.push('', 'Many / Medium / Few and Balanced are means of per-class accuracy; Overall is per validation picture.');
writeFileSync(join(out, 'results.md'), `${lines.join('\n')}\n`);
process.stdout.write(`${lines.join('\n')}\n`);
