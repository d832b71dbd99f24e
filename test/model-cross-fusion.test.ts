import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ModelConfig, ModelConfigSchema } from '../src/model/config.ts';
import { initParams, paramSpecs } from '../src/model/params.ts';
import { Rng } from '../src/util/rng.ts';
import { forward } from './reference/retformer.ts';
import { initTf, matMul, softCrossEntropy, tf, toVariables } from './reference/tf.ts';

await initTf();

const D = 6;
const C = 3;
const n = 2;

function inputs(k: number, seed: number) {
  const rng = new Rng(seed);
  const r = (len: number) => Float32Array.from({ length: len }, () => rng.normal());
  return {
    query: r(n * D),
    nbImages: r(n * k * D),
    nbTexts: r(n * k * D),
    targets: Float32Array.from({ length: n * C }, (_, i) => (i % C === i / C ? 1 : 0)),
  };
}

function tokens(x: ReturnType<typeof inputs>, k: number) {
  const imageTokens = new Float32Array(n * (k + 1) * D);
  for (let b = 0; b < n; b++) {
    imageTokens.set(x.query.subarray(b * D, (b + 1) * D), b * (k + 1) * D);
    imageTokens.set(x.nbImages.subarray(b * k * D, (b + 1) * k * D), (b * (k + 1) + 1) * D);
  }
  return {
    query: tf.tensor2d(x.query, [n, D]),
    imageTokens: tf.tensor2d(imageTokens, [n * (k + 1), D]),
    neighbourTexts: tf.tensor2d(x.nbTexts, [n * k, D]),
  };
}

function gradCheck(overrides: Partial<ModelConfig>) {
  const config = ModelConfigSchema.parse({ k: 3, width: 8, heads: 2, layers: 2, hidden: 8, ...overrides });
  const dims = { inputDim: D, classes: C };
  const vars = toVariables(initParams(paramSpecs(config, dims), 7));
  // larger-than-default values so that every path (null tokens, LN gains, gate) carries gradient
  const rng = new Rng(8);
  for (const v of vars.values()) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal() * 0.5), v.shape));
  const x = inputs(config.k, 3);
  const lossOf = () =>
    tf.tidy(() => {
      const { logits } = forward(vars, config, dims, tokens(x, config.k));
      return softCrossEntropy(logits, tf.tensor2d(x.targets, [n, C]));
    });
  const { grads } = tf.variableGrads(() => lossOf(), [...vars.values()]);
  let checked = 0;
  for (const [name, v] of vars) {
    const g = grads[v.name].dataSync();
    const values = v.dataSync().slice();
    // the entry with the largest gradient and one more fixed entry
    let big = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[big])) big = i;
    for (const i of new Set([big, Math.floor(g.length / 2)])) {
      const eps = 1e-2;
      const at = (delta: number) => {
        const w = values.slice();
        w[i] += delta;
        v.assign(tf.tensor(w, v.shape));
        const l = lossOf();
        const out = l.dataSync()[0];
        l.dispose();
        return out;
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      v.assign(tf.tensor(values, v.shape));
      const tol = 3e-3 + 3e-2 * Math.abs(g[i]);
      assert.ok(Math.abs(numeric - g[i]) <= tol, `${name}[${i}]: analytic ${g[i]} vs numeric ${numeric}`);
      checked++;
    }
  }
  for (const t of Object.values(grads)) t.dispose();
  for (const v of vars.values()) v.dispose();
  return checked;
}

test('cross-fusion gradients match finite differences (plain, adaptive with null tokens and gate, with FFN)', () => {
  assert.ok(gradCheck({}) > 40);
  assert.ok(gradCheck({ adaptive: true }) > 40);
  assert.ok(gradCheck({ ffn: true, heads: 1 }) > 40);
});

test('the fast matMul gradient equals tfjs native gradients (2-D and batched)', () => {
  const rng = new Rng(1);
  const r = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
  for (const [sa, sb] of [
    [
      [5, 7],
      [7, 3],
    ],
    [
      [2, 5, 7],
      [2, 7, 3],
    ],
  ]) {
    const a = r(sa);
    const b = r(sb);
    const w = r([...sa.slice(0, -1), sb[sb.length - 1]]);
    const f1 = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matMul(x, y), w));
    const f2 = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y), w));
    const [ga1, gb1] = tf.grads(f1)([a, b]);
    const [ga2, gb2] = tf.grads(f2)([a, b]);
    assert.ok(tf.max(tf.abs(tf.sub(ga1, ga2))).dataSync()[0] < 1e-5);
    assert.ok(tf.max(tf.abs(tf.sub(gb1, gb2))).dataSync()[0] < 1e-5);
  }
});

test('variants see only their modalities: no-text ignores neighbour texts, no-image neighbour images, mlp-only both', () => {
  const dims = { inputDim: D, classes: C };
  const k = 3;
  const x = inputs(k, 4);
  const y = { ...x, nbImages: inputs(k, 5).nbImages };
  const z = { ...x, nbTexts: inputs(k, 6).nbTexts };
  const run = (variant: ModelConfig['variant'], data: typeof x) => {
    const config = ModelConfigSchema.parse({ variant, k, width: 8, heads: 2, layers: 2, hidden: 8 });
    const vars = toVariables(initParams(paramSpecs(config, dims), 2));
    const out = tf.tidy(() => forward(vars, config, dims, tokens(data, k)).logits.dataSync());
    for (const v of vars.values()) v.dispose();
    return Array.from(out);
  };
  const same = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) < 1e-6);
  assert.ok(same(run('no-text', x), run('no-text', z)), 'no-text must ignore texts');
  assert.ok(!same(run('no-text', x), run('no-text', y)), 'no-text must use images');
  assert.ok(same(run('no-image', x), run('no-image', y)), 'no-image must ignore neighbour images');
  assert.ok(!same(run('no-image', x), run('no-image', z)), 'no-image must use texts');
  assert.ok(same(run('image-only', x), run('image-only', z)), 'image-only must ignore texts');
  assert.ok(!same(run('image-only', x), run('image-only', y)), 'image-only must use neighbour images');
  assert.ok(same(run('mlp-only', x), run('mlp-only', y)) && same(run('mlp-only', x), run('mlp-only', z)));
  assert.ok(!same(run('full', x), run('full', y)) && !same(run('full', x), run('full', z)));
});

test('attention output is a distribution over the k neighbours', () => {
  const dims = { inputDim: D, classes: C };
  for (const adaptive of [false, true]) {
    const config = ModelConfigSchema.parse({ k: 3, width: 8, heads: 2, layers: 2, hidden: 8, adaptive });
    const vars = toVariables(initParams(paramSpecs(config, dims), 2));
    const att = tf.tidy(() => forward(vars, config, dims, tokens(inputs(3, 1), 3), { attention: true }).attention!.arraySync());
    for (const row of att) {
      assert.equal(row.length, 3);
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      assert.ok(row.every((v) => v >= 0));
    }
    for (const v of vars.values()) v.dispose();
  }
});

test('attention weight peaks on the neighbour whose text matches the query (known answer, right columns)', () => {
  // One layer, one head, identity projections (D = 6 into width 8, zero-padded): the image query z
  // attends over the texts with scores <LN(z), LN(text_j)> * 9 / sqrt(8), which peak (Cauchy-Schwarz) at the neighbour
  // whose text equals z; the zero text slot of the query makes the other direction uniform. The
  // reported weights must peak at that neighbour's rank (so the query's own slot is not reported
  // as a neighbour, and columns are not shifted).
  const dims = { inputDim: D, classes: C };
  const k = 3;
  const d = 8;
  const config = ModelConfigSchema.parse({ k, width: d, heads: 1, layers: 1, hidden: 8 });
  const params = initParams(paramSpecs(config, dims), 3);
  const eye = (rows: number, s: number) => Float32Array.from({ length: rows * d }, (_, i) => (i % d === Math.floor(i / d) ? s : 0)); // [rows, d]
  for (const [name, value] of [['proj.image', eye(D, 1)], ['proj.text', eye(D, 1)], ['l0.t.wq', eye(d, 3)], ['l0.t.wk', eye(d, 3)]] as const) params.get(name)!.data.set(value);
  const x = inputs(k, 7);
  const matching = [1, 2]; // sample b's neighbour matching[b] has the query's own vector as its text
  for (const [b, m] of matching.entries()) x.nbTexts.set(x.query.subarray(b * D, (b + 1) * D), (b * k + m) * D);
  const vars = toVariables(params);
  const att = tf.tidy(() => forward(vars, config, dims, tokens(x, k), { attention: true }).attention!.arraySync());
  for (const v of vars.values()) v.dispose();
  att.forEach((row, b) => {
    const best = row.indexOf(Math.max(...row));
    assert.equal(best, matching[b], `sample ${b}: weights ${row.map((v) => v.toFixed(3)).join(' ')}`);
    // the uniform direction gives each of the k+1 slots 1/(k+1); the peaked one most of its mass to one text
    assert.ok(row[best] > 0.5, `peak ${row[best]}`);
  });
});
