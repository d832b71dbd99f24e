import { join, resolve } from 'node:path';
import type { Encoder } from '../encoders/types.ts';
import { openKbEncoder, openKnowledgeBase } from '../kb/index.ts';
import type { KnowledgeBase, Neighbour } from '../kb/types.ts';
import { type ModelConfig, type ModelDims, usesRetrieval } from '../model/config.ts';
import { ForwardGraph } from '../model/onnx/session.ts';
import { checkParams, loadParams, paramSpecs } from '../model/params.ts';
import { RetformerError } from '../util/errors.ts';
import { parseTrainConfig } from './config.ts';
import { modelConfigOf } from './index.ts';
import { RUN_FILES, type RunKbInfo, readClassesFile, readJson } from './run-files.ts';
import { guardNeighbours } from './retrieval.ts';
import type { LoadedRun, Prediction, PredictOptions } from './types.ts';

export interface LoadRunOptions {
  /** Use this KB instead of reopening the run's (in-memory KBs, tests); must have the run's encoder id. */
  kb?: KnowledgeBase;
  encoder?: Encoder;
  /** Rows per forward pass (default 128). */
  batchSize?: number;
  /** ONNX Runtime intra-op threads (default 1). */
  threads?: number;
}

/** Inputs of the model for n queries, laid out as the forward expects. */
interface PredictBatch {
  query: Float32Array; // [n, D]
  imageTokens: Float32Array; // [n*(k+1), D]
  neighbourTexts: Float32Array; // [n*k, D]
}

/** Build model inputs for queries [n, D] and their neighbours (row vectors looked up in `vec`). */
function buildPredictBatch(queries: Float32Array, neighbours: readonly Neighbour[][], k: number, D: number, vec: { slot: Map<number, number>; images: Float32Array; texts: Float32Array }): PredictBatch {
  const n = neighbours.length;
  const imageTokens = new Float32Array(n * (k + 1) * D);
  const neighbourTexts = new Float32Array(n * k * D);
  for (let b = 0; b < n; b++) {
    imageTokens.set(queries.subarray(b * D, (b + 1) * D), b * (k + 1) * D);
    neighbours[b].slice(0, k).forEach((nb, j) => {
      const u = vec.slot.get(nb.row)!;
      imageTokens.set(vec.images.subarray(u * D, (u + 1) * D), (b * (k + 1) + 1 + j) * D);
      neighbourTexts.set(vec.texts.subarray(u * D, (u + 1) * D), (b * k + j) * D);
    });
  }
  return { query: queries, imageTokens, neighbourTexts };
}

function softmaxRow(logits: Float32Array): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** A prediction from fused logits [C]; attention [count] is renormalised over the neighbours actually present. */
function toPrediction(logits: Float32Array, neighbours: Neighbour[], attention: Float32Array, gate?: number): Prediction {
  const probs = softmaxRow(logits);
  let label = 0;
  for (let c = 1; c < probs.length; c++) if (probs[c] > probs[label]) label = c;
  const total = attention.reduce((a, b) => a + b, 0);
  if (total > 0) for (let j = 0; j < attention.length; j++) attention[j] /= total;
  const pred: Prediction = { label, probs, neighbours, attention };
  if (gate !== undefined) pred.gate = gate;
  return pred;
}

/** Reopen a trained run for inference with the KB (as it is now) and encoder it was trained with. */
export async function loadRun(runDir: string, options: LoadRunOptions = {}): Promise<LoadedRun> {
  const dir = resolve(runDir);
  const configFile = join(dir, RUN_FILES.config);
  const config = parseTrainConfig(readJson(configFile, 'run config'), configFile);
  const kbInfo = readJson<RunKbInfo>(join(dir, RUN_FILES.kb), 'KB of the run');
  const classes = readClassesFile(dir);
  const trainCounts = readJson<number[]>(join(dir, RUN_FILES.counts), 'training class counts');
  const model: ModelConfig = modelConfigOf(config);
  const dims: ModelDims = { inputDim: kbInfo.dim, classes: classes.length };
  const values = loadParams(join(dir, RUN_FILES.model), 'weights');
  checkParams(values, paramSpecs(model, dims), join(dir, RUN_FILES.model));

  let kb = options.kb;
  let encoder = options.encoder;
  const ownKb = !kb;
  const ownEncoder = !encoder;
  if (!kb || !encoder) {
    if (!kbInfo.dir) throw new RetformerError(`${dir}: the run was trained on an in-memory KB; pass the KB to loadRun`);
    kb ??= await openKnowledgeBase(kbInfo.dir);
    encoder ??= await openKbEncoder(kbInfo.dir);
  }
  if (kb.encoderId !== kbInfo.encoderId) throw new RetformerError(`${kbInfo.dir ?? 'KB'}: encoder "${kb.encoderId}" differs from the run's "${kbInfo.encoderId}" (${join(dir, RUN_FILES.kb)})`);
  if (encoder.id !== kbInfo.encoderId) throw new RetformerError(`encoder "${encoder.id}" differs from the run's "${kbInfo.encoderId}"`);
  const graph = new ForwardGraph(model, dims, values, { threads: options.threads });
  const batchSize = options.batchSize ?? 128;
  const theKb = kb;
  const theEncoder = encoder;
  const { k } = model;
  const D = dims.inputDim;

  async function predict(embeddings: Float32Array, opts: PredictOptions = {}): Promise<Prediction[]> {
    if (embeddings.length % D !== 0) throw new RetformerError(`query embeddings have ${embeddings.length} values, not a multiple of ${D}`);
    const n = embeddings.length / D;
    const out: Prediction[] = [];
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      const m = end - start;
      const q = embeddings.subarray(start * D, end * D);
      let neighbours: Neighbour[][] = Array.from({ length: m }, () => []);
      let batch: PredictBatch = { query: q, imageTokens: new Float32Array(0), neighbourTexts: new Float32Array(0) };
      if (usesRetrieval(model)) {
        const sources = opts.sources?.slice(start, end);
        const want = sources ? k + config.retrievalExtra : k; // room for the own pair the guard drops
        const found = await theKb.search(q, { k: want, queryEncoderId: theEncoder.id, excludeIds: opts.excludeIds?.slice(start, end), modality: 'image' });
        neighbours = found.map((l, i) => (sources ? guardNeighbours(l, k, sources[i], opts.excludeIds?.[start + i]) : l.slice(0, k)));
        const rows = [...new Set(neighbours.flat().map((nb) => nb.row))];
        const slot = new Map(rows.map((r, i) => [r, i]));
        const images = rows.length > 0 ? await theKb.vectors(rows, 'image') : new Float32Array(0);
        const texts = rows.length > 0 ? await theKb.vectors(rows, 'text') : new Float32Array(0);
        batch = buildPredictBatch(q, neighbours, k, D, { slot, images, texts });
      }
      const { logits: L, attention: A, gate: G } = await graph.run({ n: m, ...batch });
      const C = classes.length;
      for (let i = 0; i < m; i++) {
        const count = neighbours[i].length;
        const att = A.length > 0 ? A.slice(i * k, i * k + count) : new Float32Array(0); // [count]
        out.push(toPrediction(L.subarray(i * C, (i + 1) * C), neighbours[i], att, G?.[i]));
      }
    }
    return out;
  }

  return {
    dir,
    config: config as LoadedRun['config'],
    classes,
    trainCounts,
    kb: theKb,
    encoder: theEncoder,
    predict,
    async close() {
      await graph.release();
      if (ownEncoder) await theEncoder.close();
      if (ownKb) await theKb.close();
    },
  };
}
