import type { ParamValues } from '../model/params.ts';

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

/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter) on host arrays, updating `params` in place:
 * p -= lr (m^ / (sqrt(v^) + eps) + wd p). A few hundred thousand parameters: well under a millisecond.
 */
export class AdamW {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  step = 0;

  constructor(
    private readonly params: ParamValues,
    private readonly decay: ReadonlySet<string>,
    private readonly options: AdamWOptions,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.data.length));
      this.v.set(name, new Float32Array(p.data.length));
    }
  }

  /** One update with gradients by parameter name (a parameter without one is left as it is) and learning rate lr. */
  apply(grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const c1 = 1 - beta1 ** this.step;
    const c2 = 1 - beta2 ** this.step;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const wd = this.decay.has(name) ? weightDecay : 0;
      const w = p.data;
      for (let i = 0; i < w.length; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + eps) + wd * w[i]);
      }
    }
  }

  state(): AdamWState {
    const copy = (src: Map<string, Float32Array>) => new Map([...src].map(([k, a]) => [k, a.slice()]));
    return { step: this.step, m: copy(this.m), v: copy(this.v) };
  }

  load(state: AdamWState): void {
    this.step = state.step;
    for (const [name, a] of this.m) {
      const d = state.m.get(name);
      if (d) a.set(d);
    }
    for (const [name, a] of this.v) {
      const d = state.v.get(name);
      if (d) a.set(d);
    }
  }
}

/** Learning rate at optimizer step `step` (0-based): linear warmup over `warmupSteps`, then cosine to 0 at `totalSteps`. */
export function learningRate(step: number, baseLr: number, warmupSteps: number, totalSteps: number): number {
  if (warmupSteps > 0 && step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps);
  const t = Math.min(1, (step - warmupSteps) / span);
  return 0.5 * baseLr * (1 + Math.cos(Math.PI * t));
}
