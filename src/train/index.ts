import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkImagesExist, classCounts, labelIndices, readDataset } from '../data/index.ts';
import type { Dataset } from '../data/types.ts';
import { defaultCacheDir, EmbeddingCache } from '../encoders/cache.ts';
import type { Encoder } from '../encoders/types.ts';
import { isFolderSpec, kbExists, normalizeKbSpec, openKbEncoder, openKnowledgeBase } from '../kb/index.ts';
import type { KnowledgeBase } from '../kb/types.ts';
import { usesLabels, usesRetrieval, usesSims } from '../model/config.ts';
import { checkParams, initParams, loadParams, paramSpecs, saveParams } from '../model/params.ts';
import { RetformerError, toUserError } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { startProgress } from '../util/progress.ts';
import { Rng } from '../util/rng.ts';
import { assembleBatch, drawMixup, type TrainingData } from './batch.ts';
import { modelConfigOf, parseTrainConfig, readConfigFile, resolveTrainConfig, type TrainConfig } from './config.ts';
import { logPriorAdjustment } from './loss.ts';
import { learningRate } from './optimizer.ts';
import { fetchNeighbourTable, readRetrievalCache, retrievalKey, retrieveNeighbours, writeRetrievalCache } from './retrieval.ts';
import { type CheckpointState, type HistoryLine, RUN_FILES, type RunKbInfo, readJson } from './run-files.ts';
import { Trainer } from './trainer.ts';

export { modelConfigOf, type TrainConfig, TrainConfigSchema } from './config.ts';

export interface TrainRunOptions {
  /** Training manifest (CSV with path,label[,text,id]); or give `dataset`. */
  trainCsv?: string;
  dataset?: Dataset;
  /** KB folder; or give `kb` and `encoder` (in-memory use, tests). */
  kbDir?: string;
  kb?: KnowledgeBase;
  encoder?: Encoder;
  /** Training image embeddings [N, D] from the KB's encoder, when already known (skips encoding). */
  embeddings?: Float32Array;
  /** Per-sample KB ids to exclude from retrieval (default: the samples' ids, from a CSV's `id` column). */
  excludeIds?: readonly (string | undefined)[];
  outDir: string;
  /** JSON config file (partial), then `config` overrides on top. */
  configFile?: string;
  config?: Record<string, unknown>;
  resume?: boolean;
  /** Replace an existing run folder. */
  force?: boolean;
  cacheDir?: string;
  quiet?: boolean;
  /** Called after every epoch (tests, the demo). */
  onEpoch?: (line: HistoryLine) => void;
}

export interface TrainRunResult {
  runDir: string;
  seconds: number;
  samplesPerSecond: number;
  /** Epochs trained by this call (0 when a resumed run had finished), and the run's total. */
  epochsTrained: number;
  epochs: number;
}

/** Check RUN_DIR without touching it: refuse to overwrite a run unless resuming or forced. Returns true when resuming. */
function checkRunDir(dir: string, options: TrainRunOptions): boolean {
  const hasRun = existsSync(join(dir, RUN_FILES.config));
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new RetformerError(`${dir}: exists and is not a folder`);
  if (options.resume) {
    if (!hasRun) throw new RetformerError(`${dir}: nothing to resume (no ${RUN_FILES.config})`);
    return true;
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    if (!options.force) throw new RetformerError(`${dir}: run folder exists; use --resume to continue it or --force to replace it`);
    if (!hasRun) throw new RetformerError(`${dir}: not a run folder (no ${RUN_FILES.config}); refusing to delete it with --force`);
  }
  return false;
}

/** Create RUN_DIR for a new run (replacing a forced one). */
function createRunDir(dir: string, force: boolean | undefined): void {
  if (force && existsSync(join(dir, RUN_FILES.config))) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

/** Train one RetFormer run (see the README of `retformer train`). Deterministic for a seed. */
export async function trainRun(options: TrainRunOptions): Promise<TrainRunResult> {
  const started = performance.now();
  const runDir = resolve(options.outDir);
  const resuming = checkRunDir(runDir, options);
  const quiet = options.quiet;

  // config: defaults <- file <- flags; a resumed run keeps its saved config
  let config: TrainConfig;
  if (resuming) {
    config = parseTrainConfig(readJson(join(runDir, RUN_FILES.config), 'run config'), join(runDir, RUN_FILES.config));
    for (const [key, v] of Object.entries(options.config ?? {})) {
      if (v !== undefined && JSON.stringify((config as Record<string, unknown>)[key]) !== JSON.stringify(v))
        throw new RetformerError(`${runDir}: --resume keeps the saved config, but ${key}=${JSON.stringify(v)} differs from the saved ${JSON.stringify((config as Record<string, unknown>)[key])}`);
    }
  } else {
    config = resolveTrainConfig(options.configFile ? readConfigFile(options.configFile) : undefined, options.config ?? {}, options.configFile ?? 'config');
  }

  // data
  const dataset = options.dataset ?? (options.trainCsv ? readDataset(options.trainCsv) : undefined);
  if (!dataset) throw new RetformerError('no training data: give --train TRAIN.csv');
  if (dataset.samples.length === 0) throw new RetformerError(`${dataset.source}: no training samples`);
  const labels = labelIndices(dataset);
  const classes = dataset.classes;
  const counts = classCounts(dataset);

  // KB and its encoder
  let kb = options.kb;
  let encoder = options.encoder;
  const ownKb = !kb;
  const ownEncoder = !encoder;
  const kbSpec = options.kbDir ? normalizeKbSpec(options.kbDir) : undefined; // a folder or a postgres:// URL
  if (!kb || !encoder) {
    if (!kbSpec) throw new RetformerError('no knowledge base: give --kb KB (a folder or postgres://...)');
    if (!(await kbExists(kbSpec))) throw new RetformerError(`${kbSpec}: knowledge base not found`);
  }
  try {
    const opened = kb ? undefined : await openKnowledgeBase(kbSpec!);
    kb ??= opened!;
    encoder ??= opened ? await opened.openEncoder() : await openKbEncoder(kbSpec!);
    if (encoder.id !== kb.encoderId) throw new RetformerError(`encoder "${encoder.id}" does not match the KB's encoder "${kb.encoderId}"`);
    const recordedSpec = opened?.spec ?? kbSpec; // the backend's own form (a Postgres spec without its password)
    const kbInfo: RunKbInfo = { spec: recordedSpec, dir: recordedSpec && isFolderSpec(recordedSpec) ? recordedSpec : undefined, kbId: typeof kb.manifest.kbId === 'string' ? kb.manifest.kbId : undefined, encoderId: kb.encoderId, generation: kb.manifest.generation, dim: kb.dim, size: kb.size };
    if (resuming) {
      const saved = readJson<RunKbInfo>(join(runDir, RUN_FILES.kb), 'KB of the run');
      if (saved.encoderId !== kb.encoderId) throw new RetformerError(`${kbSpec ?? 'KB'}: encoder "${kb.encoderId}" differs from the run's "${saved.encoderId}" (${join(runDir, RUN_FILES.kb)})`);
    }
    const D = kb.dim;

    // training embeddings through the on-disk cache
    let embeddings = options.embeddings;
    if (!embeddings) {
      checkImagesExist(dataset);
      const cache = new EmbeddingCache(options.cacheDir ?? defaultCacheDir(), encoder);
      const bar = startProgress('embed', dataset.samples.length, { unit: 'img', quiet });
      embeddings = await cache.embedImages(
        encoder,
        dataset.samples.map((s) => s.path),
        { onProgress: (d) => bar.update(d) },
      );
      bar.stop();
    }
    if (embeddings.length !== dataset.samples.length * D)
      throw new RetformerError(`training embeddings have ${embeddings.length} values, expected ${dataset.samples.length} x ${D}`);

    if (!resuming) createRunDir(runDir, options.force);

    // retrieval, computed once and cached in RUN_DIR
    let table: TrainingData['table'];
    let similarities: Float32Array | undefined;
    if (usesRetrieval(config)) {
      const ids = options.excludeIds ?? (dataset.samples.some((s) => s.id !== undefined) ? dataset.samples.map((s) => s.id) : undefined);
      const excludeIds = ids?.map((id) => (id ? new Set([id]) : undefined));
      const sources = dataset.samples.map((s) => s.path);
      const key = retrievalKey({ kbDir: `${kbSpec ?? 'memory'}#${kbInfo.kbId ?? ''}`, generation: kbInfo.generation, encoderId: kb.encoderId, k: config.k, extra: config.retrievalExtra, queries: embeddings, sources, excludeIds });
      const cacheDir = join(runDir, RUN_FILES.retrieval);
      let retrieved = readRetrievalCache(cacheDir, key);
      if (!retrieved) {
        retrieved = await retrieveNeighbours(kb, embeddings, { k: config.k, extra: config.retrievalExtra, queryEncoderId: encoder.id, sources, excludeIds, quiet, label: 'retrieve' });
        writeRetrievalCache(cacheDir, key, retrieved, { generation: kbInfo.generation, encoderId: kb.encoderId });
      }
      table = await fetchNeighbourTable(kb, retrieved.rows, usesLabels(config) ? classes : undefined);
      if (usesSims(config)) similarities = retrieved.similarities;
    }

    if (!resuming) {
      writeJsonAtomic(join(runDir, RUN_FILES.config), config);
      writeJsonAtomic(join(runDir, RUN_FILES.kb), kbInfo);
      writeFileAtomic(join(runDir, RUN_FILES.classes), `${classes.join('\n')}\n`);
      writeJsonAtomic(join(runDir, RUN_FILES.counts), counts);
    }

    const data: TrainingData = { n: dataset.samples.length, dim: D, k: config.k, classes: classes.length, embeddings, labels, table, similarities };
    const result = await trainLoop(runDir, config, data, counts, resuming, options);
    return { runDir, seconds: (performance.now() - started) / 1000, ...result, epochs: config.epochs };
  } finally {
    if (ownEncoder) await encoder?.close();
    if (ownKb) await kb?.close();
  }
}

async function trainLoop(runDir: string, config: TrainConfig, data: TrainingData, counts: number[], resuming: boolean, options: TrainRunOptions): Promise<{ samplesPerSecond: number; epochsTrained: number }> {
  const model = modelConfigOf(config);
  const dims = { inputDim: data.dim, classes: data.classes };
  const specs = paramSpecs(model, dims);
  let start = { epoch: 0, step: 0 };
  let initial = initParams(specs, config.seed);
  const ckDir = join(runDir, RUN_FILES.checkpoint);
  let moments: { m: ReturnType<typeof loadParams>; v: ReturnType<typeof loadParams> } | undefined;
  if (resuming && existsSync(join(runDir, RUN_FILES.checkpointState))) {
    const state = readJson<CheckpointState>(join(runDir, RUN_FILES.checkpointState), 'checkpoint state');
    const folder = join(ckDir, state.folder);
    initial = loadParams(folder, 'weights');
    checkParams(initial, specs, folder);
    moments = { m: loadParams(folder, 'adam-m'), v: loadParams(folder, 'adam-v') };
    start = { epoch: state.epoch, step: state.step };
  }
  const trainer = new Trainer(model, dims, initial, {
    weightDecay: config.weightDecay,
    microBatch: config.microBatch,
    logitAdjust: config.loss === 'lace' ? logPriorAdjustment(counts, config.lacTau) : undefined,
    threads: config.threads,
  });
  if (moments) {
    const m = new Map([...moments.m].map(([k, v]) => [k, v.data]));
    const v = new Map([...moments.v].map(([k, t]) => [k, t.data]));
    trainer.optimizer.load({ step: start.step, m, v });
  }

  const N = data.n;
  const stepsPerEpoch = Math.ceil(N / config.batchSize);
  const totalSteps = stepsPerEpoch * config.epochs;
  const warmupSteps = Math.round(config.warmupEpochs * stepsPerEpoch);
  let step = start.step;
  let trainedSamples = 0;
  let trainedSeconds = 0;
  try {
    for (let epoch = start.epoch; epoch < config.epochs; epoch++) {
      // per-epoch streams, so that a resumed run draws exactly what an uninterrupted one would
      const rng = new Rng(config.seed * 7919 + epoch + 1);
      const order = rng.shuffle(Array.from({ length: N }, (_, i) => i));
      const mixRng = rng.fork();
      const t0 = performance.now();
      const bar = startProgress(`epoch ${epoch + 1}/${config.epochs}`, N, { unit: 'samples', quiet: options.quiet, fields: ['loss', 'lr'] });
      let lossSum = 0;
      let lr = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const idx = order.slice(s * config.batchSize, (s + 1) * config.batchSize);
        const batch = assembleBatch(data, idx, config.labelSmoothing, drawMixup(mixRng, idx.length, config.mixupAlpha));
        lr = learningRate(step, config.lr, warmupSteps, totalSteps);
        const loss = await trainer.step(batch, lr);
        step++;
        lossSum += loss * idx.length;
        bar.tick(idx.length, { loss: loss.toFixed(4), lr: lr.toExponential(2) });
      }
      bar.stop();
      const seconds = (performance.now() - t0) / 1000;
      trainedSamples += N;
      trainedSeconds += seconds;
      const line: HistoryLine = { epoch: epoch + 1, loss: lossSum / N, lr, seconds, samplesPerSecond: N / seconds };
      saveCheckpoint(ckDir, runDir, trainer, epoch + 1, step);
      appendHistory(join(runDir, RUN_FILES.history), line);
      options.onEpoch?.(line);
    }
    saveParams(join(runDir, RUN_FILES.model), trainer.values(), 'weights');
  } finally {
    await trainer.dispose();
  }
  return { samplesPerSecond: trainedSeconds > 0 ? trainedSamples / trainedSeconds : 0, epochsTrained: config.epochs - start.epoch };
}

/** Write weights + AdamW moments into checkpoint/epoch-<e>/, then point state.json at it, then drop older folders. */
function saveCheckpoint(ckDir: string, runDir: string, trainer: Trainer, epoch: number, step: number): void {
  const folderName = `epoch-${epoch}`;
  const folder = join(ckDir, folderName);
  try {
    mkdirSync(folder, { recursive: true });
    saveParams(folder, trainer.values(), 'weights');
    const st = trainer.optimizerState();
    const shapes = new Map([...trainer.params].map(([k, p]) => [k, p.shape]));
    saveParams(folder, new Map([...st.m].map(([k, d]) => [k, { shape: shapes.get(k)!, data: d }])), 'adam-m');
    saveParams(folder, new Map([...st.v].map(([k, d]) => [k, { shape: shapes.get(k)!, data: d }])), 'adam-v');
    const state: CheckpointState = { epoch, step, folder: folderName };
    writeJsonAtomic(join(runDir, RUN_FILES.checkpointState), state);
  } catch (err) {
    // state.json still names the previous checkpoint (if any): drop the incomplete folder, keep that one
    rmSync(folder, { recursive: true, force: true });
    throw toUserError(err, folder) ?? err;
  }
  for (const name of readdirSync(ckDir)) {
    if (name.startsWith('epoch-') && name !== folderName) rmSync(join(ckDir, name), { recursive: true, force: true });
  }
}

/** Add one epoch's line to history.jsonl by replacing the file atomically: a full disk never leaves half a line. */
function appendHistory(file: string, line: HistoryLine): void {
  const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
  writeFileAtomic(file, `${before}${JSON.stringify(line)}\n`);
}
