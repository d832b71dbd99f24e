import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { readDataset } from '../data/index.ts';
import type { Dataset } from '../data/types.ts';
import { mapConcurrent } from '../encoders/image.ts';
import type { Encoder } from '../encoders/types.ts';
import { openKbEncoder, openKnowledgeBase } from '../kb/index.ts';
import type { KnowledgeBase } from '../kb/types.ts';
import type { Prediction } from '../train/types.ts';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { knnVote, retrievalPurity, zeroShot } from './baselines.ts';
import { embedTestImages, evaluateRun, labelIndices } from './evaluate.ts';
import { selectGallery } from './gallery.ts';
import { computeMetrics, formatMetricsTable } from './metrics.ts';
import type { CompareResults, MethodResult } from './results.ts';
import { METHOD_KEYS, METHODS, type MethodSpec } from './methods.ts';
import { LIFT_BUCKETS } from './types.ts';

export { METHOD_KEYS, METHODS, type MethodSpec } from './methods.ts';

const positiveInt = z.number().int().positive();

/** Options of a comparison, validated at the edge (CLI flags and in-process callers alike). */
export const CompareOptionsSchema = z
  .object({
    train: z.string().min(1),
    test: z.string().min(1),
    kb: z.string().min(1),
    out: z.string().min(1),
    config: z.string().min(1).optional(),
    epochs: positiveInt.optional(),
    k: positiveInt.optional(),
    jobs: positiveInt.default(2),
    edges: z.object({ many: z.number().nonnegative(), few: z.number().nonnegative() }).default(LIFT_BUCKETS),
    variants: z
      .array(z.string())
      .default([...METHOD_KEYS])
      .refine((keys) => keys.length > 0, 'give at least one method'),
    seed: z.number().int().nonnegative().default(0),
    quiet: z.boolean().default(false),
    cacheDir: z.string().optional(),
  })
  .refine((o) => o.edges.few <= o.edges.many, { message: 'the Few edge must not exceed the Many edge', path: ['edges'] });

export type CompareOptions = z.input<typeof CompareOptionsSchema> & {
  /** Called with one line per step (training, evaluation); default prints `compare: <line>` on stderr unless quiet. */
  onStep?: (line: string) => void;
};

/** Default k for the kNN vote when neither --k nor a trained run says otherwise (the paper's k). */
const DEFAULT_K = 32;

const BIN = fileURLToPath(new URL('../../bin/retformer.js', import.meta.url));

function parseOptions(options: CompareOptions): z.output<typeof CompareOptionsSchema> {
  const parsed = CompareOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`compare: ${issue.path.join('.') || 'options'}: ${issue.message}`);
  }
  const unknown = parsed.data.variants.filter((v) => !METHOD_KEYS.includes(v));
  if (unknown.length > 0) throw new RetformerError(`compare: unknown method "${unknown[0]}" (choose from ${METHOD_KEYS.join(', ')})`);
  return parsed.data;
}

function fileDigest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

interface TrainJob {
  method: MethodSpec;
  runDir: string;
  args: string[];
  /** What the run was trained from; a run whose stamp matches and has final weights is reused. */
  stamp: Record<string, unknown>;
}

function trainJobs(o: z.output<typeof CompareOptionsSchema>, methods: readonly MethodSpec[], kbGeneration: number): TrainJob[] {
  const common: string[] = ['--train', resolve(o.train), '--kb', resolve(o.kb), '--seed', String(o.seed)];
  if (o.k !== undefined) common.push('--k', String(o.k));
  if (o.epochs !== undefined) common.push('--epochs', String(o.epochs));
  if (o.config !== undefined) common.push('--config', resolve(o.config));
  if (o.cacheDir !== undefined) common.push('--cache', resolve(o.cacheDir));
  const inputs = {
    train: fileDigest(o.train),
    config: o.config === undefined ? null : fileDigest(o.config),
    kbGeneration,
  };
  return methods
    .filter((m) => m.train !== undefined)
    .map((m) => {
      const runDir = resolve(o.out, 'runs', m.key);
      const args = ['--variant', m.train!.variant, ...(m.train!.adaptive ? ['--adaptive'] : []), ...common];
      return { method: m, runDir, args: ['train', ...args, '--out', runDir], stamp: { args, inputs } };
    });
}

function lastErrorLine(logFile: string): string {
  if (!existsSync(logFile)) return '';
  const lines = readFileSync(logFile, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const errors = lines.filter((l) => l.startsWith('retformer:'));
  return errors.at(-1) ?? lines.at(-1) ?? '';
}

/** Run `retformer train` in a child process logging to logFile; resolves with its exit code. */
function runTrainProcess(args: readonly string[], logFile: string, append = false): Promise<number> {
  const fd = openSync(logFile, append ? 'a' : 'w');
  writeSync(fd, `$ retformer ${args.join(' ')}\n`);
  return new Promise<number>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', fd, fd], env: { ...process.env } });
    child.on('error', (err) => {
      closeSync(fd);
      reject(err);
    });
    child.on('close', (code, signal) => {
      closeSync(fd);
      resolvePromise(code ?? (signal ? 128 : 1));
    });
  });
}

interface TrainOutcome {
  key: string;
  seconds: number;
  skipped: boolean;
  error?: string;
}

async function trainAll(jobs: readonly TrainJob[], o: z.output<typeof CompareOptionsSchema>, step: (line: string) => void): Promise<TrainOutcome[]> {
  const logsDir = resolve(o.out, 'logs');
  const stampsDir = resolve(o.out, 'stamps');
  mkdirSync(logsDir, { recursive: true });
  mkdirSync(stampsDir, { recursive: true });
  mkdirSync(resolve(o.out, 'runs'), { recursive: true });
  let finished = 0;
  return mapConcurrent(jobs, o.jobs, async (job) => {
    const key = job.method.key;
    const stampFile = join(stampsDir, `${key}.json`);
    const stampText = JSON.stringify(job.stamp);
    const haveWeights = existsSync(join(job.runDir, 'model'));
    if (haveWeights && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stampText) {
      finished++;
      step(`[${finished}/${jobs.length}] train ${key}: reusing ${job.runDir} (same settings, final weights present)`);
      return { key, seconds: 0, skipped: true };
    }
    // An interrupted run of the same settings resumes from its checkpoint; anything else starts afresh.
    const pendingFile = join(stampsDir, `${key}.pending.json`);
    const resume =
      existsSync(join(job.runDir, 'checkpoint')) && existsSync(pendingFile) && readFileSync(pendingFile, 'utf8').trim() === stampText;
    rmSync(stampFile, { force: true });
    if (!resume) rmSync(job.runDir, { recursive: true, force: true });
    writeFileAtomic(pendingFile, `${stampText}\n`);
    const logFile = join(logsDir, `${key}.log`);
    step(`train ${key}: ${resume ? 'resuming' : 'started'} (log ${logFile})`);
    const t0 = performance.now();
    const code = await runTrainProcess(resume ? [...job.args, '--resume'] : job.args, logFile, resume);
    const seconds = (performance.now() - t0) / 1000;
    finished++;
    if (code !== 0 || !existsSync(join(job.runDir, 'model'))) {
      const why = lastErrorLine(logFile);
      step(`[${finished}/${jobs.length}] train ${key}: FAILED (exit ${code}) after ${seconds.toFixed(1)} s`);
      return { key, seconds, skipped: false, error: `training ${key} failed (exit ${code})${why ? `: ${why}` : ''}; see ${logFile}` };
    }
    rmSync(pendingFile, { force: true });
    writeFileAtomic(stampFile, `${stampText}\n`);
    step(`[${finished}/${jobs.length}] train ${key}: done in ${seconds.toFixed(1)} s`);
    return { key, seconds, skipped: false };
  });
}

function countPerClass(train: Dataset, classes: readonly string[]): number[] {
  const index = new Map(classes.map((c, i) => [c, i]));
  const counts = new Array<number>(classes.length).fill(0);
  for (const s of train.samples) {
    const c = index.get(s.label);
    if (c !== undefined) counts[c]++;
  }
  return counts;
}

function sameClasses(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

/**
 * Train (in child processes, `jobs` at a time) and evaluate every requested method on one split,
 * print nothing but step lines, and write `out/results.json` (CompareResults) and `out/results.md`.
 */
export async function runComparison(options: CompareOptions): Promise<CompareResults> {
  const o = parseOptions(options);
  const step = options.onStep ?? ((line: string) => (o.quiet ? undefined : process.stderr.write(`compare: ${line}\n`)));
  const tStart = performance.now();
  const timings: Record<string, number> = {};
  const methods = METHODS.filter((m) => o.variants.includes(m.key));
  for (const [flag, path] of [
    ['--train', o.train],
    ['--test', o.test],
    ['--kb', o.kb],
    ['--config', o.config],
  ] as const) {
    if (path !== undefined && !existsSync(path)) throw new RetformerError(`${path}: not found (${flag})`);
  }
  const trainSet = readDataset(resolve(o.train));
  const testSet = readDataset(resolve(o.test));
  labelIndices(testSet, trainSet.classes, "the training set's"); // fail before training when a test label is not a training class
  mkdirSync(resolve(o.out), { recursive: true });

  // Open the KB once for its generation (training stamps) and the training-free baselines.
  const kbForInfo = await openKnowledgeBase(resolve(o.kb));
  const kbInfo = { size: kbForInfo.size, encoderId: kbForInfo.encoderId, generation: kbForInfo.manifest.generation };
  let kb: KnowledgeBase | undefined = kbForInfo;

  // 1. Train the trainable methods (child processes use both cores; tfjs-wasm is single-threaded).
  const jobs = trainJobs(o, methods, kbInfo.generation);
  const trainSeconds = new Map<string, number>();
  if (jobs.length > 0) {
    await kbForInfo.close();
    kb = undefined;
    const t0 = performance.now();
    const outcomes = await trainAll(jobs, o, step);
    timings.train = (performance.now() - t0) / 1000;
    for (const r of outcomes) {
      if (!r.skipped) timings[`train:${r.key}`] = r.seconds;
      trainSeconds.set(r.key, r.seconds);
    }
    const failed = outcomes.filter((r) => r.error !== undefined);
    if (failed.length > 0) throw new RetformerError(failed.map((r) => r.error).join(' | '));
  }

  // 2. Evaluate every method on the test split, in table order.
  let classes = trainSet.classes;
  let trainCounts = countPerClass(trainSet, classes);
  let runK: number | undefined;
  let runEpochs: unknown;
  let mlpPredictions: number[] | undefined;
  let fullOutputs: Prediction[] | undefined;
  let retrievalOutputs: Prediction[] | undefined;
  let puritySource = '';
  const byKey = new Map<string, MethodResult>();
  let labels: number[] | undefined;
  let baselineEncoder: Encoder | undefined;
  let baselineEmbeddings: Float32Array | undefined;
  // Trained methods first: the first run fixes the class order and training counts the baselines use.
  const evalOrder = [...methods.filter((m) => m.train), ...methods.filter((m) => !m.train)];
  try {
    for (const [i, m] of evalOrder.entries()) {
      const t0 = performance.now();
      if (m.train) {
        const runDir = resolve(o.out, 'runs', m.key);
        const { loadRun } = await import('../train/run.ts'); // tfjs loads only when a trained method is evaluated
        const run = await loadRun(runDir);
        try {
          if (labels === undefined) {
            classes = run.classes;
            trainCounts = [...run.trainCounts];
            labels = labelIndices(testSet, classes);
          } else if (!sameClasses(run.classes, classes)) {
            throw new RetformerError(`${runDir}: its classes differ from the other runs' (${run.classes.length} vs ${classes.length}); retrain from the same training CSV`);
          }
          runK ??= run.config.k;
          runEpochs ??= run.config.epochs;
          const r = await evaluateRun(run, testSet, { edges: o.edges, cacheDir: o.cacheDir, quiet: o.quiet });
          const confidences = r.details.outputs.map((p) => Math.round(p.probs[p.label] * 1e6) / 1e6); // for the calibration charts
          byKey.set(m.key, { key: m.key, name: m.name, kind: m.kind, metrics: r.metrics, predictions: r.predictions, confidences, runDir, trainSeconds: trainSeconds.get(m.key) });
          if (m.key === 'mlp-only') mlpPredictions = r.predictions;
          if (m.key === 'full') fullOutputs = r.details.outputs;
          if (m.train.variant !== 'mlp-only' && retrievalOutputs === undefined) {
            retrievalOutputs = r.details.outputs;
            puritySource = m.key;
          }
        } finally {
          await run.close();
        }
      } else {
        labels ??= labelIndices(testSet, classes);
        const openKb = kb ?? (await openKnowledgeBase(resolve(o.kb)));
        kb = openKb;
        const encoder = baselineEncoder ?? (await openKbEncoder(resolve(o.kb)));
        baselineEncoder = encoder;
        if (baselineEmbeddings === undefined) {
          const te = performance.now();
          baselineEmbeddings = await embedTestImages(encoder, testSet, { cacheDir: o.cacheDir, quiet: o.quiet });
          timings.embed = (performance.now() - te) / 1000;
        }
        const predictions =
          m.key === 'knn-vote'
            ? await knnVote(openKb, baselineEmbeddings, classes, {
                k: o.k ?? runK ?? DEFAULT_K,
                encoderId: encoder.id,
                fallbackClass: trainCounts.indexOf(Math.max(...trainCounts)),
              })
            : await zeroShot(encoder, baselineEmbeddings, classes);
        const metrics = computeMetrics({ predictions, labels, classes, trainCounts, edges: o.edges });
        byKey.set(m.key, { key: m.key, name: m.name, kind: m.kind, metrics, predictions });
      }
      const seconds = (performance.now() - t0) / 1000;
      timings[`eval:${m.key}`] = seconds;
      step(`[${i + 1}/${evalOrder.length}] eval ${m.key}: overall ${byKey.get(m.key)!.metrics.overall.toFixed(1)}% in ${seconds.toFixed(1)} s`);
    }
  } finally {
    await kb?.close();
    await baselineEncoder?.close();
  }
  const results = methods.map((m) => byKey.get(m.key)!);

  labels ??= labelIndices(testSet, classes);
  const test = testSet.samples.map((s, i) => ({ path: s.path, label: labels![i] }));
  if (fullOutputs !== undefined) {
    retrievalOutputs = fullOutputs;
    puritySource = 'full';
  }
  const purity = retrievalOutputs
    ? retrievalPurity(
        retrievalOutputs.map((p) => p.neighbours),
        labels,
        classes,
      )
    : classes.map(() => null);
  const gallery =
    mlpPredictions && fullOutputs
      ? selectGallery({ test, classes, trainCounts, edges: o.edges, mlpPredictions, full: fullOutputs, max: 12, neighbours: 8 })
      : [];
  timings.total = (performance.now() - tStart) / 1000;

  const settings: CompareResults['settings'] = {
    train: resolve(o.train),
    test: resolve(o.test),
    kb: resolve(o.kb),
    kbSize: kbInfo.size,
    encoder: kbInfo.encoderId,
    k: o.k ?? runK ?? DEFAULT_K,
    jobs: o.jobs,
    trainSize: trainSet.samples.length,
    testSize: testSet.samples.length,
    classes: classes.length,
    many: o.edges.many,
    few: o.edges.few,
    methods: methods.map((m) => m.key).join(','),
  };
  const epochs = o.epochs ?? runEpochs;
  if (typeof epochs === 'number') settings.epochs = epochs;
  if (o.config !== undefined) settings.config = resolve(o.config);
  if (puritySource !== '') settings.puritySource = puritySource;

  const compare: CompareResults = {
    createdAt: new Date().toISOString(),
    seed: o.seed,
    classes,
    trainCounts,
    edges: o.edges,
    test,
    methods: results,
    purity,
    gallery,
    timings,
    settings,
  };
  writeJsonAtomic(resolve(o.out, 'results.json'), compare);
  writeFileAtomic(resolve(o.out, 'results.md'), formatComparisonMarkdown(compare));
  return compare;
}

function fmt(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

/** The comparison as Markdown: the paper-style table, a second table with macro-F1 and worst class, settings and timings. */
export function formatComparisonMarkdown(results: CompareResults): string {
  const lines: string[] = ['# RetFormer comparison', ''];
  lines.push(
    `Top-1 accuracy (%) on ${results.test.length} test pictures, ${results.classes.length} classes; buckets from training counts: ` +
      `Many > ${results.edges.many}, Medium ${results.edges.few}–${results.edges.many}, Few < ${results.edges.few}.`,
    '',
  );
  lines.push(formatMetricsTable(results.methods.map((m) => ({ name: m.name, metrics: m.metrics }))).trimEnd(), '');
  lines.push('| method | macro-F1 | ECE (15 bins) | worst class | train s |', '|---|---:|---:|---|---:|');
  for (const m of results.methods) {
    lines.push(`| ${m.name} | ${fmt(m.metrics.macroF1)} | ${fmt(m.metrics.ece)} | ${m.metrics.worstClass.label} (${fmt(m.metrics.worstClass.accuracy)}) | ${fmt(m.trainSeconds)} |`);
  }
  const first = results.methods[0];
  if (first) {
    const b = first.metrics.buckets;
    lines.push('', `Classes per bucket (present in the test set): Many ${b.many}, Medium ${b.medium}, Few ${b.few}.`);
  }
  const known = results.purity.filter((p): p is number => p !== null);
  if (known.length > 0) {
    const mean = (100 * known.reduce((a, b) => a + b, 0)) / known.length;
    lines.push(`Retrieval purity (share of image neighbours with the query's class), mean over classes: ${mean.toFixed(1)}%.`);
  }
  lines.push(`Gallery: ${results.gallery.length} Few-class test pictures MLP-only got wrong and RetFormer full got right.`);
  lines.push('', '## Settings', '', '| setting | value |', '|---|---|');
  for (const [k, v] of Object.entries(results.settings)) lines.push(`| ${k} | ${String(v)} |`);
  lines.push('', '## Timings (s)', '', '| step | seconds |', '|---|---:|');
  for (const [k, v] of Object.entries(results.timings)) lines.push(`| ${k} | ${v.toFixed(1)} |`);
  return `${lines.join('\n')}\n`;
}
