import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ModelConfig, ModelConfigSchema, usesLabels, usesSims } from '../src/model/config.ts';
import { DiffGraph } from '../src/model/onnx/diff-graph.ts';
import { buildRetformerGraph } from '../src/model/onnx/retformer-graph.ts';
import { ForwardGraph, TrainGraph } from '../src/model/onnx/session.ts';
import { initParams, paramSpecs } from '../src/model/params.ts';
import { smoothedOneHot } from '../src/train/loss.ts';
import { ElemType } from '../src/util/onnx-builder.ts';
import { Rng } from '../src/util/rng.ts';
import { forward } from './reference/retformer.ts';
import { initTf, softCrossEntropy, tf, toVariables } from './reference/tf.ts';

/**
 * The ONNX Runtime graphs (training step with hand-built backward, and inference) against the tfjs
 * forward and tfjs autodiff, which model-cross-fusion.test.ts checks against finite differences.
 */
await initTf();

const D = 6;
const C = 4;
const n = 5;

function setup(overrides: Partial<ModelConfig>, seed = 1) {
  const config = ModelConfigSchema.parse({ k: 3, width: 8, heads: 2, layers: 3, hidden: 8, ...overrides });
  const dims = { inputDim: D, classes: C };
  const rng = new Rng(seed);
  const params = initParams(paramSpecs(config, dims), seed);
  // values away from the initialisation so that LN gains, null tokens and the gate all carry gradient
  for (const p of params.values()) for (let i = 0; i < p.data.length; i++) p.data[i] = rng.normal() * 0.5;
  const r = (len: number) => Float32Array.from({ length: len }, () => rng.normal());
  const { k } = config;
  const query = r(n * D);
  const imageTokens = r(n * (k + 1) * D);
  for (let b = 0; b < n; b++) imageTokens.set(query.subarray(b * D, (b + 1) * D), b * (k + 1) * D);
  // neighbour labels (label memory): one-hot rows, every fourth slot without a label
  const neighbourLabels = new Float32Array(n * k * C);
  for (let i = 0; i < n * k; i++) if (i % 4 !== 3) neighbourLabels[i * C + ((i * 7 + 1) % C)] = 1;
  const neighbourSims = Float32Array.from({ length: n * k }, () => rng.next());
  const batch = { n, query, imageTokens, neighbourTexts: r(n * k * D), ...(usesLabels(config) ? { neighbourLabels } : {}), ...(usesSims(config) ? { neighbourSims } : {}) };
  // soft targets as Mixup makes them: two smoothed one-hots mixed
  const t1 = smoothedOneHot([0, 1, 2, 3, 1], C, 0.1);
  const t2 = smoothedOneHot([2, 2, 0, 1, 3], C, 0.1);
  const targets = t1.map((v, i) => 0.7 * v + 0.3 * t2[i]);
  return { config, dims, params, batch, targets };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-6);
}

const cases: [string, Partial<ModelConfig>][] = [
  ['full, 2 heads', {}],
  ['full, 1 head', { heads: 1 }],
  ['full, 4 heads, k 5 (T and h differ: a wrong head order fails)', { heads: 4, k: 5 }],
  ['adaptive, 4 heads, k 5', { adaptive: true, heads: 4, k: 5 }],
  ['no-text', { variant: 'no-text' }],
  ['no-image', { variant: 'no-image' }],
  ['image-only', { variant: 'image-only' }],
  ['mlp-only', { variant: 'mlp-only' }],
  ['adaptive gate + null tokens', { adaptive: true }],
  ['feed-forward blocks, tau 2', { ffn: true, tau: 2 }],
  ['label memory, free table, 4 heads, k 5', { labelMemory: 'table', heads: 4, k: 5 }],
  ['label memory tied to the head, adaptive', { labelMemory: 'tied', adaptive: true }],
  ['label memory tied, no-image', { labelMemory: 'tied', variant: 'no-image' }],
  ['similarity bias, 4 heads, k 5', { simBias: true, heads: 4, k: 5 }],
  ['label memory vote, 4 heads, k 5, adaptive', { labelMemory: 'vote', heads: 4, k: 5, adaptive: true }],
  ['label memory vote + similarity bias, 1 layer', { labelMemory: 'vote', simBias: true, layers: 1 }],
  ['similarity bias + label memory, adaptive', { simBias: true, labelMemory: 'table', adaptive: true }],
  ['similarity bias with gain 3 (simBiasGain, not the default 10), tied, 4 heads, k 5', { simBias: true, simBiasGain: 3, labelMemory: 'tied', heads: 4, k: 5 }],
];

for (const [name, overrides] of cases) {
  test(`ONNX training step equals tfjs loss and gradients: ${name}`, async () => {
    const { config, dims, params, batch, targets } = setup(overrides);
    const adjust = Float32Array.from([0, -0.5, -1, -2]);
    const vars = toVariables(params);
    const { value, grads } = tf.variableGrads(() => {
      const { logits } = forward(vars, config, dims, {
        query: tf.tensor2d(batch.query, [n, D]),
        imageTokens: tf.tensor2d(batch.imageTokens, [n * (config.k + 1), D]),
        neighbourTexts: tf.tensor2d(batch.neighbourTexts, [n * config.k, D]),
        neighbourLabels: batch.neighbourLabels ? tf.tensor2d(batch.neighbourLabels, [n * config.k, C]) : undefined,
        neighbourSims: batch.neighbourSims ? tf.tensor2d(batch.neighbourSims, [n, config.k]) : undefined,
      });
      return softCrossEntropy(logits, tf.tensor2d(targets, [n, C]), tf.tensor1d(adjust));
    }, [...vars.values()]);
    const graph = new TrainGraph(config, dims, { logitAdjust: adjust });
    const res = await graph.run(params, batch, targets, 1 / n);
    await graph.release();
    assert.ok(Math.abs(res.loss - value.dataSync()[0]) < 1e-4 * Math.max(1, Math.abs(res.loss)), `loss ${res.loss} vs ${value.dataSync()[0]}`);
    let compared = 0;
    for (const [pname, v] of vars) {
      const ref = grads[v.name];
      const ours = res.grads.get(pname);
      if (!ref) {
        assert.equal(ours, undefined, `${pname}: tfjs has no gradient, ONNX should have none`);
        continue;
      }
      assert.ok(ours, `${pname}: gradient missing`);
      const refData = ref.dataSync();
      const err = relErr(ours, refData);
      const scale = Math.sqrt(Array.from(refData).reduce((s: number, x: number) => s + x * x, 0));
      assert.ok(err < 1e-3 || scale < 1e-7, `${pname}: relative error ${err}`);
      compared++;
    }
    assert.ok(compared >= (config.variant === 'mlp-only' ? 4 : 10), `compared ${compared} gradients`);
    for (const t of Object.values(grads)) t.dispose();
    for (const v of vars.values()) v.dispose();
    value.dispose();
  });
}

test('ONNX inference graph equals the tfjs forward (logits, attention, gate) and outputs the two branches', async () => {
  for (const overrides of [{ adaptive: true }, { heads: 4, k: 5 }, { variant: 'no-image' as const }, { variant: 'mlp-only' as const }, { labelMemory: 'tied' as const }, { labelMemory: 'table' as const, heads: 4, k: 5 }, { simBias: true, adaptive: true, heads: 4, k: 5 }, { labelMemory: 'vote' as const, simBias: true }, { labelMemory: 'tied' as const, simBias: true, simBiasGain: 3 }]) {
    const { config, dims, params, batch } = setup(overrides, 3);
    const vars = toVariables(params);
    const ref = tf.tidy(() => {
      const o = forward(
        vars,
        config,
        dims,
        {
          query: tf.tensor2d(batch.query, [n, D]),
          imageTokens: tf.tensor2d(batch.imageTokens, [n * (config.k + 1), D]),
          neighbourTexts: tf.tensor2d(batch.neighbourTexts, [n * config.k, D]),
          neighbourLabels: batch.neighbourLabels ? tf.tensor2d(batch.neighbourLabels, [n * config.k, C]) : undefined,
        neighbourSims: batch.neighbourSims ? tf.tensor2d(batch.neighbourSims, [n, config.k]) : undefined,
        },
        { attention: true },
      );
      return { logits: o.logits.dataSync(), attention: o.attention?.dataSync(), gate: o.gate?.dataSync() };
    });
    const graph = new ForwardGraph(config, dims, params);
    const out = await graph.run(batch);
    // a second row count gets its own session and the same per-row answers
    const one = await graph.run({ n: 1, query: batch.query.subarray(0, D), imageTokens: batch.imageTokens.subarray(0, (config.k + 1) * D), neighbourTexts: batch.neighbourTexts.subarray(0, config.k * D), neighbourLabels: batch.neighbourLabels?.subarray(0, config.k * C), neighbourSims: batch.neighbourSims?.subarray(0, config.k) });
    await graph.release();
    assert.ok(relErr(out.logits, ref.logits) < 1e-4, `${config.variant} logits`);
    assert.ok(relErr(one.logits, ref.logits.subarray(0, C)) < 1e-4, 'single row');
    if (ref.attention) {
      assert.ok(relErr(out.attention, ref.attention) < 1e-4, 'attention');
      for (let b = 0; b < n; b++) assert.ok(Math.abs(Array.from(out.attention.subarray(b * config.k, (b + 1) * config.k)).reduce((s, x) => s + x, 0) - 1) < 1e-5);
    } else assert.equal(out.attention.length, 0);
    if (ref.gate) assert.ok(relErr(out.gate!, ref.gate) < 1e-4, 'gate');
    else assert.equal(out.gate, undefined);
    // the branch outputs recompose the fused logits: tau/2 (L_I + L_R), tau ((1-g) L_I + g L_R), or tau L_I
    const fused = out.logits.map((_, i) => {
      const LI = out.imageLogits[i];
      if (!out.retrievalLogits) return config.tau * LI;
      const LR = out.retrievalLogits[i];
      if (!out.gate) return (config.tau / 2) * (LI + LR);
      const g = out.gate[Math.floor(i / C)];
      return config.tau * ((1 - g) * LI + g * LR);
    });
    assert.equal(out.imageLogits.length, n * C);
    assert.equal(out.retrievalLogits === undefined, config.variant === 'mlp-only');
    assert.ok(relErr(fused, out.logits) < 1e-5, `${config.variant} branches recompose the logits`);
    for (const v of vars.values()) v.dispose();
  }
});

test('DiffGraph.permute refuses an order that is not a permutation of the axis', () => {
  const g = new DiffGraph();
  const x = g.input('x', [2, 3, 4], true);
  assert.throws(() => g.permute(x, 1, [0, 0, 2]), /not a permutation/);
  assert.throws(() => g.permute(x, 1, [0, 1]), /not a permutation/);
  assert.equal(g.permute(x, 1, [2, 0, 1]).shape.join(','), '2,3,4');
});

test('DiffGraph.sum and DiffGraph.div: values and gradients equal tfjs autodiff', async () => {
  await initTf();
  const rng = new Rng(11);
  const xs = Float32Array.from({ length: 2 * 3 * 4 }, () => rng.normal());
  const cs = Float32Array.from({ length: 4 }, () => 1 + rng.next());
  const w = Float32Array.from({ length: 2 * 3 }, () => rng.normal());
  for (const keepdims of [true, false]) {
    // y = sum_{b,t} w[b,t] * sum_j (x / c)[b,t,j]  (x and c both trainable)
    const g = new DiffGraph();
    const x = g.input('x', [2, 3, 4], true);
    const c = g.input('c', [4], true);
    const s = g.sum(g.div(x, c), [-1], keepdims); // [2, 3, 1] or [2, 3]
    const y = g.sum(g.mul(s, g.weight('w', w, keepdims ? [2, 3, 1] : [2, 3])), keepdims ? [0, 1, 2] : [0, 1], false); // []
    const grads = g.backward([[y, g.constant(1).name]], [x, c]);
    const outs = [
      { name: g.output(y, 'y'), elemType: ElemType.FLOAT, dims: [] },
      { name: g.output(grads.get('x')!, 'gx'), elemType: ElemType.FLOAT, dims: [2, 3, 4] },
      { name: g.output(grads.get('c')!, 'gc'), elemType: ElemType.FLOAT, dims: [4] },
    ];
    const { ort } = await import('../src/util/ort.ts');
    const session = await ort.InferenceSession.create(g.toBytes('sum_div', outs));
    const out = await session.run({ x: new ort.Tensor('float32', xs, [2, 3, 4]), c: new ort.Tensor('float32', cs, [4]) });
    await session.release();
    const f = (xt: tf.Tensor, ct: tf.Tensor) => tf.sum(tf.mul(tf.sum(tf.div(xt, ct), -1), tf.tensor2d(w, [2, 3])));
    const [gx, gc] = tf.grads(f)([tf.tensor3d(xs, [2, 3, 4]), tf.tensor1d(cs)]);
    const yRef = f(tf.tensor3d(xs, [2, 3, 4]), tf.tensor1d(cs)).dataSync();
    assert.ok(relErr(out.y.data as Float32Array, yRef as Float32Array) < 1e-5, 'value');
    assert.ok(relErr(out.gx.data as Float32Array, gx.dataSync() as Float32Array) < 1e-5, 'd/dx');
    assert.ok(relErr(out.gc.data as Float32Array, gc.dataSync() as Float32Array) < 1e-5, 'd/dc');
  }
});

test('ForwardGraph.runHalf (neighbour vectors as f16 bits, cast in the graph) equals run() on the same values decoded', async () => {
  const { floatToHalf, halfToFloat } = await import('../src/util/half.ts');
  for (const overrides of [{}, { heads: 4, k: 5, adaptive: true }, { labelMemory: 'vote' as const, simBias: true }, { variant: 'no-image' as const }]) {
    const { config, dims, params, batch } = setup(overrides, 4);
    const { k } = config;
    // the neighbour rows of the image tokens (every row but each query's own) and the texts, rounded to f16
    const images16 = new Uint16Array(n * k * D);
    for (let b = 0; b < n; b++) images16.set(floatToHalf(batch.imageTokens.subarray((b * (k + 1) + 1) * D, (b + 1) * (k + 1) * D)), b * k * D);
    const texts16 = floatToHalf(batch.neighbourTexts);
    const imageTokens = new Float32Array(batch.imageTokens.length);
    const decodedImages = halfToFloat(images16);
    for (let b = 0; b < n; b++) {
      imageTokens.set(batch.query.subarray(b * D, (b + 1) * D), b * (k + 1) * D);
      imageTokens.set(decodedImages.subarray(b * k * D, (b + 1) * k * D), (b * (k + 1) + 1) * D);
    }
    const graph = new ForwardGraph(config, dims, params);
    const f32 = await graph.run({ ...batch, imageTokens, neighbourTexts: halfToFloat(texts16) });
    const half = await graph.runHalf({ n, query: batch.query, neighbourImages: images16, neighbourTexts: texts16, neighbourLabels: batch.neighbourLabels, neighbourSims: batch.neighbourSims });
    await graph.release();
    assert.ok(relErr(half.logits, f32.logits) < 1e-6, `${JSON.stringify(overrides)}: logits ${relErr(half.logits, f32.logits)}`);
    assert.ok(relErr(half.attention, f32.attention) < 1e-6, 'attention');
    assert.ok(relErr(half.imageLogits, f32.imageLogits) < 1e-6, 'L_I');
    if (f32.gate) assert.ok(relErr(half.gate!, f32.gate) < 1e-6, 'gate');
  }
});

test('f16 neighbour inputs are refused where they cannot apply: the token layout, an mlp-only model', async () => {
  const { config, dims, params } = setup({});
  assert.throws(() => buildRetformerGraph(config, dims, 1, { kind: 'infer', weights: params, neighbourDtype: 'f16' }), /f16 neighbour inputs need the 'neighbours' input layout/);
  const mlp = setup({ variant: 'mlp-only' });
  const graph = new ForwardGraph(mlp.config, mlp.dims, mlp.params);
  await assert.rejects(graph.runHalf({ n: 1, query: new Float32Array(D), neighbourImages: new Uint16Array(0), neighbourTexts: new Uint16Array(0) }), /an mlp-only model takes no neighbour vectors/);
  await graph.release();
});
