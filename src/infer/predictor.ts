import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Encoder, ImageSource } from '../encoders/types.ts';
import { kbExists, normalizeKbSpec, openKbEncoder, openKnowledgeBase } from '../kb/index.ts';
import type { KnowledgeBase, Neighbour, WritableKnowledgeBase } from '../kb/types.ts';
import { type ModelConfig, type ModelDims, usesLabels, usesRetrieval, usesSims } from '../model/config.ts';
import { assembleInputs, halfRowsBySlot, labelIndexOf, oneHotLabels } from '../model/inputs.ts';
import { type ForwardResult, ForwardGraph, type HalfNeighbourBatch } from '../model/onnx/session.ts';
import { checkParams, loadParams, paramSpecs } from '../model/params.ts';
import { modelConfigOf, parseTrainConfig, type TrainConfig } from '../train/config.ts';
import { guardNeighbours } from '../train/retrieval.ts';
import { RUN_FILES, type RunKbInfo, readClassesFile, readJson } from '../train/run-files.ts';
import { RetformerError } from '../util/errors.ts';
import type { ClassifyOptions, Prediction, Predictor as PredictorContract, PredictorOptions } from './types.ts';

export type { ClassifyOptions, Evidence, Prediction, PredictorOptions } from './types.ts';

/** Softmax of one row of logits [C]. */
export function softmaxRow(logits: ArrayLike<number>): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The `top` best classes of a probability row, best first (ties: lower index first). */
export function topClasses(probs: Float32Array, classes: readonly string[], top: number): Prediction['top'] {
  if (!Number.isInteger(top) || top < 0) return topClassesBySort(probs, classes, top);
  // one pass keeping the best `top` in order: a full sort of C classes cost ~0.25 ms per prediction at C = 1,000
  const best: number[] = []; // class indices, best first
  for (let c = 0; c < probs.length; c++) {
    const p = probs[c];
    if (Number.isNaN(p)) return topClassesBySort(probs, classes, top); // no order to keep: the sort's answer
    if (best.length === top && (top === 0 || p <= probs[best[top - 1]])) continue; // an equal p loses to the lower index already kept
    let at = best.length;
    while (at > 0 && probs[best[at - 1]] < p) at--;
    best.splice(at, 0, c);
    if (best.length > top) best.pop();
  }
  return best.map((c) => ({ label: c, className: classes[c], probability: probs[c] }));
}

/** The same by a full sort (the definition the one-pass selection must agree with; also its fallback). */
export function topClassesBySort(probs: Float32Array, classes: readonly string[], top: number): Prediction['top'] {
  return Array.from(probs, (p, c) => ({ c, p }))
    .sort((a, b) => b.p - a.p || a.c - b.c)
    .slice(0, top)
    .map(({ c, p }) => ({ label: c, className: classes[c], probability: p }));
}

/** One row of the forward's outputs as a Prediction; attention [count] is renormalised over the neighbours present. */
export function toPrediction(out: ForwardResult, i: number, C: number, k: number, neighbours: Neighbour[], classes: readonly string[], top: number): Prediction {
  const probs = softmaxRow(out.logits.subarray(i * C, (i + 1) * C));
  let label = 0;
  for (let c = 1; c < probs.length; c++) if (probs[c] > probs[label]) label = c;
  const attention = out.attention.length > 0 ? out.attention.slice(i * k, i * k + neighbours.length) : new Float32Array(0); // [count]
  const total = attention.reduce((a, b) => a + b, 0);
  if (total > 0) for (let j = 0; j < attention.length; j++) attention[j] /= total;
  const branches: Prediction['branches'] = { image: out.imageLogits[i * C + label] };
  if (out.retrievalLogits) branches.retrieval = out.retrievalLogits[i * C + label];
  const prediction: Prediction = { label, className: classes[label], probability: probs[label], probs, top: topClasses(probs, classes, top), neighbours, attention, branches };
  if (out.gate) prediction.gate = out.gate[i];
  return prediction;
}

/** What a run folder holds for inference (config, KB record, classes, counts, weights), checked. */
export function readRun(dir: string) {
  if (!existsSync(dir)) throw new RetformerError(`${dir}: run folder not found`);
  const configFile = join(dir, RUN_FILES.config);
  const config = parseTrainConfig(readJson(configFile, 'run config'), configFile);
  const kbInfo = readJson<RunKbInfo>(join(dir, RUN_FILES.kb), 'KB of the run');
  const classes = readClassesFile(dir);
  const trainCounts = readJson<number[]>(join(dir, RUN_FILES.counts), 'training class counts');
  const model = modelConfigOf(config);
  const dims: ModelDims = { inputDim: kbInfo.dim, classes: classes.length };
  const values = loadParams(join(dir, RUN_FILES.model), 'weights');
  checkParams(values, paramSpecs(model, dims), join(dir, RUN_FILES.model));
  return { config, kbInfo, classes, trainCounts, model, dims, values };
}

/** Open the KB a run names (or `override`), with a one-line error that says where the path came from. */
async function openRunKb(dir: string, kbInfo: RunKbInfo, override: string | undefined): Promise<{ kb: WritableKnowledgeBase; kbSpec: string }> {
  const recorded = join(dir, RUN_FILES.kb);
  const kbSpec = override === undefined ? (kbInfo.spec ?? kbInfo.dir) : normalizeKbSpec(override);
  if (!kbSpec) throw new RetformerError(`${dir}: the run was trained on an in-memory KB; give the KB (--kb, or the kbInstance option)`);
  if (!(await kbExists(kbSpec))) {
    if (override !== undefined) throw new RetformerError(`${kbSpec}: knowledge base not found (--kb)`);
    throw new RetformerError(`${kbSpec}: knowledge base not found (the path comes from ${recorded}); if the KB moved, point at it with --kb`);
  }
  return { kb: await openKnowledgeBase(kbSpec), kbSpec };
}

/**
 * A trained run reopened for inference: the weights baked into an ONNX forward graph, the KB (as it
 * is now, so KB edits apply without retraining) and the encoder it was trained with. One object the
 * CLI, the evaluator and the server classify through.
 */
export class Predictor implements PredictorContract {
  private constructor(
    readonly runDir: string,
    readonly classes: readonly string[],
    readonly trainCounts: readonly number[],
    readonly config: Readonly<TrainConfig>,
    readonly kb: KnowledgeBase,
    readonly encoder: Encoder,
    private readonly model: ModelConfig,
    private readonly dims: ModelDims,
    private readonly graph: ForwardGraph,
    private readonly batchSize: number,
    private readonly owned: { kb: boolean; encoder: boolean },
  ) {}

  /** Reopen the run in `runDir` with the KB and encoder it was trained with (or those in `options`). */
  static async fromRun(runDir: string, options: PredictorOptions = {}): Promise<Predictor> {
    const dir = resolve(runDir);
    const { config, kbInfo, classes, trainCounts, model, dims, values } = readRun(dir);
    let kb = options.kbInstance;
    let encoder = options.encoder;
    const owned = { kb: !kb, encoder: !encoder };
    try {
      let kbSpec = options.kb === undefined ? (kbInfo.spec ?? kbInfo.dir) : normalizeKbSpec(options.kb);
      let opened: WritableKnowledgeBase | undefined;
      if (!kb) ({ kb: opened, kbSpec } = await openRunKb(dir, kbInfo, options.kb));
      kb ??= opened!;
      if (!encoder) {
        if (!kbSpec) throw new RetformerError(`${dir}: the run was trained on an in-memory KB; pass its encoder (the encoder option)`);
        encoder = opened ? await opened.openEncoder() : await openKbEncoder(kbSpec);
      }
      if (kb.encoderId !== kbInfo.encoderId) throw new RetformerError(`${kbSpec ?? 'KB'}: encoder "${kb.encoderId}" differs from the run's "${kbInfo.encoderId}" (${join(dir, RUN_FILES.kb)})`);
      if (encoder.id !== kbInfo.encoderId) throw new RetformerError(`encoder "${encoder.id}" differs from the run's "${kbInfo.encoderId}"`);
    } catch (err) {
      if (owned.encoder) await encoder?.close();
      if (owned.kb) await kb?.close();
      throw err;
    }
    const graph = new ForwardGraph(model, dims, values, { threads: options.threads });
    return new Predictor(dir, classes, trainCounts, config, kb, encoder, model, dims, graph, options.batchSize ?? 128, owned);
  }

  async classify(images: readonly ImageSource[], options: ClassifyOptions = {}): Promise<Prediction[]> {
    const D = this.dims.inputDim;
    const out: Prediction[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const end = Math.min(images.length, start + this.batchSize);
      const embeddings = await this.encoder.embedImages(images.slice(start, end)); // [m, D]
      if (embeddings.length !== (end - start) * D) throw new RetformerError(`encoder returned ${embeddings.length} values for ${end - start} images of dim ${D}`);
      const excludeIds = options.excludeIds?.slice(start, end);
      const sources = options.sources?.slice(start, end);
      out.push(...(await this.classifyEmbeddings(embeddings, { ...options, excludeIds, sources, onProgress: undefined })));
      options.onProgress?.(end, images.length);
    }
    return out;
  }

  async classifyEmbeddings(embeddings: Float32Array, options: ClassifyOptions = {}): Promise<Prediction[]> {
    const D = this.dims.inputDim;
    const C = this.dims.classes;
    const { k } = this.model;
    if (embeddings.length % D !== 0) throw new RetformerError(`query embeddings have ${embeddings.length} values, not a multiple of ${D}`);
    const n = embeddings.length / D;
    const top = options.top ?? 5;
    const out: Prediction[] = [];
    for (let start = 0; start < n; start += this.batchSize) {
      const end = Math.min(n, start + this.batchSize);
      const m = end - start;
      const q = embeddings.subarray(start * D, end * D); // [m, D]
      let neighbours: Neighbour[][] = Array.from({ length: m }, () => []);
      let batch = assembleInputs(q, m, D, k, []);
      let half: HalfNeighbourBatch | undefined; // the inputs when the KB hands over f16 rows
      if (usesRetrieval(this.model)) {
        const sources = options.sources?.slice(start, end);
        const want = sources ? k + this.config.retrievalExtra : k; // room for the own pair the guard drops
        const found = await this.kb.search(q, { k: want, queryEncoderId: this.encoder.id, excludeIds: options.excludeIds?.slice(start, end), modality: 'image' });
        neighbours = found.map((l, i) => (sources ? guardNeighbours(l, k, sources[i], options.excludeIds?.[start + i]) : l.slice(0, k)));
        const all = neighbours.flat();
        const rows = [...new Set(all.map((nb) => nb.row))];
        const slotOf = new Map(rows.map((r, i) => [r, i]));
        const slots = new Int32Array(m * k).fill(-1); // [m, k]
        neighbours.forEach((list, b) => {
          list.forEach((nb, j) => {
            slots[b * k + j] = slotOf.get(nb.row)!;
          });
        });
        let labels: Int32Array | undefined; // [rows] class index per row (label memory)
        if (usesLabels(this.model)) {
          const labelOf = new Map(all.map((nb) => [nb.row, nb.label]));
          labels = labelIndexOf(rows.map((r) => labelOf.get(r)), this.classes);
        }
        let sims: Float32Array | undefined; // [m, k]
        if (usesSims(this.model)) {
          sims = new Float32Array(m * k);
          neighbours.forEach((list, b) => {
            list.forEach((nb, j) => {
              sims![b * k + j] = nb.similarity;
            });
          });
        }
        // an f16 KB hands over its stored bits, which the graph casts: no decode here
        const images16 = rows.length > 0 ? await this.kb.halfVectors?.(rows, 'image') : undefined;
        const texts16 = images16 ? await this.kb.halfVectors?.(rows, 'text') : undefined;
        if (images16 && texts16) {
          const neighbourLabels = labels ? oneHotLabels(m * k, slots, labels, C) : undefined;
          half = { n: m, query: q, neighbourImages: halfRowsBySlot(images16, slots, D), neighbourTexts: halfRowsBySlot(texts16, slots, D), neighbourLabels, neighbourSims: sims };
        } else {
          const images = rows.length > 0 ? await this.kb.vectors(rows, 'image') : new Float32Array(0);
          const texts = rows.length > 0 ? await this.kb.vectors(rows, 'text') : new Float32Array(0);
          batch = labels ? assembleInputs(q, m, D, k, slots, { images, texts, labels }, C) : assembleInputs(q, m, D, k, slots, { images, texts });
          if (sims) batch.neighbourSims = sims;
        }
      }
      const result = half ? await this.graph.runHalf(half) : await this.graph.run(batch);
      for (let i = 0; i < m; i++) out.push(toPrediction(result, i, C, k, neighbours[i], this.classes, top));
      options.onProgress?.(end, n);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.graph.release();
    if (this.owned.encoder) await this.encoder.close();
    if (this.owned.kb) await this.kb.close();
  }
}
