/**
 * An independent plain-TypeScript forward pass of the generated tiny CLIP (float64 arithmetic),
 * reading the weights back out of the .onnx files. Used to check that the ONNX graphs, as run by
 * onnxruntime through the encoder, compute CLIP: ViT image tower and causal text tower.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readOnnxInitializers } from '../../src/util/onnx-builder.ts';

type Mat = Float64Array[]; // rows

interface Sizes {
  hidden: number;
  heads: number;
  imageSize: number;
  patchSize: number;
  visionLayers: number;
  textLayers: number;
  eps: number;
}

export class TinyClipReference {
  private readonly w: Map<string, { dims: number[]; data: Float32Array }>;
  readonly sizes: Sizes;

  constructor(modelDir: string, suffix = '') {
    const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
    const v = cfg.vision_config;
    const t = cfg.text_config;
    this.sizes = {
      hidden: v.hidden_size,
      heads: v.num_attention_heads,
      imageSize: v.image_size,
      patchSize: v.patch_size,
      visionLayers: v.num_hidden_layers,
      textLayers: t.num_hidden_layers,
      eps: v.layer_norm_eps,
    };
    this.w = new Map([
      ...readOnnxInitializers(readFileSync(join(modelDir, 'onnx', `vision_model${suffix}.onnx`))),
      ...readOnnxInitializers(readFileSync(join(modelDir, 'onnx', `text_model${suffix}.onnx`))),
    ]);
    // fp16 files store `<name>_fp16`; expose them under the plain name
    for (const [k, val] of [...this.w]) if (k.endsWith('_fp16')) this.w.set(k.slice(0, -'_fp16'.length), val);
  }

  private get(name: string): Float32Array {
    const t = this.w.get(name);
    if (!t) throw new Error(`reference: no initializer ${name}`);
    return t.data;
  }

  /** x [T, in] @ W [in, out] + b [out] */
  private linear(x: Mat, prefix: string): Mat {
    const W = this.get(`${prefix}.weight`);
    const b = this.get(`${prefix}.bias`);
    const n = b.length;
    const k = W.length / n;
    return x.map((row) => {
      const out = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let s = b[j];
        for (let i = 0; i < k; i++) s += row[i] * W[i * n + j];
        out[j] = s;
      }
      return out;
    });
  }

  private layerNorm(x: Mat, prefix: string): Mat {
    const g = this.get(`${prefix}.weight`);
    const b = this.get(`${prefix}.bias`);
    return x.map((row) => {
      const n = row.length;
      const mean = row.reduce((a, c) => a + c, 0) / n;
      const variance = row.reduce((a, c) => a + (c - mean) ** 2, 0) / n;
      const inv = 1 / Math.sqrt(variance + this.sizes.eps);
      return row.map((c, j) => (c - mean) * inv * g[j] + b[j]);
    });
  }

  private layer(x: Mat, prefix: string, causal: boolean): Mat {
    const { hidden, heads } = this.sizes;
    const hd = hidden / heads;
    const T = x.length;
    const h = this.layerNorm(x, `${prefix}.ln1`);
    const q = this.linear(h, `${prefix}.q`);
    const k = this.linear(h, `${prefix}.k`);
    const v = this.linear(h, `${prefix}.v`);
    const ctx: Mat = Array.from({ length: T }, () => new Float64Array(hidden));
    for (let head = 0; head < heads; head++) {
      const off = head * hd;
      for (let i = 0; i < T; i++) {
        const scores = new Float64Array(T);
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < T; j++) {
          if (causal && j > i) {
            scores[j] = Number.NEGATIVE_INFINITY;
            continue;
          }
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[i][off + d] * k[j][off + d];
          scores[j] = s / Math.sqrt(hd);
          max = Math.max(max, scores[j]);
        }
        let z = 0;
        for (let j = 0; j < T; j++) {
          scores[j] = Math.exp(scores[j] - max);
          z += scores[j];
        }
        for (let j = 0; j < T; j++) for (let d = 0; d < hd; d++) ctx[i][off + d] += (scores[j] / z) * v[j][off + d];
      }
    }
    const attn = this.linear(ctx, `${prefix}.o`);
    const x1 = x.map((row, i) => row.map((c, j) => c + attn[i][j]));
    const a = this.linear(this.layerNorm(x1, `${prefix}.ln2`), `${prefix}.fc1`);
    const gelu = a.map((row) => row.map((c) => c / (1 + Math.exp(-1.702 * c)))); // quick_gelu
    const m = this.linear(gelu, `${prefix}.fc2`);
    return x1.map((row, i) => row.map((c, j) => c + m[i][j]));
  }

  private project(x: Float64Array, name: string): Float64Array {
    const P = this.get(name);
    const d = P.length / x.length;
    const out = new Float64Array(d);
    for (let j = 0; j < d; j++) for (let i = 0; i < x.length; i++) out[j] += x[i] * P[i * d + j];
    return out;
  }

  /** pixels: one preprocessed image [3, S, S] -> image_embeds [D] (not normalised). */
  imageEmbedding(pixels: Float32Array): Float64Array {
    const { hidden, imageSize: S, patchSize: P } = this.sizes;
    const grid = S / P;
    const conv = this.get('vision.patch_embedding'); // [H, 3, P, P]
    const cls = this.get('vision.class_embedding');
    const pos = this.get('vision.position_embedding'); // [T, H]
    let x: Mat = [Float64Array.from(cls)];
    for (let gy = 0; gy < grid; gy++) {
      for (let gx = 0; gx < grid; gx++) {
        const tok = new Float64Array(hidden);
        for (let o = 0; o < hidden; o++) {
          let s = 0;
          for (let c = 0; c < 3; c++)
            for (let ky = 0; ky < P; ky++)
              for (let kx = 0; kx < P; kx++) s += conv[((o * 3 + c) * P + ky) * P + kx] * pixels[(c * S + gy * P + ky) * S + gx * P + kx];
          tok[o] = s;
        }
        x.push(tok);
      }
    }
    x = x.map((row, t) => row.map((c, j) => c + pos[t * hidden + j]));
    x = this.layerNorm(x, 'vision.pre_ln');
    for (let l = 0; l < this.sizes.visionLayers; l++) x = this.layer(x, `vision.layers.${l}`, false);
    const pooled = this.layerNorm([x[0]], 'vision.post_ln')[0];
    return this.project(pooled, 'visual_projection');
  }

  /** ids: one tokenised text (start ... end, no padding needed) -> text_embeds [D] (not normalised). */
  textEmbedding(ids: readonly number[]): Float64Array {
    const { hidden } = this.sizes;
    const tok = this.get('text.token_embedding');
    const pos = this.get('text.position_embedding');
    let x: Mat = ids.map((id, t) => {
      const row = new Float64Array(hidden);
      for (let j = 0; j < hidden; j++) row[j] = tok[id * hidden + j] + pos[t * hidden + j];
      return row;
    });
    for (let l = 0; l < this.sizes.textLayers; l++) x = this.layer(x, `text.layers.${l}`, true);
    x = this.layerNorm(x, 'text.final_ln');
    let eos = 0;
    for (let t = 1; t < ids.length; t++) if (ids[t] > ids[eos]) eos = t; // first argmax
    return this.project(x[eos], 'text_projection');
  }
}

export function l2normalise(v: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(v);
  const n = Math.sqrt(out.reduce((a, c) => a + c * c, 0));
  return out.map((c) => c / n);
}
