import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ModelConfig, ModelConfigSchema } from '../src/model/config.ts';
import { QueryForward } from '../src/model/infer.ts';
import { initParams, paramSpecs, toVariables } from '../src/model/params.ts';
import { forward } from '../src/model/retformer.ts';
import { initTf, tf } from '../src/model/tf.ts';
import { Rng } from '../src/util/rng.ts';

await initTf();

const D = 12;
const C = 5;
const k = 4;
const n = 3;

function compare(overrides: Partial<ModelConfig>, missing = 0) {
  const config = ModelConfigSchema.parse({ k, width: 8, heads: 2, layers: 3, hidden: 8, ...overrides });
  const dims = { inputDim: D, classes: C };
  const values = initParams(paramSpecs(config, dims), 3);
  const rng = new Rng(4);
  for (const v of values.values()) for (let i = 0; i < v.data.length; i++) v.data[i] += 0.3 * rng.normal();
  const r = (len: number) => Float32Array.from({ length: len }, () => rng.normal());
  const z = r(n * D);
  const images = r(n * k * D);
  const texts = r(n * k * D);
  // the last `missing` ranks of every query have no neighbour: zero rows for tfjs, absent for the TS path
  for (let b = 0; b < n; b++)
    for (let j = k - missing; j < k; j++) {
      images.fill(0, (b * k + j) * D, (b * k + j + 1) * D);
      texts.fill(0, (b * k + j) * D, (b * k + j + 1) * D);
    }
  const imageTokens = new Float32Array(n * (k + 1) * D);
  for (let b = 0; b < n; b++) {
    imageTokens.set(z.subarray(b * D, (b + 1) * D), b * (k + 1) * D);
    imageTokens.set(images.subarray(b * k * D, (b + 1) * k * D), (b * (k + 1) + 1) * D);
  }
  const vars = toVariables(values);
  const ref = tf.tidy(() => {
    const o = forward(vars, config, dims, { query: tf.tensor2d(z, [n, D]), imageTokens: tf.tensor2d(imageTokens, [n * (k + 1), D]), neighbourTexts: tf.tensor2d(texts, [n * k, D]) }, { attention: true });
    return { logits: o.logits.dataSync(), attention: o.attention?.dataSync(), gate: o.gate?.dataSync() };
  });
  for (const v of vars.values()) v.dispose();
  const fast = new QueryForward(config, dims, values);
  for (let b = 0; b < n; b++) {
    const rows = Array.from({ length: k - missing }, (_, j) => 100 * b + j);
    const out = fast.run(z.subarray(b * D, (b + 1) * D), rows, images.subarray(b * k * D, (b + 1) * k * D), texts.subarray(b * k * D, (b + 1) * k * D));
    for (let c = 0; c < C; c++) assert.ok(Math.abs(out.logits[c] - ref.logits[b * C + c]) < 1e-4, `${JSON.stringify(overrides)} logit ${b},${c}: ${out.logits[c]} vs ${ref.logits[b * C + c]}`);
    if (ref.attention) for (let j = 0; j < k; j++) assert.ok(Math.abs(out.attention[j] - ref.attention[b * k + j]) < 1e-4, `attention ${b},${j}`);
    if (ref.gate) assert.ok(Math.abs((out.gate ?? -1) - ref.gate[b]) < 1e-4, 'gate');
    // the cached neighbour projections give the same answer the second time
    const again = fast.run(z.subarray(b * D, (b + 1) * D), rows, images.subarray(b * k * D, (b + 1) * k * D), texts.subarray(b * k * D, (b + 1) * k * D));
    assert.deepEqual(again.logits, out.logits);
  }
}

test('the plain-TypeScript query forward equals the tfjs forward within 1e-4 (every variant, adaptive, FFN, missing neighbours)', () => {
  for (const variant of ['full', 'no-text', 'no-image', 'image-only', 'mlp-only'] as const) compare({ variant });
  compare({ adaptive: true });
  compare({ ffn: true, heads: 1 });
  compare({ adaptive: true, variant: 'no-text' });
  compare({}, 2);
});
