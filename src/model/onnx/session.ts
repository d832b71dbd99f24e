import { ort } from '../../util/ort.ts';
import { type ModelConfig, type ModelDims, usesLabels, usesRetrieval, usesSims } from '../config.ts';
import type { ParamValues } from '../params.ts';
import { buildRetformerGraph, GRAD_PREFIX } from './retformer-graph.ts';

/**
 * ONNX Runtime sessions over the RetFormer graphs, one per row count (shapes are static), created on
 * first use. CPU execution; `threads` intra-op threads (1 by default: bit-reproducible results, and
 * parallel training jobs each get a core).
 */
export interface EngineOptions {
  threads?: number;
  /**
   * Turn on ONNX Runtime's kernel profiler (for `bench/profile-train.ts`): every session writes
   * `<prefix>_<time>.json` (Chrome trace format) when it is released.
   */
  profileFilePrefix?: string;
}

/** Model inputs for n rows, row-major (the layout of the tfjs reference's ModelInputs, test/reference/retformer.ts). */
export interface GraphBatch {
  n: number;
  /** z: [n, D]. */
  query: Float32Array;
  /** [z; neighbour images]: [n*(k+1), D] (may be empty for mlp-only). */
  imageTokens: Float32Array;
  /** Neighbour texts by rank: [n*k, D] (may be empty for mlp-only). */
  neighbourTexts: Float32Array;
  /** Label memory only: each neighbour's label as a one-hot row over the model's classes, all zero for none: [n*k, C]. */
  neighbourLabels?: Float32Array;
  /** Similarity bias only: each neighbour's cosine similarity to its query (0 where none): [n*k]. */
  neighbourSims?: Float32Array;
}

function sessionOptions(options: EngineOptions): ort.InferenceSession.SessionOptions {
  const profile = options.profileFilePrefix === undefined ? {} : { enableProfiling: true, profileFilePrefix: options.profileFilePrefix };
  return { intraOpNumThreads: options.threads ?? 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', logSeverityLevel: 3, ...profile };
}

/** A float32 tensor over `data`, no copy: onnxruntime-node reads views (micro-batch subarrays) in place. */
function tensor(data: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

function batchFeeds(config: ModelConfig, dims: ModelDims, b: GraphBatch): Record<string, ort.Tensor> {
  const D = dims.inputDim;
  const feeds: Record<string, ort.Tensor> = { query: tensor(b.query, [b.n, D]) };
  if (usesRetrieval(config)) {
    const { k } = config;
    feeds.imageTokens = tensor(b.imageTokens, [b.n * (k + 1), D]);
    feeds.neighbourTexts = tensor(b.neighbourTexts, [b.n * k, D]);
  }
  return { ...feeds, ...labelAndSimFeeds(config, b, [b.n * config.k, dims.classes]) };
}

/** neighbourLabels (shaped `labelDims`, as the graph's input layout declares them) and neighbourSims [n, k], for a model that reads them. */
function labelAndSimFeeds(config: ModelConfig, b: Pick<GraphBatch, 'n' | 'neighbourLabels' | 'neighbourSims'>, labelDims: number[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  if (usesLabels(config)) {
    if (!b.neighbourLabels) throw new Error(`the model reads neighbour labels (labelMemory ${config.labelMemory}) but the batch has none`);
    feeds.neighbourLabels = tensor(b.neighbourLabels, labelDims);
  }
  if (usesSims(config)) {
    if (!b.neighbourSims) throw new Error('the model reads neighbour similarities (simBias) but the batch has none');
    feeds.neighbourSims = tensor(b.neighbourSims, [b.n, config.k]);
  }
  return feeds;
}

/** Sessions keyed by row count, each over the graph `graphFor(n)`, created on first use. */
class SessionCache {
  private readonly sessions = new Map<number, Promise<ort.InferenceSession>>();
  constructor(
    private readonly graphFor: (n: number) => Uint8Array,
    private readonly options: EngineOptions,
  ) {}
  get(n: number): Promise<ort.InferenceSession> {
    let s = this.sessions.get(n);
    if (!s) {
      s = ort.InferenceSession.create(this.graphFor(n), sessionOptions(this.options));
      this.sessions.set(n, s);
    }
    return s;
  }
  async release(): Promise<void> {
    for (const s of this.sessions.values()) {
      const session = await s;
      if (this.options.profileFilePrefix !== undefined) session.endProfiling(); // writes the profile file
      await session.release();
    }
    this.sessions.clear();
  }
}

export interface StepResult {
  /** lossScale * sum over rows of the (LACE) cross-entropy. */
  loss: number;
  /** Gradient by parameter name (parameters without a path to the loss are absent). */
  grads: Map<string, Float32Array>;
}

/** Forward + loss + backward of the RetFormer head as one native graph. */
export class TrainGraph {
  private readonly cache: SessionCache;
  private readonly adjust: Float32Array;

  constructor(
    readonly config: ModelConfig,
    readonly dims: ModelDims,
    options: EngineOptions & { logitAdjust?: Float32Array } = {},
  ) {
    this.adjust = options.logitAdjust ?? new Float32Array(dims.classes);
    this.cache = new SessionCache((n) => buildRetformerGraph(config, dims, n, { kind: 'train' }).bytes, options);
  }

  /** Loss and gradients for one (micro-)batch with soft targets [n, C]; lossScale is usually 1 / rows of the optimizer batch. */
  async run(params: ParamValues, batch: GraphBatch, targets: Float32Array, lossScale: number): Promise<StepResult> {
    const session = await this.cache.get(batch.n);
    const feeds = batchFeeds(this.config, this.dims, batch);
    feeds.targets = tensor(targets, [batch.n, this.dims.classes]);
    feeds.logitAdjust = tensor(this.adjust, [this.dims.classes]);
    feeds.lossScale = new ort.Tensor('float32', Float32Array.of(lossScale), [1]);
    for (const [name, p] of params) feeds[name] = tensor(p.data, p.shape);
    const out = await session.run(feeds);
    const grads = new Map<string, Float32Array>();
    for (const [name, t] of Object.entries(out)) if (name.startsWith(GRAD_PREFIX)) grads.set(name.slice(GRAD_PREFIX.length), t.data as Float32Array);
    return { loss: (out.loss.data as Float32Array)[0], grads };
  }

  release(): Promise<void> {
    return this.cache.release();
  }
}

export interface ForwardResult {
  /** Fused logits: [n, C]. */
  logits: Float32Array;
  /** Attention over the k neighbours (mean over layers/heads/directions, renormalised): [n, k]; empty for mlp-only. */
  attention: Float32Array;
  /** Adaptive only: retrieval-branch weight per row: [n]. */
  gate?: Float32Array;
  /** The branches before fusion: L_I [n, C] and L_R [n, C] (absent for mlp-only). */
  imageLogits: Float32Array;
  retrievalLogits?: Float32Array;
}

/**
 * Model inputs with the neighbour vectors as f16 bits (an f16 KB's stored rows, not decoded), by
 * rank: [n, k, D] each, zero rows where a query has fewer than k neighbours.
 */
export interface HalfNeighbourBatch {
  n: number;
  /** z: [n, D]. */
  query: Float32Array;
  neighbourImages: Uint16Array;
  neighbourTexts: Uint16Array;
  /** As in GraphBatch: [n*k, C] and [n*k]. */
  neighbourLabels?: Float32Array;
  neighbourSims?: Float32Array;
}

/** Inference with the trained weights baked into the graph. */
export class ForwardGraph {
  private readonly cache: SessionCache;
  /** The graph that takes f16 neighbour vectors ('neighbours' layout), built on first use. */
  private readonly halfCache: SessionCache;

  constructor(
    readonly config: ModelConfig,
    readonly dims: ModelDims,
    weights: ParamValues,
    options: EngineOptions = {},
  ) {
    this.cache = new SessionCache((n) => buildRetformerGraph(config, dims, n, { kind: 'infer', weights }).bytes, options);
    this.halfCache = new SessionCache((n) => buildRetformerGraph(config, dims, n, { kind: 'infer', weights, inputs: 'neighbours', neighbourDtype: 'f16' }).bytes, options);
  }

  async run(batch: GraphBatch): Promise<ForwardResult> {
    const session = await this.cache.get(batch.n);
    return forwardResult(await session.run(batchFeeds(this.config, this.dims, batch)));
  }

  /** The same forward with the neighbour vectors given as f16 bits (cast to float inside the graph: the same values as decoding them first). */
  async runHalf(batch: HalfNeighbourBatch): Promise<ForwardResult> {
    if (!usesRetrieval(this.config)) throw new Error('an mlp-only model takes no neighbour vectors');
    const { n } = batch;
    const { k } = this.config;
    const D = this.dims.inputDim;
    const session = await this.halfCache.get(n);
    const feeds: Record<string, ort.Tensor> = {
      query: tensor(batch.query, [n, D]),
      neighbourImages: new ort.Tensor('float16', batch.neighbourImages, [n, k, D]),
      neighbourTexts: new ort.Tensor('float16', batch.neighbourTexts, [n, k, D]),
      ...labelAndSimFeeds(this.config, batch, [n, k, this.dims.classes]), // the 'neighbours' layout: labels [n, k, C]
    };
    return forwardResult(await session.run(feeds));
  }

  async release(): Promise<void> {
    await this.cache.release();
    await this.halfCache.release();
  }
}

function forwardResult(out: ort.InferenceSession.OnnxValueMapType): ForwardResult {
  return {
    logits: out.logits.data as Float32Array,
    attention: out.attention ? (out.attention.data as Float32Array) : new Float32Array(0),
    gate: out.gate ? (out.gate.data as Float32Array) : undefined,
    imageLogits: out.imageLogits.data as Float32Array,
    retrievalLogits: out.retrievalLogits ? (out.retrievalLogits.data as Float32Array) : undefined,
  };
}
