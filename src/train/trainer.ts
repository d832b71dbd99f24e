import { type ModelConfig, type ModelDims, usesRetrieval } from '../model/config.ts';
import { type ParamValues, fromVariables, paramSpecs, toVariables } from '../model/params.ts';
import { forward } from '../model/retformer.ts';
import { tf } from '../model/tf.ts';
import { softCrossEntropy } from './loss.ts';
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
}

export interface TrainerOptions {
  weightDecay: number;
  /** Rows per forward/backward pass (gradients are accumulated over the batch); the wasm heap stops at 4 GB. */
  microBatch: number;
  /** LACE term tau_la * log(prior): [C], or undefined for plain CE. */
  logitAdjust?: Float32Array;
}

/** Holds the variables and optimizer of one model; one `step` = one AdamW update over a (micro-batched) batch. */
export class Trainer {
  readonly vars: Map<string, tf.Variable>;
  readonly optimizer: AdamW;
  private readonly adjust?: tf.Tensor1D;

  constructor(
    readonly config: ModelConfig,
    readonly dims: ModelDims,
    initial: ParamValues,
    private readonly options: TrainerOptions,
  ) {
    this.vars = toVariables(initial);
    const decay = new Set(
      paramSpecs(config, dims)
        .filter((s) => s.decay)
        .map((s) => s.name),
    );
    this.optimizer = new AdamW(this.vars, decay, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: options.weightDecay });
    if (options.logitAdjust) this.adjust = tf.tensor1d(options.logitAdjust);
  }

  /** Forward + backward over the batch in micro-batches, then one AdamW update. Returns the batch's mean loss. */
  step(batch: HostBatch, lr: number): number {
    const { inputDim: D, classes: C } = this.dims;
    const k = this.config.k;
    const retrieval = usesRetrieval(this.config);
    const varList = [...this.vars.values()];
    const names = [...this.vars.keys()];
    let acc: (tf.Tensor | undefined)[] | undefined;
    let lossSum = 0;
    for (let start = 0; start < batch.n; start += this.options.microBatch) {
      const m = Math.min(this.options.microBatch, batch.n - start);
      const weight = m / batch.n;
      const { value, grads } = tf.tidy(() => {
        const query = tf.tensor2d(batch.query.subarray(start * D, (start + m) * D), [m, D]);
        const targets = tf.tensor2d(batch.targets.subarray(start * C, (start + m) * C), [m, C]);
        const imageTokens = retrieval ? tf.tensor2d(batch.imageTokens.subarray(start * (k + 1) * D, (start + m) * (k + 1) * D), [m * (k + 1), D]) : undefined;
        const neighbourTexts = retrieval ? tf.tensor2d(batch.neighbourTexts.subarray(start * k * D, (start + m) * k * D), [m * k, D]) : undefined;
        return tf.variableGrads(() => {
          const { logits } = forward(this.vars, this.config, this.dims, { query, imageTokens, neighbourTexts });
          return tf.mul(softCrossEntropy(logits, targets, this.adjust), weight) as tf.Scalar;
        }, varList);
      });
      lossSum += value.dataSync()[0];
      value.dispose();
      // a parameter the variant does not use gets no gradient: treat it as zero
      const g: (tf.Tensor | undefined)[] = names.map((nm) => grads[this.vars.get(nm)!.name]);
      if (!acc) acc = g;
      else {
        const prev = acc;
        acc = prev.map((a, i) => (a && g[i] ? tf.add(a, g[i]!) : (a ?? g[i])));
        prev.forEach((a, i) => {
          if (a && g[i]) {
            a.dispose();
            g[i]!.dispose();
          }
        });
      }
    }
    const gradMap = new Map<string, tf.Tensor>();
    names.forEach((nm, i) => {
      if (acc?.[i]) gradMap.set(nm, acc[i]);
    });
    this.optimizer.apply(gradMap, lr);
    for (const t of acc ?? []) t?.dispose();
    return lossSum;
  }

  values(): ParamValues {
    return fromVariables(this.vars);
  }

  optimizerState(): AdamWState {
    return this.optimizer.state();
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.optimizer.dispose();
    this.adjust?.dispose();
  }
}
