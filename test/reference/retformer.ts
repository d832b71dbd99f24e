import { type ModelConfig, type ModelDims, usesLabels, usesRetrieval, usesSims, VOTE_GAIN } from '../../src/model/config.ts';
import { gelu, layerNorm, matMul, matMulConstInput, tf } from './tf.ts';

/**
 * The RetFormer forward pass in tfjs: the readable reference (a test fixture; not shipped). Training
 * and inference run the same maths as ONNX graphs (`src/model/onnx/retformer-graph.ts`, ~10x faster here); the tests hold those graphs'
 * outputs and gradients to this forward and to tfjs autodiff.
 *
 *   L_I = MLP(z)                                     // branch 1: [n, C]
 *   E_I = [z; neighbour images], E_T = [0; neighbour texts]   // [n, k+1, D] each
 *   I, T = proj_I(E_I), proj_T(E_T)                  // [n, k+1, d]; the query's text slot stays exactly 0
 *   similarity bias: every attention's logits + gain * scale_head * [0; sim(query, neighbour)] per key
 *   label memory: I, T += [0; onehot(labels) E_I], [0; onehot(labels) E_T]   // E: a table, or head.w's halves^T * gain
 *   per layer (pre-LN, both directions from the same inputs, as in the paper's r):
 *     I <- I + Att(Q=LN(T), K=LN(I), V=LN(I)),  T <- T + Att(Q=LN(I), K=LN(T), V=LN(T))
 *   L_R = h(LN([I[0], T[0]]))                         // [n, C]
 *   f = tau/2 (L_I + L_R)   (adaptive: f = tau ((1-g) L_I + g L_R), g = sigmoid(w . [LN([I0,T0]), z]))
 *
 * The inputs are frozen embeddings, so their first products skip the input gradient. Only the query tokens feed the head, so the last layer computes attention for query rows only
 * (exact, and a quarter less attention work).
 */
export interface ModelInputs {
  /** Query embeddings z: [n, D]. */
  query: tf.Tensor2D;
  /** Image tokens [z; neighbour image vectors]: [n*(k+1), D] (row b*(k+1) is z_b). Unused by mlp-only. */
  imageTokens?: tf.Tensor2D;
  /** Neighbour text vectors, aligned with the image rows by rank: [n*k, D]. Unused by mlp-only. */
  neighbourTexts?: tf.Tensor2D;
  /** Label memory: neighbour labels one-hot (zero rows: no label): [n*k, C]. */
  neighbourLabels?: tf.Tensor2D;
  /** Similarity bias: each neighbour's similarity to its query: [n, k]. */
  neighbourSims?: tf.Tensor2D;
}

export interface ModelOutputs {
  /** Fused logits f: [n, C]. */
  logits: tf.Tensor2D;
  /** Attention from the query tokens to each neighbour, mean over layers/heads/directions, renormalised: [n, k]. */
  attention?: tf.Tensor2D;
  /** Adaptive only: retrieval-branch weight g: [n]. */
  gate?: tf.Tensor1D;
}

export type Params = ReadonlyMap<string, tf.Tensor>;

interface AttendResult {
  /** Attention output after the output projection: [n*Tq, d]. */
  out: tf.Tensor2D;
  /** The attention weights [n*h, Tq, Tk(+1)]. */
  A: tf.Tensor;
  /** Mean over heads of query row 0's attention over the Tk keys (null key dropped): [n, Tk]. */
  queryRow?: tf.Tensor2D;
}

/** Multi-head attention with queries q [n*Tq, d] over keys/values kv [n*Tk, d]; batch folded into 2-D projections. */
function attend(
  P: (name: string) => tf.Tensor,
  prefix: string,
  q: tf.Tensor2D,
  kv: tf.Tensor2D,
  shape: { n: number; Tq: number; Tk: number; heads: number; d: number; adaptive: boolean; wantRow: boolean; sims?: tf.Tensor; simGain: number },
): AttendResult {
  const { n, Tq, Tk, heads: h, d, adaptive } = shape;
  const dh = d / h;
  // heads split as [n*h, T, dh] (no transpose needed when h = 1)
  const split = (x: tf.Tensor, T: number) =>
    h === 1 ? x.reshape([n, T, d]) : x.reshape([n, T, h, dh]).transpose([0, 2, 1, 3]).reshape([n * h, T, dh]);
  const Q = split(matMul(q, P(`${prefix}.wq`)), Tq); // [n*h, Tq, dh]
  let K = split(matMul(kv, P(`${prefix}.wk`)), Tk); // [n*h, Tk, dh]
  let V = split(matMul(kv, P(`${prefix}.wv`)), Tk); // [n*h, Tk, dh]
  if (adaptive) {
    // a learned "no neighbour" key/value that can absorb attention mass
    const nk = tf.add(tf.zeros([n, h, 1, dh]), P(`${prefix}.nullK`).reshape([1, h, 1, dh])).reshape([n * h, 1, dh]);
    const nv = tf.add(tf.zeros([n, h, 1, dh]), P(`${prefix}.nullV`).reshape([1, h, 1, dh])).reshape([n * h, 1, dh]);
    K = tf.concat([K, nk], 1);
    V = tf.concat([V, nv], 1);
  }
  const TkAll = adaptive ? Tk + 1 : Tk;
  // batched products take wasm's generic path, where transpose flags cost nothing (unlike 2-D)
  let scores = tf.mul(tf.matMul(Q, K, false, true), 1 / Math.sqrt(dh)); // [n*h, Tq, TkAll]
  if (shape.sims) {
    // + gain * scale_head * sim(query, key) [n, 1, Tk], the same for every query row
    let bias = tf.mul(tf.mul(P(`${prefix}.simScale`).reshape([1, h, 1]), shape.simGain), shape.sims).reshape([n * h, 1, Tk]);
    if (adaptive) bias = tf.concat([bias, tf.zeros([n * h, 1, 1])], 2);
    scores = tf.add(scores, bias);
  }
  const A = tf.softmax(scores); // [n*h, Tq, TkAll]
  const AV = tf.matMul(A, V); // [n*h, Tq, dh]
  const O = h === 1 ? AV.reshape([n * Tq, d]) : AV.reshape([n, h, Tq, dh]).transpose([0, 2, 1, 3]).reshape([n * Tq, d]);
  const out = tf.add(matMul(O, P(`${prefix}.wo`)), P(`${prefix}.bo`)) as tf.Tensor2D;
  let queryRow: tf.Tensor2D | undefined;
  if (shape.wantRow) {
    queryRow = A.reshape([n, h, Tq, TkAll]).slice([0, 0, 0, 0], [n, h, 1, Tk]).mean(1).reshape([n, Tk]) as tf.Tensor2D;
  }
  return { out, queryRow, A };
}

const TkAll = (adaptive: boolean, T1: number) => (adaptive ? T1 + 1 : T1);

function ffn(P: (name: string) => tf.Tensor, prefix: string, x: tf.Tensor2D): tf.Tensor2D {
  const hdn = gelu(tf.add(matMul(layerNorm(x, P(`${prefix}.ln.g`), P(`${prefix}.ln.b`)), P(`${prefix}.w1`)), P(`${prefix}.b1`)));
  return tf.add(x, tf.add(matMul(hdn, P(`${prefix}.w2`)), P(`${prefix}.b2`))) as tf.Tensor2D;
}

/** Rows 0 of each group of `rows` rows: [n*rows, d] -> [n, d] (slice, which has a gradient on wasm). */
function firstRows(x: tf.Tensor2D, n: number, rows: number, d: number): tf.Tensor2D {
  return x.reshape([n, rows, d]).slice([0, 0, 0], [n, 1, d]).reshape([n, d]);
}

/** Run the model. Call inside tf.tidy (or dispose the outputs). */
export function forward(params: Params, config: ModelConfig, dims: ModelDims, inputs: ModelInputs, options: { attention?: boolean } = {}): ModelOutputs {
  const P = (name: string) => {
    const t = params.get(name);
    if (!t) throw new Error(`model parameter ${name} missing`);
    return t;
  };
  const z = inputs.query;
  const n = z.shape[0];
  if (z.shape[1] !== dims.inputDim) throw new Error(`query dim ${z.shape[1]} != model input dim ${dims.inputDim}`);
  const { tau } = config;
  // branch 1: MLP(z) -> L_I [n, C]
  const LI = tf.add(matMul(gelu(tf.add(matMulConstInput(z, P('mlp.w1')), P('mlp.b1'))), P('mlp.w2')), P('mlp.b2')) as tf.Tensor2D;
  if (!usesRetrieval(config)) return { logits: tf.mul(LI, tau) as tf.Tensor2D };

  const { k, width: d, heads, layers, adaptive, variant } = config;
  const T1 = k + 1;
  if (!inputs.imageTokens || !inputs.neighbourTexts) throw new Error('retrieval variants need imageTokens and neighbourTexts');
  // streams projected to width d: I, T [n*(k+1), d]
  let I: tf.Tensor2D;
  if (variant === 'no-image') {
    const zI = matMulConstInput(z, P('proj.image')).reshape([n, 1, d]);
    I = tf.concat([zI, tf.zeros([n, k, d])], 1).reshape([n * T1, d]);
  } else {
    I = matMulConstInput(inputs.imageTokens, P('proj.image')) as tf.Tensor2D;
  }
  let T: tf.Tensor2D;
  if (variant === 'no-text') {
    T = tf.zeros([n * T1, d]);
  } else if (variant === 'image-only') {
    T = matMulConstInput(inputs.imageTokens, P('proj.text')) as tf.Tensor2D; // E_T := E_I
  } else {
    const nbT = matMulConstInput(inputs.neighbourTexts, P('proj.text')).reshape([n, k, d]);
    T = tf.concat([tf.zeros([n, 1, d]), nbT], 1).reshape([n * T1, d]); // query text slot: exactly 0
  }

  if (usesLabels(config)) {
    if (!inputs.neighbourLabels) throw new Error('label memory needs neighbourLabels');
    const labels = inputs.neighbourLabels;
    const E = (i: number) =>
      config.labelMemory === 'table'
        ? P(i === 0 ? 'label.image' : 'label.text')
        : tf.mul(P('head.w').slice([i * d, 0], [d, dims.classes]).transpose(), P('label.gain').slice([i], [1]));
    const slots = (e: tf.Tensor) => tf.concat([tf.zeros([n, 1, d]), matMulConstInput(labels, e).reshape([n, k, d])], 1).reshape([n * T1, d]);
    I = tf.add(I, slots(E(0))) as tf.Tensor2D;
    T = tf.add(T, slots(E(1))) as tf.Tensor2D;
  }

  let sims: tf.Tensor | undefined;
  if (usesSims(config)) {
    if (!inputs.neighbourSims) throw new Error('the similarity bias needs neighbourSims');
    sims = tf.concat([tf.zeros([n, 1]), inputs.neighbourSims], 1).reshape([n, 1, T1]); // the query's own key: 0
  }
  const rows: tf.Tensor2D[] = [];
  let vote: tf.Tensor | undefined;
  let I0: tf.Tensor2D | undefined;
  let T0: tf.Tensor2D | undefined;
  for (let l = 0; l < layers; l++) {
    const In = layerNorm(I, P(`l${l}.lnI.g`), P(`l${l}.lnI.b`)) as tf.Tensor2D;
    const Tn = layerNorm(T, P(`l${l}.lnT.g`), P(`l${l}.lnT.b`)) as tf.Tensor2D;
    const last = l === layers - 1;
    const base = { n, Tk: T1, heads, d, adaptive, wantRow: Boolean(options.attention), sims, simGain: config.simBiasGain };
    if (!last) {
      const ai = attend(P, `l${l}.i`, Tn, In, { ...base, Tq: T1 }); // text queries image
      const at = attend(P, `l${l}.t`, In, Tn, { ...base, Tq: T1 }); // image queries text
      I = tf.add(I, ai.out) as tf.Tensor2D;
      T = tf.add(T, at.out) as tf.Tensor2D;
      if (config.ffn) {
        I = ffn(P, `l${l}.ffnI`, I);
        T = ffn(P, `l${l}.ffnT`, T);
      }
      if (ai.queryRow) rows.push(ai.queryRow);
      if (at.queryRow) rows.push(at.queryRow);
    } else {
      const ai = attend(P, `l${l}.i`, firstRows(Tn, n, T1, d), In, { ...base, Tq: 1 });
      const at = attend(P, `l${l}.t`, firstRows(In, n, T1, d), Tn, { ...base, Tq: 1 });
      if (config.labelMemory === 'vote' && inputs.neighbourLabels) {
        // the query's attention over the k neighbours, mean over heads and directions, times their labels
        const share = (A: tf.Tensor) => A.reshape([n, heads, TkAll(adaptive, T1)]).slice([0, 0, 1], [n, heads, k]).sum(1); // [n, k]
        const weights = tf.div(tf.add(share(ai.A), share(at.A)), 2 * heads);
        vote = tf.matMul(weights.reshape([n, 1, k]), inputs.neighbourLabels.reshape([n, k, dims.classes])).reshape([n, dims.classes]);
      }
      I0 = tf.add(firstRows(I, n, T1, d), ai.out) as tf.Tensor2D;
      T0 = tf.add(firstRows(T, n, T1, d), at.out) as tf.Tensor2D;
      if (config.ffn) {
        I0 = ffn(P, `l${l}.ffnI`, I0);
        T0 = ffn(P, `l${l}.ffnT`, T0);
      }
      if (ai.queryRow) rows.push(ai.queryRow);
      if (at.queryRow) rows.push(at.queryRow);
    }
  }
  const hcat = layerNorm(tf.concat([I0!, T0!], 1), P('head.ln.g'), P('head.ln.b')) as tf.Tensor2D; // [n, 2d]
  let LR = tf.add(matMul(hcat, P('head.w')), P('head.b')) as tf.Tensor2D; // [n, C]
  if (vote) LR = tf.add(LR, tf.mul(tf.mul(P('label.vote'), VOTE_GAIN), vote)) as tf.Tensor2D;

  let logits: tf.Tensor2D;
  let gate: tf.Tensor1D | undefined;
  if (adaptive) {
    const g = tf.sigmoid(tf.add(matMul(tf.concat([hcat, z], 1), P('gate.w')), P('gate.b'))); // [n, 1]
    logits = tf.mul(tf.add(tf.mul(tf.sub(1, g), LI), tf.mul(g, LR)), tau) as tf.Tensor2D;
    gate = g.reshape([n]) as tf.Tensor1D;
  } else {
    logits = tf.mul(tf.add(LI, LR), tau / 2) as tf.Tensor2D;
  }
  let attention: tf.Tensor2D | undefined;
  if (options.attention && rows.length > 0) {
    // mean over layers and directions, keep neighbour columns 1..k, renormalise over the k neighbours
    const mean = tf.addN(rows).div(rows.length).slice([0, 1], [n, k]);
    attention = tf.div(mean, tf.add(mean.sum(1, true), 1e-12)) as tf.Tensor2D;
  }
  return { logits, attention, gate };
}
