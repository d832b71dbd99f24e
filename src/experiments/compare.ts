import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { classCounts, readDataset } from '../data/index.ts';
import type { Encoder } from '../encoders/types.ts';
import { retrievalPurity, voteOnSplit, zeroShot } from '../eval/baselines.ts';
import { embedTestImages, evaluateRun, labelIndices } from '../eval/evaluate.ts';
import { selectGallery } from '../eval/gallery.ts';
import { computeMetrics } from '../eval/metrics.ts';
import type { CompareResults, MethodResult, SkippedMethod } from '../eval/results.ts';
import type { Prediction } from '../infer/types.ts';
import { normalizeKbSpec, openKbEncoder, openKnowledgeBase } from '../kb/index.ts';
import type { KnowledgeBase } from '../kb/types.ts';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { formatComparisonMarkdown } from './compare-format.ts';
import { type CompareOptions, DEFAULT_K, datasetDigest, kbFacts, kbIdentity, methodK, methodPrecondition, parseCompareOptions, trainJobs } from './compare-plan.ts';
import { METHODS } from './methods.ts';
import { trainAll } from './train-jobs.ts';

export { type CompareOptions, CompareOptionsSchema } from './compare-plan.ts';
export { formatComparisonMarkdown } from './compare-format.ts';
export { METHOD_KEYS, METHODS, type MethodSpec } from './methods.ts';

/**
 * A comparison run: plan (options, each method's preconditions), train the trainable methods in
 * child processes, evaluate every method on the test split, write OUT/results.json and results.md.
 */

function sameClasses(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

/**
 * Train (in child processes, `jobs` at a time) and evaluate every requested method on one split,
 * print nothing but step lines, and write `out/results.json` (CompareResults) and `out/results.md`.
 */
export async function runComparison(options: CompareOptions): Promise<CompareResults> {
  const o = parseCompareOptions(options);
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

  // Open the KB once for its identity (training stamps), what it offers the methods, and the training-free baselines.
  const kbForInfo = await openKnowledgeBase(normalizeKbSpec(o.kb));
  const kbInfo = { size: kbForInfo.size, encoderId: kbForInfo.encoderId };
  const identity = kbIdentity(kbForInfo.manifest);
  let kb: KnowledgeBase | undefined = kbForInfo;

  // 0. Every method's preconditions, before anything is trained: a method that cannot run is skipped with its reason.
  const skipped: SkippedMethod[] = [];
  const facts = kbFacts(kbForInfo.manifest);
  const runnable = methods.filter((m) => {
    const reason = methodPrecondition(m, facts);
    if (reason !== undefined) {
      skipped.push({ key: m.key, name: m.name, reason });
      step(`skip ${m.key}: ${reason}`);
    }
    return reason === undefined;
  });

  // 1. Train the trainable methods (child processes, --jobs at a time; each trains on one core).
  const jobs = trainJobs(o, runnable, { train: datasetDigest(resolve(o.train), trainSet), kb: identity });
  const trainSeconds = new Map<string, number>();
  const failed = new Set<string>();
  const failures: string[] = [];
  if (jobs.length > 0) {
    await kbForInfo.close();
    kb = undefined;
    const t0 = performance.now();
    const outcomes = await trainAll(jobs, o.out, o.jobs, step, options.slots);
    timings.train = (performance.now() - t0) / 1000;
    for (const r of outcomes) {
      if (!r.skipped) timings[`train:${r.key}`] = r.seconds;
      trainSeconds.set(r.key, r.seconds);
      if (r.error !== undefined) {
        failed.add(r.key);
        failures.push(r.error);
        skipped.push({ key: r.key, name: methods.find((m) => m.key === r.key)!.name, reason: r.error });
      }
    }
  }

  // 2. Evaluate every method on the test split, in table order.
  let classes = trainSet.classes;
  let trainCounts = classCounts(trainSet);
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
  const toEvaluate = runnable.filter((m) => !failed.has(m.key));
  const evalOrder = [...toEvaluate.filter((m) => m.train), ...toEvaluate.filter((m) => !m.train)];
  try {
    for (const [i, m] of evalOrder.entries()) {
      const t0 = performance.now();
      if (m.train) {
        const runDir = resolve(o.out, 'runs', m.key);
        const { Predictor } = await import('../infer/predictor.ts'); // ONNX Runtime loads only when a trained method is evaluated
        const run = await Predictor.fromRun(runDir);
        try {
          if (labels === undefined) {
            classes = [...run.classes];
            trainCounts = [...run.trainCounts];
            labels = labelIndices(testSet, classes);
          } else if (!sameClasses(run.classes, classes)) {
            throw new RetformerError(`${runDir}: its classes differ from the other runs' (${run.classes.length} vs ${classes.length}); retrain from the same training CSV`);
          }
          runK ??= run.config.k;
          runEpochs ??= run.config.epochs;
          const r = await evaluateRun(run, testSet, { edges: o.edges, cacheDir: o.cacheDir, quiet: o.quiet });
          const confidences = r.details.outputs.map((p) => Math.round(p.probability * 1e6) / 1e6); // for the calibration charts
          const k = m.train.variant === 'mlp-only' ? undefined : run.config.k;
          byKey.set(m.key, { key: m.key, name: m.name, kind: m.kind, metrics: r.metrics, predictions: r.predictions, confidences, runDir, trainSeconds: trainSeconds.get(m.key), ...(k === undefined ? {} : { k }) });
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
        kb ??= await openKnowledgeBase(normalizeKbSpec(o.kb));
        baselineEncoder ??= await openKbEncoder(normalizeKbSpec(o.kb));
        if (baselineEmbeddings === undefined) {
          const te = performance.now();
          baselineEmbeddings = await embedTestImages(baselineEncoder, testSet, { cacheDir: o.cacheDir, quiet: o.quiet });
          timings.embed = (performance.now() - te) / 1000;
        }
        let predictions: number[];
        const voteK = methodK(o, 'knn-vote') ?? runK ?? DEFAULT_K;
        try {
          predictions =
            m.key === 'knn-vote'
              ? await voteOnSplit(kb, baselineEmbeddings, testSet.samples, classes, trainCounts, voteK, baselineEncoder.id)
              : await zeroShot(baselineEncoder, baselineEmbeddings, classes);
        } catch (err) {
          // a baseline the KB turns out not to support (e.g. pairs without labels) is skipped; the others still finish
          if (!(err instanceof RetformerError)) throw err;
          skipped.push({ key: m.key, name: m.name, reason: err.message });
          step(`[${i + 1}/${evalOrder.length}] eval ${m.key}: skipped: ${err.message}`);
          continue;
        }
        const metrics = computeMetrics({ predictions, labels, classes, trainCounts, edges: o.edges });
        byKey.set(m.key, { key: m.key, name: m.name, kind: m.kind, metrics, predictions, ...(m.key === 'knn-vote' ? { k: voteK } : {}) });
      }
      const seconds = (performance.now() - t0) / 1000;
      timings[`eval:${m.key}`] = seconds;
      step(`[${i + 1}/${evalOrder.length}] eval ${m.key}: overall ${byKey.get(m.key)!.metrics.overall.toFixed(1)}% in ${seconds.toFixed(1)} s`);
    }
  } finally {
    await kb?.close();
    await baselineEncoder?.close();
  }
  const results = methods.filter((m) => byKey.has(m.key)).map((m) => byKey.get(m.key)!);
  // When the methods retrieve with different k (kByMethod), each row says its k.
  const ks = new Set(results.flatMap((r) => (r.k === undefined ? [] : [r.k])));
  if (ks.size > 1) for (const r of results) if (r.k !== undefined) r.name = `${r.name} (k = ${r.k})`;

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
    kb: normalizeKbSpec(o.kb),
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
  if (ks.size > 1) settings.kByMethod = results.flatMap((r) => (r.k === undefined ? [] : [`${r.key} ${r.k}`])).join(', ');
  if (o.fusion?.labelMemory) settings.labelMemory = o.fusion.labelMemory;
  if (o.fusion?.simBias) settings.simBias = true;
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
  if (skipped.length > 0) compare.skipped = skipped;
  writeJsonAtomic(resolve(o.out, 'results.json'), compare);
  writeFileAtomic(resolve(o.out, 'results.md'), formatComparisonMarkdown(compare));
  if (failures.length > 0) {
    step(`results of the ${results.length} methods that finished: ${resolve(o.out, 'results.json')}`);
    throw new RetformerError(failures.join(' | '));
  }
  return compare;
}
