import { type ModelConfig, type ModelDims, usesRetrieval } from '../model/config.ts';
import { TrainGraph } from '../model/onnx/session.ts';
import { cloneParams, type ParamValues, paramSpecs } from '../model/params.ts';
import { AdamW, type AdamWState } from './optimizer.ts';

/** One optimizer batch on the host, already mixed (Mixup) and with soft targets. */
export interface HostBatch {
  n: number;
  /** z: [n, D]. */
  query: Float32Array;
  /** [z; neighbour images] per sample: [n*(k+1), D] (empty for mlp-only). */
  imageTokens: Float32Array;
  /** Neighbour texts aligned by rank: [n*k, D] (empty for mlp-only). */
  neighbourTexts: Float32Array;
  /** Soft targets: [n, C]. */
  targets: Float32Array;
  /** Label memory: neighbour labels as (mixed) one-hot rows: [n*k, C]. */
  neighbourLabels?: Float32Array;
  /** Similarity bias: neighbour similarities by rank (mixed): [n*k]. */
  neighbourSims?: Float32Array;
}

export interface TrainerOptions {
  weightDecay: number;
  /** Rows per forward/backward pass; gradients are summed over the batch's micro-batches. */
  microBatch: number;
  /** LACE term tau_la * log(prior): [C], or undefined for plain CE. */
  logitAdjust?: Float32Array;
  /** ONNX Runtime intra-op threads (default 1). */
  threads?: number;
}

/**
 * Holds the parameters (host arrays) and AdamW state of one model; one `step` = one AdamW update
 * over a batch, whose forward, loss and backward run as one ONNX Runtime graph per micro-batch.
 */
export class Trainer {
  readonly params: ParamValues;
  readonly optimizer: AdamW;
  private readonly graph: TrainGraph;

  constructor(
    readonly config: ModelConfig,
    readonly dims: ModelDims,
    initial: ParamValues,
    private readonly options: TrainerOptions,
  ) {
    this.params = cloneParams(initial);
    const decay = new Set(
      paramSpecs(config, dims)
        .filter((s) => s.decay)
        .map((s) => s.name),
    );
    this.optimizer = new AdamW(this.params, decay, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: options.weightDecay });
    this.graph = new TrainGraph(config, dims, { logitAdjust: options.logitAdjust, threads: options.threads });
  }

  /** Forward + backward over the batch in micro-batches, then one AdamW update. Returns the batch's mean loss. */
  async step(batch: HostBatch, lr: number): Promise<number> {
    const { inputDim: D, classes: C } = this.dims;
    const k = this.config.k;
    const retrieval = usesRetrieval(this.config);
    let acc: Map<string, Float32Array> | undefined;
    let loss = 0;
    for (let start = 0; start < batch.n; start += this.options.microBatch) {
      const end = Math.min(batch.n, start + this.options.microBatch);
      const micro = {
        n: end - start,
        query: batch.query.subarray(start * D, end * D),
        imageTokens: retrieval ? batch.imageTokens.subarray(start * (k + 1) * D, end * (k + 1) * D) : batch.imageTokens,
        neighbourTexts: retrieval ? batch.neighbourTexts.subarray(start * k * D, end * k * D) : batch.neighbourTexts,
        neighbourLabels: batch.neighbourLabels?.subarray(start * k * C, end * k * C),
        neighbourSims: batch.neighbourSims?.subarray(start * k, end * k),
      };
      const r = await this.graph.run(this.params, micro, batch.targets.subarray(start * C, end * C), 1 / batch.n);
      loss += r.loss;
      if (!acc) acc = r.grads;
      else {
        for (const [name, g] of r.grads) {
          const a = acc.get(name);
          if (!a) acc.set(name, g);
          else for (let i = 0; i < a.length; i++) a[i] += g[i];
        }
      }
    }
    this.optimizer.apply(acc ?? new Map(), lr);
    return loss;
  }

  /** A copy of the current parameters. */
  values(): ParamValues {
    return cloneParams(this.params);
  }

  optimizerState(): AdamWState {
    return this.optimizer.state();
  }

  async dispose(): Promise<void> {
    await this.graph.release();
  }
}
