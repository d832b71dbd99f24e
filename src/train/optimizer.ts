import { tf } from '../model/tf.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (AdamW), applied only to the names in `decay`. */
  weightDecay: number;
}

/** Host copy of the optimizer state, for checkpoints. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** AdamW with decoupled weight decay (Loshchilov & Hutter): p -= lr (m^ / (sqrt(v^) + eps) + wd p). */
export class AdamW {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  step = 0;

  constructor(
    private readonly vars: ReadonlyMap<string, tf.Variable>,
    private readonly decay: ReadonlySet<string>,
    private readonly options: AdamWOptions,
  ) {
    for (const [name, p] of vars) {
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
    }
  }

  /** One update with gradients by parameter name and learning rate lr. */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const c1 = 1 - beta1 ** this.step;
    const c2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (const [name, p] of this.vars) {
        const g = grads.get(name);
        if (!g) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        m.assign(m1);
        v.assign(v1);
        let update = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), eps));
        if (weightDecay > 0 && this.decay.has(name)) update = tf.add(update, tf.mul(p, weightDecay));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      }
    });
  }

  state(): AdamWState {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, t] of this.m) m.set(name, t.dataSync() as Float32Array);
    for (const [name, t] of this.v) v.set(name, t.dataSync() as Float32Array);
    return { step: this.step, m, v };
  }

  load(state: AdamWState): void {
    this.step = state.step;
    for (const [name, t] of this.m) {
      const d = state.m.get(name);
      if (d) t.assign(tf.tensor(d, t.shape));
    }
    for (const [name, t] of this.v) {
      const d = state.v.get(name);
      if (d) t.assign(tf.tensor(d, t.shape));
    }
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
  }
}

/** Learning rate at optimizer step `step` (0-based): linear warmup over `warmupSteps`, then cosine to 0 at `totalSteps`. */
export function learningRate(step: number, baseLr: number, warmupSteps: number, totalSteps: number): number {
  if (warmupSteps > 0 && step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps);
  const t = Math.min(1, (step - warmupSteps) / span);
  return 0.5 * baseLr * (1 + Math.cos(Math.PI * t));
}
