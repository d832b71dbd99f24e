import { ElemType, type ValueSpec } from '../../util/onnx-builder.ts';
import { type ModelConfig, type ModelDims, usesLabels, usesRetrieval, usesSims, VOTE_GAIN } from '../config.ts';
import { type ParamValues, paramSpecs } from '../params.ts';
import { DiffGraph, type Value } from './diff-graph.ts';

/**
 * The RetFormer forward of the tfjs reference (test/reference/retformer.ts) as a static-shape ONNX graph for n queries, in two
 * forms: a training step (inputs: parameters, batch, soft targets; outputs: loss and every
 * parameter's gradient) and an inference graph with the weights baked in (outputs: logits,
 * attention over the neighbours, gate). Same maths, op for op, as the tfjs forward, which the tests
 * hold it to.
 */
export type GraphMode =
  | { kind: 'train' }
  /**
   * `inputs: 'neighbours'` (the standalone export): the neighbour vectors come as their own inputs,
   * neighbourImages and neighbourTexts [n, k, D], instead of the token layout [z; images] the
   * engine feeds; `metadata` is written into the model.
   */
  | {
      kind: 'infer';
      weights: ParamValues;
      inputs?: 'tokens' | 'neighbours';
      metadata?: Record<string, string>;
      /** With inputs 'neighbours': 'f16' takes neighbourImages and neighbourTexts as f16 (an f16 KB's stored bits), cast to float in the graph. */
      neighbourDtype?: 'f32' | 'f16';
    };

export interface BuiltGraph {
  bytes: Uint8Array;
  /**
   * Names of the graph's outputs: 'loss' and 'grad:<param>' (train), or 'logits', 'attention', 'gate',
   * 'imageLogits' (L_I) and 'retrievalLogits' (L_R) (infer).
   */
  outputs: string[];
}

export const GRAD_PREFIX = 'grad:';

interface Shape {
  n: number;
  Tq: number;
  Tk: number;
  heads: number;
  d: number;
  adaptive: boolean;
  /** Also return query row 0's attention (inference only). */
  wantRow: boolean;
  /** Similarity bias: the similarity of each key token to the query, [n, 1, Tk] (0 for the query's own), when the model uses it. */
  sims?: Value;
  /** The similarity bias's fixed gain (config.simBiasGain). */
  simGain: number;
}

/**
 * Row order that moves the (T, h) blocks of dh values of one sample to (h, T) order: with it,
 * [n, T*h, dh] gathered along axis 1 is the head split [n, h, T, dh] of [n, T, h, dh].
 */
function headMajor(T: number, h: number): number[] {
  return Array.from({ length: T * h }, (_, i) => (i % T) * h + Math.floor(i / T));
}

/** The inverse: (h, T) blocks back to (T, h) order, merging heads. */
function tokenMajor(T: number, h: number): number[] {
  return Array.from({ length: T * h }, (_, i) => (i % h) * T + Math.floor(i / h));
}

/** x [n*T, d] @ W [d, d], split into heads: [n*h, T, dh] (a reshape only when h = 1). */
function projectHeads(g: DiffGraph, x: Value, W: Value, n: number, T: number, h: number, d: number): Value {
  const y = g.matmul(x, W); // [n*T, d]
  if (h === 1) return g.reshape(y, [n, T, d]);
  const dh = d / h;
  return g.reshape(g.permute(g.reshape(y, [n, T * h, dh]), 1, headMajor(T, h)), [n * h, T, dh]); // [n, T*h, dh] -> [n, h*T, dh]
}

/** Attention of Q [n*h, Tq, dh] over K, V [n*h, Tk, dh] -> output projection [n*Tq, d] (+ query row 0's mean-over-heads attention [n, Tk]; the weights A [n*h, Tq, Tk(+1)]). */
function attend(g: DiffGraph, P: (name: string) => Value, prefix: string, Q: Value, K0: Value, V0: Value, s: Shape): { out: Value; row?: Value; A: Value } {
  const { n, Tq, Tk, heads: h, d, adaptive } = s;
  const dh = d / h;
  let K = K0;
  let V = V0;
  if (adaptive) {
    // a learned "no neighbour" key/value that can absorb attention mass
    const nk = g.reshape(g.expand(g.reshape(P(`${prefix}.nullK`), [1, h, 1, dh]), [n, h, 1, dh]), [n * h, 1, dh]);
    const nv = g.reshape(g.expand(g.reshape(P(`${prefix}.nullV`), [1, h, 1, dh]), [n, h, 1, dh]), [n * h, 1, dh]);
    K = g.concat([K, nk], 1);
    V = g.concat([V, nv], 1);
  }
  const TkAll = adaptive ? Tk + 1 : Tk;
  let scores = g.scale(g.matmul(Q, g.transpose(K, [0, 2, 1])), 1 / Math.sqrt(dh)); // [n*h, Tq, TkAll]
  if (s.sims) {
    // + simBiasGain * scale_head * similarity(query, key), the same for every query row
    let bias = g.reshape(g.mul(g.scale(g.reshape(P(`${prefix}.simScale`), [1, h, 1]), s.simGain), s.sims), [n * h, 1, Tk]); // [n, h, Tk] -> [n*h, 1, Tk]
    if (adaptive) bias = g.concat([bias, g.zeros([n * h, 1, 1])], 2); // the null key: no bias
    scores = g.add(scores, bias);
  }
  const A = g.softmax(scores); // [n*h, Tq, TkAll]
  const AV = g.matmul(A, V); // [n*h, Tq, dh]
  const O = h === 1 ? g.reshape(AV, [n * Tq, d]) : g.reshape(g.permute(g.reshape(AV, [n, h * Tq, dh]), 1, tokenMajor(Tq, h)), [n * Tq, d]); // [n, h*Tq, dh] -> [n, Tq*h, dh]
  const out = g.add(g.matmul(O, P(`${prefix}.wo`)), P(`${prefix}.bo`));
  if (!s.wantRow) return { out, A };
  const rowAll = g.slice(g.reshape(A, [n, h, Tq, TkAll]), [0, 0], [1, Tk], [2, 3]); // [n, h, 1, Tk]
  return { out, A, row: g.reshape(g.meanNoGrad(rowAll, 1, false), [n, Tk]) };
}

function ffn(g: DiffGraph, P: (name: string) => Value, prefix: string, x: Value): Value {
  const hdn = g.gelu(g.add(g.matmul(g.layerNorm(x, P(`${prefix}.ln.g`), P(`${prefix}.ln.b`)), P(`${prefix}.w1`)), P(`${prefix}.b1`)));
  return g.add(x, g.add(g.matmul(hdn, P(`${prefix}.w2`)), P(`${prefix}.b2`)));
}

/** Rows 0 of each group of `rows`: [n*rows, d] -> [n, d]. */
function firstRows(g: DiffGraph, x: Value, n: number, rows: number, d: number): Value {
  return g.reshape(g.slice(g.reshape(x, [n, rows, d]), [0], [1], [1]), [n, d]);
}

/**
 * The label embeddings [C, d] of the image and text streams: a free table per stream ('table'), or
 * the classifier's rows for that stream, head.w[0:d] and head.w[d:2d] transposed, times a learned
 * gain ('tied').
 */
function labelEmbeddings(g: DiffGraph, P: (name: string) => Value, config: ModelConfig, d: number): [Value, Value] {
  if (config.labelMemory === 'table') return [P('label.image'), P('label.text')];
  const gain = P('label.gain'); // [2]
  const half = (i: number) => g.mul(g.transpose(g.slice(P('head.w'), [i * d], [(i + 1) * d], [0]), [1, 0]), g.slice(gain, [i], [i + 1], [0])); // [C, d] * [1]
  return [half(0), half(1)];
}

interface ForwardValues {
  logits: Value; // [n, C]
  /** The branches before fusion: L_I (MLP) and L_R (retrieval; absent for mlp-only), each [n, C]. */
  imageLogits: Value;
  retrievalLogits?: Value;
  attention?: Value; // [n, k]
  gate?: Value; // [n, 1]
}

function forwardGraph(g: DiffGraph, P: (name: string) => Value, config: ModelConfig, dims: ModelDims, n: number, wantRow: boolean, layout: 'tokens' | 'neighbours' = 'tokens', neighbourDtype: 'f32' | 'f16' = 'f32'): ForwardValues {
  const D = dims.inputDim;
  const z = g.input('query', [n, D]);
  const { tau } = config;
  // branch 1: MLP(z) -> L_I [n, C]
  const LI = g.add(g.matmul(g.gelu(g.add(g.matmul(z, P('mlp.w1')), P('mlp.b1'))), P('mlp.w2')), P('mlp.b2'));
  if (!usesRetrieval(config)) return { logits: g.scale(LI, tau), imageLogits: LI };

  const { k, width: d, heads, layers, adaptive, variant } = config;
  const T1 = k + 1;
  let imageTokens: Value; // [n*(k+1), D], row b*(k+1) = z_b
  let neighbourTexts: Value; // [n*k, D]
  if (layout === 'neighbours') {
    const neighbourInput = (name: string) => (neighbourDtype === 'f16' ? g.halfInput(name, [n, k, D]) : g.input(name, [n, k, D]));
    const images = neighbourInput('neighbourImages');
    imageTokens = g.reshape(g.concat([g.reshape(z, [n, 1, D]), images], 1), [n * T1, D]);
    neighbourTexts = g.reshape(neighbourInput('neighbourTexts'), [n * k, D]);
  } else {
    imageTokens = g.input('imageTokens', [n * T1, D]);
    neighbourTexts = g.input('neighbourTexts', [n * k, D]);
  }
  // streams projected to width d: I, T [n*(k+1), d]; the query's text slot stays exactly 0
  let I = variant === 'no-image' ? g.reshape(g.concat([g.reshape(g.matmul(z, P('proj.image')), [n, 1, d]), g.zeros([n, k, d])], 1), [n * T1, d]) : g.matmul(imageTokens, P('proj.image'));
  let T: Value;
  if (variant === 'no-text') T = g.zeros([n * T1, d]);
  else if (variant === 'image-only') T = g.matmul(imageTokens, P('proj.text')); // E_T := E_I
  else T = g.reshape(g.concat([g.zeros([n, 1, d]), g.reshape(g.matmul(neighbourTexts, P('proj.text')), [n, k, d])], 1), [n * T1, d]);
  let labels: Value | undefined; // [n*k, C]
  if (usesLabels(config)) {
    // label memory: neighbour labels as one-hot rows (all zero: no label), embedded and added to the neighbour slots of both streams
    const C = dims.classes;
    labels = layout === 'neighbours' ? g.reshape(g.input('neighbourLabels', [n, k, C]), [n * k, C]) : g.input('neighbourLabels', [n * k, C]); // [n*k, C]
    const onehot = labels;
    const toSlots = (E: Value) => g.reshape(g.concat([g.zeros([n, 1, d]), g.reshape(g.matmul(onehot, E), [n, k, d])], 1), [n * T1, d]); // query slot stays 0
    const [EI, ET] = labelEmbeddings(g, P, config, d); // [C, d] each
    I = g.add(I, toSlots(EI));
    T = g.add(T, toSlots(ET));
  }

  // similarity bias: [0; sims] per key token, [n, 1, k+1]
  const sims = usesSims(config)
    ? g.reshape(g.concat([g.zeros([n, 1]), g.input('neighbourSims', [n, k])], 1), [n, 1, T1])
    : undefined;
  const rows: Value[] = [];
  let vote: Value | undefined; // label memory 'vote': the attention-weighted neighbour labels [n, C]
  let I0: Value | undefined;
  let T0: Value | undefined;
  for (let l = 0; l < layers; l++) {
    const In = g.layerNorm(I, P(`l${l}.lnI.g`), P(`l${l}.lnI.b`));
    const Tn = g.layerNorm(T, P(`l${l}.lnT.g`), P(`l${l}.lnT.b`));
    const base = { n, Tk: T1, heads, d, adaptive, wantRow, sims, simGain: config.simBiasGain };
    const w = (dir: string, m: string) => P(`l${l}.${dir}.${m}`);
    if (l < layers - 1) {
      // dir i: text queries image keys/values (added to I); dir t: image queries text (added to T)
      const head = (x: Value, m: Value) => projectHeads(g, x, m, n, T1, heads, d);
      const [Ki, Vi, Qt] = [head(In, w('i', 'wk')), head(In, w('i', 'wv')), head(In, w('t', 'wq'))];
      const [Qi, Kt, Vt] = [head(Tn, w('i', 'wq')), head(Tn, w('t', 'wk')), head(Tn, w('t', 'wv'))];
      const ai = attend(g, P, `l${l}.i`, Qi, Ki, Vi, { ...base, Tq: T1 });
      const at = attend(g, P, `l${l}.t`, Qt, Kt, Vt, { ...base, Tq: T1 });
      I = g.add(I, ai.out);
      T = g.add(T, at.out);
      if (config.ffn) {
        I = ffn(g, P, `l${l}.ffnI`, I);
        T = ffn(g, P, `l${l}.ffnT`, T);
      }
      if (ai.row && at.row) rows.push(ai.row, at.row);
    } else {
      // only the query tokens feed the head: the last layer attends for query rows only
      const head = (x: Value, m: Value, T = T1) => projectHeads(g, x, m, n, T, heads, d);
      const [Ki, Vi, Kt, Vt] = [head(In, w('i', 'wk')), head(In, w('i', 'wv')), head(Tn, w('t', 'wk')), head(Tn, w('t', 'wv'))];
      const Qi = head(firstRows(g, Tn, n, T1, d), w('i', 'wq'), 1);
      const Qt = head(firstRows(g, In, n, T1, d), w('t', 'wq'), 1);
      const ai = attend(g, P, `l${l}.i`, Qi, Ki, Vi, { ...base, Tq: 1 });
      const at = attend(g, P, `l${l}.t`, Qt, Kt, Vt, { ...base, Tq: 1 });
      if (config.labelMemory === 'vote' && labels) {
        // the query token's attention over the k neighbour keys, mean over heads and both directions: [n, 1, k]
        const neighbourShare = (A: Value) => g.sum(g.reshape(g.slice(A, [1], [T1], [2]), [n, heads, k]), [1], true); // [n, 1, k]
        const weights = g.scale(g.add(neighbourShare(ai.A), neighbourShare(at.A)), 1 / (2 * heads));
        vote = g.reshape(g.matmul(weights, g.reshape(labels, [n, k, dims.classes])), [n, dims.classes]); // [n, C]
      }
      I0 = g.add(firstRows(g, I, n, T1, d), ai.out);
      T0 = g.add(firstRows(g, T, n, T1, d), at.out);
      if (config.ffn) {
        I0 = ffn(g, P, `l${l}.ffnI`, I0);
        T0 = ffn(g, P, `l${l}.ffnT`, T0);
      }
      if (ai.row && at.row) rows.push(ai.row, at.row);
    }
  }
  const hcat = g.layerNorm(g.concat([I0!, T0!], 1), P('head.ln.g'), P('head.ln.b')); // [n, 2d]
  let LR = g.add(g.matmul(hcat, P('head.w')), P('head.b')); // [n, C]
  if (vote) LR = g.add(LR, g.mul(g.scale(P('label.vote'), VOTE_GAIN), vote));

  let logits: Value;
  let gate: Value | undefined;
  if (adaptive) {
    gate = g.sigmoid(g.add(g.matmul(g.concat([hcat, z], 1), P('gate.w')), P('gate.b'))); // [n, 1]
    logits = g.scale(g.add(g.mul(g.oneMinus(gate), LI), g.mul(gate, LR)), tau);
  } else {
    logits = g.scale(g.add(LI, LR), tau / 2);
  }
  if (!wantRow) return { logits, imageLogits: LI, retrievalLogits: LR, gate };
  // attention to each neighbour: mean over layers and directions, neighbour columns 1..k, renormalised
  const stacked = g.concat(
    rows.map((r) => g.reshape(r, [1, n, T1])),
    0,
  ); // [2L, n, k+1] (no gradient)
  const mean = g.slice(g.meanNoGrad(stacked, 0, false), [1], [T1], [1]); // [n, k]
  const attention = g.div(mean, g.add(g.sum(mean, [1], true), g.constant(1e-12))); // [n, k]
  return { logits, imageLogits: LI, retrievalLogits: LR, attention, gate };
}

/** Parameter lookup: graph inputs (training) or baked constants (inference). */
function parameterSource(g: DiffGraph, config: ModelConfig, dims: ModelDims, mode: GraphMode): { P: (name: string) => Value; params: Value[] } {
  const params: Value[] = [];
  const byName = new Map<string, Value>();
  for (const spec of paramSpecs(config, dims)) {
    let v: Value;
    if (mode.kind === 'train') v = g.input(spec.name, spec.shape, true);
    else {
      const w = mode.weights.get(spec.name);
      if (!w) throw new Error(`model parameter ${spec.name} missing`);
      v = g.weight(spec.name, w.data, spec.shape);
    }
    params.push(v);
    byName.set(spec.name, v);
  }
  const P = (name: string) => {
    const v = byName.get(name);
    if (!v) throw new Error(`model parameter ${name} missing`);
    return v;
  };
  return { P, params };
}

const floatSpec = (name: string, dims: number[]): ValueSpec => ({ name, elemType: ElemType.FLOAT, dims });

/**
 * Build the graph for exactly n rows.
 * train: inputs query, imageTokens, neighbourTexts (and neighbourLabels [n*k, C] with label memory,
 * neighbourSims [n, k] with the similarity bias), targets [n, C] (soft), logitAdjust [C] (LACE's
 * tau log prior, zeros for CE), lossScale [1] (1 / rows of the whole optimizer batch) and every
 * parameter; outputs loss [1] = lossScale * sum_rows CE(f + adjust, targets) and grad:<param>.
 */
export function buildRetformerGraph(config: ModelConfig, dims: ModelDims, n: number, mode: GraphMode): BuiltGraph {
  const g = new DiffGraph();
  const { P, params } = parameterSource(g, config, dims, mode);
  if (mode.kind === 'infer' && mode.neighbourDtype === 'f16' && mode.inputs !== 'neighbours') throw new Error("f16 neighbour inputs need the 'neighbours' input layout");
  const fwd = forwardGraph(g, P, config, dims, n, mode.kind === 'infer', mode.kind === 'infer' ? mode.inputs : undefined, mode.kind === 'infer' ? mode.neighbourDtype : undefined);
  const C = dims.classes;
  if (mode.kind === 'infer') {
    const outs = [floatSpec(g.output(fwd.logits, 'logits'), [n, C])];
    if (fwd.attention) outs.push(floatSpec(g.output(fwd.attention, 'attention'), [n, config.k]));
    if (fwd.gate) outs.push(floatSpec(g.output(fwd.gate, 'gate'), [n, 1]));
    outs.push(floatSpec(g.output(fwd.imageLogits, 'imageLogits'), [n, C]));
    if (fwd.retrievalLogits) outs.push(floatSpec(g.output(fwd.retrievalLogits, 'retrievalLogits'), [n, C]));
    return { bytes: g.toBytes('retformer_infer', outs, mode.metadata), outputs: outs.map((o) => o.name) };
  }
  const targets = g.input('targets', [n, C]);
  const adjust = g.input('logitAdjust', [C]);
  const lossScale = g.input('lossScale', [1]);
  const loss = g.softCrossEntropy(fwd.logits, targets, adjust, lossScale); // [1]
  const grads = g.backward([[loss, g.constant(1).name]], params);
  const outs = [floatSpec(g.output(loss, 'loss'), [1])];
  for (const p of params) {
    const gr = grads.get(p.name);
    if (gr) outs.push(floatSpec(g.output(gr, `${GRAD_PREFIX}${p.name}`), [...p.shape]));
  }
  return { bytes: g.toBytes('retformer_train', outs), outputs: outs.map((o) => o.name) };
}
