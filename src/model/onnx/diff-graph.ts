import { ElemType, OnnxGraphBuilder, type ValueSpec } from '../../util/onnx-builder.ts';

/**
 * A differentiable ONNX graph with static shapes: every op emits its forward node(s) and records a
 * rule that, run in reverse order, emits the nodes of its input gradients. This is what lets ONNX
 * Runtime (whose Node build has no training API) run the whole training step — forward, loss and
 * backward — as one native graph, about ten times the rate of tfjs-wasm on this CPU.
 *
 * Only the ops the RetFormer head needs exist; each rule is cross-checked against tfjs's autodiff in
 * test/model-onnx.test.ts (the tfjs reference lives in test/reference/). The whole RetFormer graph,
 * loss included, is written through these ops: no raw ONNX nodes outside this class.
 */
export interface Value {
  readonly name: string;
  readonly shape: readonly number[];
  /** Whether a gradient flows back into this value (it depends on a parameter). */
  readonly grad: boolean;
}

/** Emits the input gradients of one op given its output gradient (undefined for inputs that need none). */
type BackRule = (g: string) => (string | undefined)[];

interface TapeEntry {
  inputs: Value[];
  out: Value;
  back: BackRule;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** numpy-style broadcast of two shapes (right-aligned). */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    out.push(Math.max(x, y));
  }
  return out;
}

export class DiffGraph {
  readonly b = new OnnxGraphBuilder('fp32');
  private readonly tape: TapeEntry[] = [];
  private readonly inputSpecs: ValueSpec[] = [];
  private readonly scalars = new Map<number, string>();

  /** A graph input; `grad` marks a trainable parameter fed at run time. */
  input(name: string, shape: readonly number[], grad = false): Value {
    this.inputSpecs.push({ name, elemType: ElemType.FLOAT, dims: [...shape] });
    return { name, shape, grad };
  }

  /** An f16 graph input, cast to float inside the graph (inference graphs: no gradient reaches it). */
  halfInput(name: string, shape: readonly number[]): Value {
    this.inputSpecs.push({ name, elemType: ElemType.FLOAT16, dims: [...shape] });
    return { name: this.b.node('Cast', [name], { to: ElemType.FLOAT }), shape, grad: false };
  }

  /** A baked trainable-shaped weight (inference graphs): a constant to the graph. */
  weight(name: string, data: Float32Array, shape: readonly number[]): Value {
    return { name: this.b.floatConst(name, data, [...shape]), shape, grad: false };
  }

  zeros(shape: readonly number[]): Value {
    return { name: this.b.floatConst(this.b.fresh('zeros'), new Float32Array(size(shape)), [...shape]), shape, grad: false };
  }

  /** A float scalar constant (shape []), no gradient. */
  constant(v: number): Value {
    return { name: this.scalar(v), shape: [], grad: false };
  }

  /** A float scalar constant, one per value per graph. */
  private scalar(v: number): string {
    let name = this.scalars.get(v);
    if (!name) {
      name = this.b.floatConst(this.b.fresh('scalar'), new Float32Array([v]), []);
      this.scalars.set(v, name);
    }
    return name;
  }

  private ints(values: readonly number[]): string {
    return this.b.int64Const(this.b.fresh('ints'), [...values]);
  }

  private push(inputs: Value[], out: Value, back: BackRule): void {
    this.tape.push({ inputs, out, back });
  }

  private record(op: string, inputs: Value[], shape: readonly number[], back: BackRule, attrs: Record<string, number | number[] | { float: number }> = {}, extra: string[] = []): Value {
    const name = this.b.node(op, [...inputs.map((v) => v.name), ...extra], attrs);
    const out: Value = { name, shape, grad: inputs.some((v) => v.grad) };
    if (out.grad) this.push(inputs, out, back);
    return out;
  }

  /** Sum a gradient of shape `from` down to `to` (undo broadcasting). */
  private unbroadcast(g: string, from: readonly number[], to: readonly number[]): string {
    const lead = from.length - to.length;
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) if (i < lead || (to[i - lead] === 1 && from[i] !== 1)) axes.push(i);
    if (axes.length === 0) return g;
    const summed = this.b.node('ReduceSum', [g, this.ints(axes)], { keepdims: 1 });
    return this.b.node('Reshape', [summed, this.ints(to)]);
  }

  // ---- ops ------------------------------------------------------------------------------------

  /** [.., m, k] x [.., k, n] (same rank, 2-D or batched 3-D). */
  matmul(a: Value, w: Value): Value {
    const r = a.shape.length;
    if (r !== w.shape.length || a.shape[r - 1] !== w.shape[r - 2]) throw new Error(`matmul [${a.shape}] x [${w.shape}]`);
    const shape = [...a.shape.slice(0, r - 1), w.shape[r - 1]];
    const perm = r === 3 ? [0, 2, 1] : [1, 0];
    return this.record('MatMul', [a, w], shape, (g) => [
      a.grad ? this.b.node('MatMul', [g, this.b.node('Transpose', [w.name], { perm })]) : undefined,
      w.grad ? this.b.node('MatMul', [this.b.node('Transpose', [a.name], { perm }), g]) : undefined,
    ]);
  }

  add(a: Value, c: Value): Value {
    const shape = broadcastShape(a.shape, c.shape);
    return this.record('Add', [a, c], shape, (g) => [a.grad ? this.unbroadcast(g, shape, a.shape) : undefined, c.grad ? this.unbroadcast(g, shape, c.shape) : undefined]);
  }

  mul(a: Value, c: Value): Value {
    const shape = broadcastShape(a.shape, c.shape);
    return this.record('Mul', [a, c], shape, (g) => [
      a.grad ? this.unbroadcast(this.b.node('Mul', [g, c.name]), shape, a.shape) : undefined,
      c.grad ? this.unbroadcast(this.b.node('Mul', [g, a.name]), shape, c.shape) : undefined,
    ]);
  }

  /** x * s for a number s. */
  scale(x: Value, s: number): Value {
    const k = this.scalar(s);
    return this.record('Mul', [x], x.shape, (g) => [this.b.node('Mul', [g, k])], {}, [k]);
  }

  /** 1 - x. */
  oneMinus(x: Value): Value {
    const one = this.scalar(1);
    const name = this.b.node('Sub', [one, x.name]);
    const out: Value = { name, shape: x.shape, grad: x.grad };
    if (x.grad) this.push([x], out, (g) => [this.b.node('Neg', [g])]);
    return out;
  }

  tanh(x: Value): Value {
    const out = this.record('Tanh', [x], x.shape, (g) => [this.b.node('Mul', [g, this.b.node('Sub', [this.scalar(1), this.b.node('Mul', [out.name, out.name])])])]);
    return out;
  }

  sigmoid(x: Value): Value {
    const out = this.record('Sigmoid', [x], x.shape, (g) => [
      this.b.node('Mul', [g, this.b.node('Mul', [out.name, this.b.node('Sub', [this.scalar(1), out.name])])]),
    ]);
    return out;
  }

  /** Softmax over the last axis. */
  softmax(x: Value): Value {
    const out = this.record(
      'Softmax',
      [x],
      x.shape,
      (g) => {
        const dot = this.b.node('ReduceSum', [this.b.node('Mul', [g, out.name]), this.ints([-1])], { keepdims: 1 });
        return [this.b.node('Mul', [out.name, this.b.node('Sub', [g, dot])])];
      },
      { axis: -1 },
    );
    return out;
  }

  /** Sum over `axes`; the gradient is the output gradient broadcast back over the summed axes. */
  sum(x: Value, axes: readonly number[], keepdims: boolean): Value {
    const rank = x.shape.length;
    const summed = new Set(axes.map((a) => (a + rank) % rank));
    const kept = x.shape.map((s, i) => (summed.has(i) ? 1 : s));
    const shape = keepdims ? kept : x.shape.filter((_, i) => !summed.has(i));
    return this.record(
      'ReduceSum',
      [x],
      shape,
      (g) => [this.b.node('Expand', [keepdims ? g : this.b.node('Reshape', [g, this.ints(kept)]), this.ints(x.shape)])],
      { keepdims: keepdims ? 1 : 0 },
      [this.ints(axes)],
    );
  }

  /** a / c (broadcasting). */
  div(a: Value, c: Value): Value {
    const shape = broadcastShape(a.shape, c.shape);
    const out = this.record('Div', [a, c], shape, (g) => [
      a.grad ? this.unbroadcast(this.b.node('Div', [g, c.name]), shape, a.shape) : undefined,
      c.grad ? this.unbroadcast(this.b.node('Neg', [this.b.node('Div', [this.b.node('Mul', [g, out.name]), c.name])]), shape, c.shape) : undefined,
    ]);
    return out;
  }

  /**
   * The training loss over logits f [n, C]: lossScale * sum over rows of the soft-target
   * cross-entropy -sum_c t_c log softmax(f + adjust)_c, as one op with its closed-form gradient
   * d loss / d f = lossScale * (softmax(f + adjust) * sum_c t - t) (cheaper and tighter than
   * differentiating LogSoftmax). targets [n, C], adjust [C] (LACE's log prior, zeros for CE) and
   * lossScale [1] are inputs without gradient. Output: [1].
   */
  softCrossEntropy(logits: Value, targets: Value, adjust: Value, lossScale: Value): Value {
    const b = this.b;
    const f = b.node('Add', [logits.name, adjust.name]); // [n, C]
    const logp = b.node('LogSoftmax', [f], { axis: -1 });
    const ce = b.node('Neg', [b.node('ReduceSum', [b.node('Mul', [targets.name, logp]), b.int64Const(b.fresh('all'), [0, 1])], { keepdims: 0 })]);
    const out: Value = { name: b.node('Mul', [ce, lossScale.name]), shape: [1], grad: logits.grad };
    if (logits.grad) {
      this.push([logits], out, (g) => {
        const rowMass = b.node('ReduceSum', [targets.name, b.int64Const(b.fresh('classAxis'), [1])], { keepdims: 1 }); // [n, 1]
        const seed = b.node('Mul', [b.node('Sub', [b.node('Mul', [b.node('Softmax', [f], { axis: -1 }), rowMass]), targets.name]), lossScale.name]);
        return [b.node('Mul', [seed, g])];
      });
    }
    return out;
  }

  /** Layer norm over the last axis (ONNX LayerNormalization, whose Mean and InvStdDev outputs the backward reuses). */
  layerNorm(x: Value, gamma: Value, beta: Value, eps = 1e-5): Value {
    const [y, mean, inv] = this.b.nodeOutputs('LayerNormalization', [x.name, gamma.name, beta.name], { axis: -1, epsilon: { float: eps } }, [
      this.b.fresh('ln'),
      this.b.fresh('ln_mean'),
      this.b.fresh('ln_inv'),
    ]);
    const out: Value = { name: y, shape: x.shape, grad: x.grad || gamma.grad || beta.grad };
    if (out.grad) {
      this.push([x, gamma, beta], out, (g) => {
        const xhat = this.b.node('Mul', [this.b.node('Sub', [x.name, mean]), inv]); // [.., d]
        let gx: string | undefined;
        if (x.grad) {
          const gh = this.b.node('Mul', [g, gamma.name]);
          const m1 = this.b.node('ReduceMean', [gh], { axes: [-1], keepdims: 1 });
          const m2 = this.b.node('ReduceMean', [this.b.node('Mul', [gh, xhat])], { axes: [-1], keepdims: 1 });
          gx = this.b.node('Mul', [inv, this.b.node('Sub', [this.b.node('Sub', [gh, m1]), this.b.node('Mul', [xhat, m2])])]);
        }
        const gg = gamma.grad ? this.unbroadcast(this.b.node('Mul', [g, xhat]), x.shape, gamma.shape) : undefined;
        const gb = beta.grad ? this.unbroadcast(g, x.shape, beta.shape) : undefined;
        return [gx, gg, gb];
      });
    }
    return out;
  }

  reshape(x: Value, shape: readonly number[]): Value {
    if (size(shape) !== size(x.shape)) throw new Error(`reshape [${x.shape}] -> [${shape}]`);
    return this.record('Reshape', [x], shape, (g) => [this.b.node('Reshape', [g, this.ints(x.shape)])], {}, [this.ints(shape)]);
  }

  transpose(x: Value, perm: readonly number[]): Value {
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return this.record('Transpose', [x], perm.map((p) => x.shape[p]), (g) => [this.b.node('Transpose', [g], { perm: inverse })], { perm: [...perm] });
  }

  /**
   * x with its entries along `axis` reordered, out[.., i, ..] = x[.., order[i], ..], as a Gather;
   * `order` must be a permutation, so the gradient is the inverse Gather. On this CPU ONNX Runtime's
   * Gather moves blocks faster than its Transpose does (bench/profile-train.ts).
   */
  permute(x: Value, axis: number, order: readonly number[]): Value {
    const inverse = new Array<number>(order.length).fill(-1);
    order.forEach((from, to) => {
      inverse[from] = to;
    });
    if (order.length !== x.shape[axis] || inverse.includes(-1)) throw new Error(`permute: [${order}] is not a permutation of axis ${axis} of [${x.shape}]`);
    return this.record('Gather', [x], x.shape, (g) => [this.b.node('Gather', [g, this.ints(inverse)], { axis })], { axis }, [this.ints(order)]);
  }

  /** x[starts:ends] along `axes` (positive indices). */
  slice(x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[]): Value {
    const shape = [...x.shape];
    const pads = new Array(2 * x.shape.length).fill(0);
    axes.forEach((ax, i) => {
      shape[ax] = ends[i] - starts[i];
      pads[ax] = starts[i];
      pads[x.shape.length + ax] = x.shape[ax] - ends[i];
    });
    return this.record('Slice', [x], shape, (g) => [this.b.node('Pad', [g, this.ints(pads)])], {}, [this.ints(starts), this.ints(ends), this.ints(axes)]);
  }

  concat(xs: Value[], axis: number): Value {
    const shape = [...xs[0].shape];
    shape[axis] = xs.reduce((a, v) => a + v.shape[axis], 0);
    const name = this.b.node('Concat', xs.map((v) => v.name), { axis });
    const out: Value = { name, shape, grad: xs.some((v) => v.grad) };
    if (out.grad) {
      this.push(xs, out, (g) => {
        let at = 0;
        return xs.map((v) => {
          const start = at;
          at += v.shape[axis];
          return v.grad ? this.b.node('Slice', [g, this.ints([start]), this.ints([at]), this.ints([axis])]) : undefined;
        });
      });
    }
    return out;
  }

  /** Broadcast x to `shape`. */
  expand(x: Value, shape: readonly number[]): Value {
    return this.record('Expand', [x], shape, (g) => [this.unbroadcast(g, shape, x.shape)], {}, [this.ints(shape)]);
  }

  /** GELU, tanh approximation (as test/reference/tf.ts): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
  gelu(x: Value): Value {
    const cube = this.mul(this.mul(x, x), x);
    const inner = this.scale(this.add(x, this.scale(cube, 0.044715)), Math.sqrt(2 / Math.PI));
    const t = this.tanh(inner);
    return this.mul(this.scale(x, 0.5), this.add(t, { name: this.scalar(1), shape: [], grad: false }));
  }

  /** Mean over one axis, no gradient (outputs for display only). */
  meanNoGrad(x: Value, axis: number, keepdims: boolean): Value {
    const shape = keepdims ? x.shape.map((s, i) => (i === axis ? 1 : s)) : x.shape.filter((_, i) => i !== axis);
    return { name: this.b.node('ReduceMean', [x.name], { axes: [axis], keepdims: keepdims ? 1 : 0 }), shape, grad: false };
  }

  /** Name a value as a graph output (an Identity node, so one value can back several outputs). */
  output(x: Value | string, name: string): string {
    return this.b.node('Identity', [typeof x === 'string' ? x : x.name], {}, name);
  }

  /**
   * Reverse pass: seed gradients (name of d loss / d value) -> gradient names of the given inputs
   * (absent when no path reaches one).
   */
  backward(seeds: ReadonlyArray<[Value, string]>, wrt: readonly Value[]): Map<string, string> {
    const pending = new Map<string, string[]>();
    const push = (v: string, g: string) => {
      const list = pending.get(v);
      if (list) list.push(g);
      else pending.set(v, [g]);
    };
    const total = (v: string): string | undefined => {
      const list = pending.get(v);
      if (!list) return undefined;
      if (list.length === 1) return list[0];
      const s = this.b.node('Sum', list);
      pending.set(v, [s]);
      return s;
    };
    for (const [v, g] of seeds) push(v.name, g);
    for (let i = this.tape.length - 1; i >= 0; i--) {
      const e = this.tape[i];
      const g = total(e.out.name);
      if (!g) continue;
      e.back(g).forEach((gi, j) => {
        if (gi && e.inputs[j].grad) push(e.inputs[j].name, gi);
      });
    }
    const out = new Map<string, string>();
    for (const v of wrt) {
      const g = total(v.name);
      if (g) out.set(v.name, g);
    }
    return out;
  }

  /** The ModelProto; `metadata` becomes its metadata_props (key/value strings any ONNX runtime can read). */
  toBytes(name: string, outputs: ValueSpec[], metadata?: Record<string, string>): Uint8Array {
    return this.b.toBytes(name, this.inputSpecs, outputs, 'retformer', metadata);
  }
}
