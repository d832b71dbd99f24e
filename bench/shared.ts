/**
 * Pieces the training benchmarks share: the analytic FLOP count of the RetFormer model and ONNX
 * Runtime's plain MatMul rate, the reference every efficiency ratio is taken against.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ort } from '../src/util/ort.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { smoothedOneHot } from '../src/train/loss.ts';
import type { HostBatch } from '../src/train/trainer.ts';
import { ElemType, OnnxGraphBuilder } from '../src/util/onnx-builder.ts';
import { Rng } from '../src/util/rng.ts';

/** Sizes fixed by the data: encoder dim D and class count C. */
export interface BenchDims {
  D: number;
  C: number;
}

/** The benchmarked model's data sizes: a CLIP-like encoder dim and the emoji demo's class count. */
export const BENCH_DIMS: BenchDims = { D: 256, C: 99 };
/** Rows per forward/backward pass, as in training. */
export const MICRO_BATCH = 128;

/** A random batch of n rows with k neighbours each (embedding-scale values) and smoothed one-hot targets. */
export function randomBatch(n: number, k: number, { D, C }: BenchDims, seed: number): HostBatch {
  const rng = new Rng(seed);
  const r = (len: number) => Float32Array.from({ length: len }, () => rng.normal() * 0.06);
  return {
    n,
    query: r(n * D), // [n, D]
    imageTokens: r(n * (k + 1) * D), // [n*(k+1), D]
    neighbourTexts: r(n * k * D), // [n*k, D]
    targets: smoothedOneHot(
      Array.from({ length: n }, (_, i) => i % C),
      C,
      0.1,
    ), // [n, C]
  };
}

/** Forward FLOPs per sample (multiply-add = 2), by kind: 2-D products and batched attention products. */
export function forwardFlops(c: ModelConfig, { D, C }: BenchDims): { dense: number; attention: number; constInput: number } {
  const d = c.width;
  const T1 = c.k + 1;
  const mlp = 2 * (D * c.hidden + c.hidden * C);
  const proj = 2 * (T1 * D * d + c.k * D * d);
  const fullDir = 4 * 2 * T1 * d * d; // q, k, v, o over all tokens
  const lastDir = 2 * (2 * T1 * d * d + 2 * d * d); // k, v over all tokens; q, o for the query row
  const dense = mlp + proj + (c.layers - 1) * 2 * fullDir + 2 * lastDir + 2 * (2 * d * C);
  const attention = (c.layers - 1) * 2 * (2 * 2 * T1 * T1 * d) + 2 * (2 * 2 * T1 * d);
  const constInput = 2 * D * c.hidden + proj;
  return { dense, attention, constInput };
}

/** Training FLOPs per sample: forward, plus backward = 2x forward except the input gradient of the frozen embeddings. */
export function trainFlops(c: ModelConfig, dims: BenchDims): { total: number; attention: number } {
  const f = forwardFlops(c, dims);
  return { total: 3 * (f.dense + f.attention) - f.constInput, attention: 3 * f.attention };
}

/** Plain MatMul GFLOP/s of [m,k]x[k,n] (batched when b > 0) in ONNX Runtime, as a one-node graph. */
export async function ortMatmulRate(m: number, k: number, n: number, options: { b?: number; reps?: number; threads: number }): Promise<number> {
  const b = options.b ?? 0;
  const reps = options.reps ?? 10;
  const g = new OnnxGraphBuilder();
  const aDims = b > 0 ? [b, m, k] : [m, k];
  const wDims = b > 0 ? [b, k, n] : [k, n];
  // summed to a scalar in the graph so that copying the product out to JS is not timed (the
  // reduction pass is, which makes the reference rate slightly conservative)
  g.node('ReduceSum', [g.node('MatMul', ['a', 'w'])], { keepdims: 0 }, 'y');
  const bytes = g.toBytes(
    'matmul',
    [
      { name: 'a', elemType: ElemType.FLOAT, dims: aDims },
      { name: 'w', elemType: ElemType.FLOAT, dims: wDims },
    ],
    [{ name: 'y', elemType: ElemType.FLOAT, dims: [] }],
  );
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: options.threads, interOpNumThreads: 1 });
  const rng = new Rng(3);
  const r = (dims: number[]) => new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((x, y) => x * y, 1) }, () => rng.normal()), dims);
  const feeds = { a: r(aDims), w: r(wDims) };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await session.run(feeds);
  const ms = (performance.now() - t0) / reps;
  await session.release();
  return (2 * Math.max(b, 1) * m * k * n) / ms / 1e6;
}

/**
 * `count` clustered unit vectors [count, dim]: a random centre (of `centres`, [clusters, dim]) plus
 * isotropic noise whose norm is ~0.9 x the centre's, normalised. The data of bench:kb and
 * bench:kb-dtype.
 */
export function clusteredVectors(count: number, dim: number, centres: Float32Array, rng: Rng): Float32Array {
  const clusters = centres.length / dim;
  const out = new Float32Array(count * dim);
  const noise = 0.9 / Math.sqrt(dim); // per coordinate
  for (let i = 0; i < count; i++) {
    const c = rng.int(clusters);
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const v = centres[c * dim + j] + rng.normal() * noise;
      out[i * dim + j] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) out[i * dim + j] *= inv;
  }
  return out;
}

/**
 * Time each named run `rounds` times, alternating between them so that a change of load hits all
 * of them alike; the best (smallest) ms of each.
 */
export async function bestOfAlternating<Name extends string>(runs: Record<Name, () => unknown>, rounds = 3): Promise<Record<Name, number>> {
  const entries = Object.entries(runs) as [Name, () => unknown][];
  const best = Object.fromEntries(entries.map(([name]) => [name, Number.POSITIVE_INFINITY])) as Record<Name, number>;
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of entries) {
      const start = performance.now();
      await run();
      best[name] = Math.min(best[name], performance.now() - start);
    }
  }
  return best;
}

/**
 * The held-out queries ([q, dim]) and their exact top-k rows that a `bench:scale --keep DIR` run
 * left in DIR (queries.f32, truth.json).
 */
export function readKeptQueries(dir: string): { queries: Float32Array; truth: number[][] } {
  const raw = readFileSync(join(dir, 'queries.f32'));
  const queries = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)); // [q, dim]
  const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as number[][];
  return { queries, truth };
}
