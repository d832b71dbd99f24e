import { Rng } from '../../src/util/rng.ts';
import { ElemType, OnnxGraphBuilder, type WeightPrecision } from '../../src/util/onnx-builder.ts';

/** Sizes of the tiny CLIP. Both towers share width, heads and MLP size (as CLIP ViT-B does). */
export interface TinyClipSizes {
  imageSize: number;
  patchSize: number;
  hidden: number;
  heads: number;
  intermediate: number;
  visionLayers: number;
  textLayers: number;
  projectionDim: number;
  contextLength: number;
  layerNormEps: number;
}

export const DEFAULT_TINY_CLIP_SIZES: TinyClipSizes = {
  imageSize: 32,
  patchSize: 8,
  hidden: 32,
  heads: 2,
  intermediate: 64,
  visionLayers: 2,
  textLayers: 2,
  projectionDim: 16,
  contextLength: 16,
  layerNormEps: 1e-5,
};

export interface Weight {
  dims: number[];
  data: Float32Array;
}
export type Weights = Map<string, Weight>;

const QUICK_GELU_ALPHA = 1.702;
const MASKED = -1e9;

/**
 * Seeded random weights for both towers. Names follow the roles (`vision.layers.0.q.weight`);
 * linear weights are stored [in, out] so the graph multiplies `x @ W` with no transpose.
 * Layer-norm gains and all biases are random too, so a reference that forgets one disagrees.
 */
export function randomTinyClipWeights(sizes: TinyClipSizes, vocabSize: number, seed: number): Weights {
  const rng = new Rng(seed);
  const w: Weights = new Map();
  const normal = (name: string, dims: number[], std: number, mean = 0) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = mean + std * rng.normal();
    w.set(name, { dims, data });
  };
  const { hidden: h, intermediate: m, patchSize: p, projectionDim: d } = sizes;
  const tokens = (sizes.imageSize / p) ** 2 + 1;
  const layer = (prefix: string) => {
    normal(`${prefix}.ln1.weight`, [h], 0.1, 1);
    normal(`${prefix}.ln1.bias`, [h], 0.1);
    for (const proj of ['q', 'k', 'v', 'o']) {
      normal(`${prefix}.${proj}.weight`, [h, h], 1 / Math.sqrt(h));
      normal(`${prefix}.${proj}.bias`, [h], 0.1);
    }
    normal(`${prefix}.ln2.weight`, [h], 0.1, 1);
    normal(`${prefix}.ln2.bias`, [h], 0.1);
    normal(`${prefix}.fc1.weight`, [h, m], 1 / Math.sqrt(h));
    normal(`${prefix}.fc1.bias`, [m], 0.1);
    normal(`${prefix}.fc2.weight`, [m, h], 1 / Math.sqrt(m));
    normal(`${prefix}.fc2.bias`, [h], 0.1);
  };
  normal('vision.patch_embedding', [h, 3, p, p], 1 / Math.sqrt(3 * p * p));
  normal('vision.class_embedding', [1, 1, h], 0.5);
  normal('vision.position_embedding', [tokens, h], 0.5);
  normal('vision.pre_ln.weight', [h], 0.1, 1);
  normal('vision.pre_ln.bias', [h], 0.1);
  for (let i = 0; i < sizes.visionLayers; i++) layer(`vision.layers.${i}`);
  normal('vision.post_ln.weight', [h], 0.1, 1);
  normal('vision.post_ln.bias', [h], 0.1);
  normal('visual_projection', [h, d], 1 / Math.sqrt(h));

  normal('text.token_embedding', [vocabSize, h], 0.5);
  normal('text.position_embedding', [sizes.contextLength, h], 0.5);
  for (let i = 0; i < sizes.textLayers; i++) layer(`text.layers.${i}`);
  normal('text.final_ln.weight', [h], 0.1, 1);
  normal('text.final_ln.bias', [h], 0.1);
  normal('text_projection', [h, d], 1 / Math.sqrt(h));
  return w;
}

class TowerBuilder {
  readonly g: OnnxGraphBuilder;
  constructor(
    private readonly weights: Weights,
    private readonly sizes: TinyClipSizes,
    precision: WeightPrecision,
  ) {
    this.g = new OnnxGraphBuilder(precision);
  }

  w(name: string): string {
    const t = this.weights.get(name);
    if (!t) throw new Error(`tiny-clip: no weight ${name}`);
    return this.g.weight(name, t.data, t.dims);
  }

  layerNorm(x: string, prefix: string): string {
    return this.g.node('LayerNormalization', [x, this.w(`${prefix}.weight`), this.w(`${prefix}.bias`)], {
      axis: -1,
      epsilon: { float: this.sizes.layerNormEps },
    });
  }

  linear(x: string, prefix: string): string {
    return this.g.node('Add', [this.g.node('MatMul', [x, this.w(`${prefix}.weight`)]), this.w(`${prefix}.bias`)]);
  }

  /** One pre-LN transformer layer on x [B, T, H]; `mask` is an additive [T, T] attention mask. */
  encoderLayer(x: string, prefix: string, mask?: string): string {
    const { g } = this;
    const { hidden, heads } = this.sizes;
    const headDim = hidden / heads;
    const splitShape = g.int64Const(g.fresh('split_shape'), [0, 0, heads, headDim]);
    const mergeShape = g.int64Const(g.fresh('merge_shape'), [0, 0, hidden]);
    const scale = g.floatConst(g.fresh('attn_scale'), new Float32Array([1 / Math.sqrt(headDim)]), []);

    const h = this.layerNorm(x, `${prefix}.ln1`);
    const heads4 = (proj: string, perm: number[]) =>
      g.node('Transpose', [g.node('Reshape', [this.linear(h, `${prefix}.${proj}`), splitShape])], { perm });
    const q = heads4('q', [0, 2, 1, 3]); // [B, heads, T, hd]
    const kT = heads4('k', [0, 2, 3, 1]); // [B, heads, hd, T]
    const v = heads4('v', [0, 2, 1, 3]); // [B, heads, T, hd]
    let scores = g.node('Mul', [g.node('MatMul', [q, kT]), scale]); // [B, heads, T, T]
    if (mask) scores = g.node('Add', [scores, mask]);
    const probs = g.node('Softmax', [scores], { axis: -1 });
    const ctx = g.node('MatMul', [probs, v]); // [B, heads, T, hd]
    const merged = g.node('Reshape', [g.node('Transpose', [ctx], { perm: [0, 2, 1, 3] }), mergeShape]); // [B, T, H]
    const x1 = g.node('Add', [x, this.linear(merged, `${prefix}.o`)]);

    const h2 = this.layerNorm(x1, `${prefix}.ln2`);
    const a = this.linear(h2, `${prefix}.fc1`); // [B, T, I]
    const alpha = g.floatConst(g.fresh('quick_gelu_alpha'), new Float32Array([QUICK_GELU_ALPHA]), []);
    const gelu = g.node('Mul', [a, g.node('Sigmoid', [g.node('Mul', [a, alpha])])]);
    return g.node('Add', [x1, this.linear(gelu, `${prefix}.fc2`)]);
  }
}

/** The image tower: pixel_values [B, 3, S, S] -> image_embeds [B, D] (not normalised, as HF exports). */
export function buildVisionModel(weights: Weights, sizes: TinyClipSizes, precision: WeightPrecision): Uint8Array {
  const t = new TowerBuilder(weights, sizes, precision);
  const { g } = t;
  const { hidden, patchSize: p } = sizes;
  const patches = g.node('Conv', ['pixel_values', t.w('vision.patch_embedding')], { kernel_shape: [p, p], strides: [p, p] }); // [B, H, g, g]
  const flat = g.node('Reshape', [patches, g.int64Const('patch_flat_shape', [0, hidden, -1])]); // [B, H, N]
  const tokens = g.node('Transpose', [flat], { perm: [0, 2, 1] }); // [B, N, H]
  const batch = g.node('Slice', [g.node('Shape', ['pixel_values']), g.int64Const('zero1', [0]), g.int64Const('one1', [1])]); // [1]
  const clsShape = g.node('Concat', [batch, g.int64Const('cls_tail', [1, hidden])], { axis: 0 });
  const cls = g.node('Expand', [t.w('vision.class_embedding'), clsShape]); // [B, 1, H]
  let x = g.node('Concat', [cls, tokens], { axis: 1 }); // [B, N+1, H]
  x = g.node('Add', [x, t.w('vision.position_embedding')]);
  x = t.layerNorm(x, 'vision.pre_ln');
  for (let i = 0; i < sizes.visionLayers; i++) x = t.encoderLayer(x, `vision.layers.${i}`);
  const first = g.node('Gather', [x, g.int64Const('cls_index', [0], [])], { axis: 1 }); // [B, H]
  const pooled = t.layerNorm(first, 'vision.post_ln');
  g.node('MatMul', [pooled, t.w('visual_projection')], {}, 'image_embeds'); // [B, D]
  return g.toBytes(
    'tiny_clip_vision',
    [{ name: 'pixel_values', elemType: ElemType.FLOAT, dims: ['batch_size', 3, sizes.imageSize, sizes.imageSize] }],
    [{ name: 'image_embeds', elemType: ElemType.FLOAT, dims: ['batch_size', sizes.projectionDim] }],
    'retformer-tiny-clip',
  );
}

/** The text tower: input_ids [B, T] -> text_embeds [B, D], pooled at the end token (argmax of ids, CLIP's rule). */
export function buildTextModel(weights: Weights, sizes: TinyClipSizes, precision: WeightPrecision): Uint8Array {
  const t = new TowerBuilder(weights, sizes, precision);
  const { g } = t;
  const c = sizes.contextLength;
  const emb = g.node('Gather', [t.w('text.token_embedding'), 'input_ids'], { axis: 0 }); // [B, T, H]
  const seqLen = g.node('Slice', [g.node('Shape', ['input_ids']), g.int64Const('one1', [1]), g.int64Const('two1', [2])]); // [1] = T
  const pos = g.node('Slice', [t.w('text.position_embedding'), g.int64Const('zero1', [0]), seqLen, g.int64Const('axis0', [0])]); // [T, H]
  let x = g.node('Add', [emb, pos]);
  const causal = new Float32Array(c * c);
  for (let i = 0; i < c; i++) for (let j = i + 1; j < c; j++) causal[i * c + j] = MASKED;
  const maskEnds = g.node('Concat', [seqLen, seqLen], { axis: 0 });
  const mask = g.node('Slice', [g.floatConst('causal_mask', causal, [c, c]), g.int64Const('zero2', [0, 0]), maskEnds]); // [T, T]
  for (let i = 0; i < sizes.textLayers; i++) x = t.encoderLayer(x, `text.layers.${i}`, mask);
  x = t.layerNorm(x, 'text.final_ln');
  const ids32 = g.node('Cast', ['input_ids'], { to: 6 }); // int32
  const eos = g.node('ArgMax', [ids32], { axis: 1, keepdims: 1 }); // [B, 1]
  const pooled = g.node('GatherND', [x, eos], { batch_dims: 1 }); // [B, H]
  g.node('MatMul', [pooled, t.w('text_projection')], {}, 'text_embeds'); // [B, D]
  return g.toBytes(
    'tiny_clip_text',
    [{ name: 'input_ids', elemType: ElemType.INT64, dims: ['batch_size', 'sequence_length'] }],
    [{ name: 'text_embeds', elemType: ElemType.FLOAT, dims: ['batch_size', sizes.projectionDim] }],
    'retformer-tiny-clip',
  );
}
