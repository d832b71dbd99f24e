import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelConfigSchema } from '../src/model/config.ts';
import { cloneParams, initParams, paramSpecs } from '../src/model/params.ts';
import { assembleBatch, drawMixup, type TrainingData } from '../src/train/batch.ts';
import { logPriorAdjustment, smoothedOneHot } from '../src/train/loss.ts';
import { AdamW, learningRate } from '../src/train/optimizer.ts';
import { fetchNeighbourTable, guardNeighbours, retrieveNeighbours } from '../src/train/retrieval.ts';
import { Trainer } from '../src/train/trainer.ts';
import { Rng } from '../src/util/rng.ts';
import { initTf, softCrossEntropy, tf } from './reference/tf.ts';
import { makeClusteredProblem } from './helpers/train-fixtures.ts';

await initTf();

test('LACE equals CE on logits plus tau * log(prior)', () => {
  const counts = [50, 10, 1, 0];
  const adj = logPriorAdjustment(counts, 1);
  const total = 50 + 10 + 1 + 1; // an empty class counts as 1
  assert.ok(Math.abs(adj[0] - Math.log(50 / total)) < 1e-6);
  assert.ok(Math.abs(adj[3] - Math.log(1 / total)) < 1e-6);
  const logits = [
    [0.3, -1, 2, 0.5],
    [1.5, 0.2, -0.3, 0],
  ];
  const targets = Array.from(smoothedOneHot([2, 0], 4, 0.1));
  const lace = softCrossEntropy(tf.tensor2d(logits), tf.tensor2d(targets, [2, 4]), tf.tensor1d(adj)).dataSync()[0];
  // by hand: mean over rows of -sum t log softmax(logit + log prior)
  let expected = 0;
  logits.forEach((row, i) => {
    const a = row.map((v, c) => v + adj[c]);
    const lse = Math.log(a.reduce((s, v) => s + Math.exp(v), 0));
    expected += -a.reduce((s, v, c) => s + targets[i * 4 + c] * (v - lse), 0);
  });
  expected /= 2;
  assert.ok(Math.abs(lace - expected) < 1e-5, `${lace} vs ${expected}`);
  const ce = softCrossEntropy(tf.tensor2d(logits), tf.tensor2d(targets, [2, 4])).dataSync()[0];
  assert.ok(Math.abs(ce - lace) > 1e-3, 'the prior term changes the loss');
  // smoothing: 1 - eps + eps/C on the label
  assert.ok(Math.abs(targets[2] - (0.9 + 0.025)) < 1e-6 && Math.abs(targets[0] - 0.025) < 1e-6);
});

test('warmup is linear for one epoch, then cosine decays to 0', () => {
  assert.ok(Math.abs(learningRate(0, 1, 10, 100) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRate(9, 1, 10, 100) - 1) < 1e-12);
  assert.ok(Math.abs(learningRate(10, 1, 10, 100) - 1) < 1e-12);
  assert.ok(Math.abs(learningRate(55, 1, 10, 100) - 0.5) < 1e-12);
  assert.ok(learningRate(100, 1, 10, 100) < 1e-12);
});

function tinyData(): TrainingData {
  // 4 samples, D = 2, k = 2, 3 classes; neighbour table rows are recognisable numbers
  return {
    n: 4,
    dim: 2,
    k: 2,
    classes: 3,
    embeddings: Float32Array.from([1, 0, 0, 1, 2, 2, 3, 3]),
    labels: Int32Array.from([0, 1, 2, 0]),
    table: {
      index: Int32Array.from([0, 1, 1, 2, 2, -1, 3, 0]),
      images: Float32Array.from([10, 11, 20, 21, 30, 31, 40, 41]),
      texts: Float32Array.from([-10, -11, -20, -21, -30, -31, -40, -41]),
    },
  };
}

test('batches put z in slot 0 of the image stream and neighbour rows by rank (missing ones zero)', () => {
  const b = assembleBatch(tinyData(), [2, 0], 0);
  assert.deepEqual(Array.from(b.query), [2, 2, 1, 0]);
  // sample 2: neighbours [table 2, none]; sample 0: [table 0, table 1]
  assert.deepEqual(Array.from(b.imageTokens), [2, 2, 30, 31, 0, 0, 1, 0, 10, 11, 20, 21]);
  assert.deepEqual(Array.from(b.neighbourTexts), [-30, -31, 0, 0, -10, -11, -20, -21]);
  assert.deepEqual(Array.from(b.targets), [0, 0, 1, 1, 0, 0]);
});

test('Mixup mixes z, retrieved image rows, retrieved text rows (aligned by rank) and targets with one lambda', () => {
  const data = tinyData();
  const idx = [0, 1, 3];
  const plain = assembleBatch(data, idx, 0);
  const plan = { lambda: 0.7, partner: [2, 0, 1] };
  const mixed = assembleBatch(data, idx, 0, plan);
  const mix = (x: Float32Array, per: number, i: number, t: number) => 0.7 * x[i * per + t] + 0.3 * x[plan.partner[i] * per + t];
  for (let i = 0; i < 3; i++) {
    for (let t = 0; t < 2; t++) assert.ok(Math.abs(mixed.query[i * 2 + t] - mix(plain.query, 2, i, t)) < 1e-6);
    for (let t = 0; t < 6; t++) assert.ok(Math.abs(mixed.imageTokens[i * 6 + t] - mix(plain.imageTokens, 6, i, t)) < 1e-6);
    for (let t = 0; t < 4; t++) assert.ok(Math.abs(mixed.neighbourTexts[i * 4 + t] - mix(plain.neighbourTexts, 4, i, t)) < 1e-6);
    for (let t = 0; t < 3; t++) assert.ok(Math.abs(mixed.targets[i * 3 + t] - mix(plain.targets, 3, i, t)) < 1e-6);
  }
  // sample 0 (rank 0 = table 0 image 10,11) mixed with sample 3 (rank 0 = table 3 image 40,41)
  assert.ok(Math.abs(mixed.imageTokens[2] - (0.7 * 10 + 0.3 * 40)) < 1e-5);
  const a = drawMixup(new Rng(4), 8, 0.8)!;
  const b = drawMixup(new Rng(4), 8, 0.8)!;
  assert.deepEqual(a, b, 'seeded');
  assert.deepEqual([...a.partner].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok(a.lambda > 0 && a.lambda < 1);
  assert.equal(drawMixup(new Rng(4), 8, 0), undefined);
});

test('leakage guard: a training image never retrieves its own pair (same source or listed id)', async () => {
  const p = makeClusteredProblem({ dim: 8, trainCounts: [5, 5], testPerClass: 1, kbPerClass: 4, imageNoise: 0.3, textNoise: 0.1, seed: 2 });
  const sources = p.train.samples.map((s) => s.path);
  // without the guard every training image finds itself first (similarity 1)
  const unguarded = await p.kb.search(p.trainEmbeddings, { k: 3, queryEncoderId: p.encoder.id });
  assert.ok(unguarded.every((l, i) => l[0].source === sources[i]));
  const r = await retrieveNeighbours(p.kb, p.trainEmbeddings, { k: 3, extra: 2, queryEncoderId: p.encoder.id, sources, quiet: true });
  const metas = await p.kb.meta(Array.from(r.rows));
  for (const [j, m] of metas.entries()) assert.notEqual(m.source, sources[Math.floor(j / 3)]);
  assert.ok(Array.from(r.rows).every((row) => row >= 0), 'still k neighbours each');
  // an id given in the CSV's id column is excluded too
  const own = p.kbPairs.find((q) => q.meta.source === sources[0])!;
  const other = unguarded[0][1];
  const kept = guardNeighbours(unguarded[0], 3, undefined, new Set([own.meta.id, other.id]));
  assert.ok(kept.every((nb) => nb.id !== own.meta.id && nb.id !== other.id));
  // the table holds exactly the rows' vectors
  const table = await fetchNeighbourTable(p.kb, r.rows);
  const direct = await p.kb.vectors([r.rows[0]], 'text');
  assert.deepEqual(Array.from(table.texts.subarray(table.index[0] * 8, table.index[0] * 8 + 8)), Array.from(direct));
});

test('a training step falls the loss on a fixed batch, and micro-batching does not change the update', async () => {
  const config = ModelConfigSchema.parse({ k: 4, width: 8, heads: 2, layers: 2, hidden: 8, adaptive: true });
  const dims = { inputDim: 6, classes: 3 };
  const init = initParams(paramSpecs(config, dims), 1);
  const rng = new Rng(1);
  const r = (len: number) => Float32Array.from({ length: len }, () => rng.normal());
  const batch = { n: 7, query: r(7 * 6), imageTokens: r(7 * 5 * 6), neighbourTexts: r(7 * 4 * 6), targets: smoothedOneHot([0, 1, 2, 0, 1, 2, 0], 3, 0.1) };
  const opts = { weightDecay: 0.1, logitAdjust: Float32Array.from([0, -1, -2]) };
  const micro = new Trainer(config, dims, init, { ...opts, microBatch: 3 });
  const whole = new Trainer(config, dims, init, { ...opts, microBatch: 7 });
  const losses = [];
  for (let i = 0; i < 6; i++) {
    losses.push(await micro.step(batch, 1e-2));
    await whole.step(batch, 1e-2);
  }
  assert.ok(losses[5] < losses[0], `loss should fall on a fixed batch: ${losses}`);
  const a = micro.values();
  const b = whole.values();
  for (const [name, p] of a) for (let i = 0; i < p.data.length; i++) assert.ok(Math.abs(p.data[i] - b.get(name)!.data[i]) < 1e-4, name);
  // the initial values are untouched (the trainer works on its own copy)
  assert.notDeepEqual(Array.from(a.get('head.w')!.data), Array.from(init.get('head.w')!.data));
  assert.equal(micro.optimizerState().step, 6);
  await micro.dispose();
  await whole.dispose();
});

test('AdamW: one step by hand, decay only on matrices', () => {
  const params = new Map([
    ['w', { shape: [2], data: Float32Array.from([1, -2]) }],
    ['b', { shape: [1], data: Float32Array.from([0.5]) }],
  ]);
  const opt = new AdamW(params, new Set(['w']), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
  opt.apply(new Map([['w', Float32Array.from([0.2, -0.4])], ['b', Float32Array.from([1])]]), 0.01);
  // step 1: m^ = g, v^ = g^2, so the Adam term is sign(g)
  assert.ok(Math.abs(params.get('w')!.data[0] - (1 - 0.01 * (1 + 0.1 * 1))) < 1e-6);
  assert.ok(Math.abs(params.get('w')!.data[1] - (-2 - 0.01 * (-1 + 0.1 * -2))) < 1e-6);
  assert.ok(Math.abs(params.get('b')!.data[0] - (0.5 - 0.01)) < 1e-6, 'no decay on b');
  const st = opt.state();
  const again = new AdamW(cloneParams(params), new Set(['w']), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
  again.load(st);
  assert.equal(again.step, 1);
  assert.deepEqual(again.state().m.get('w'), st.m.get('w'));
});
