import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Dataset } from '../src/data/types.ts';
import { Predictor } from '../src/infer/predictor.ts';
import { MemoryKnowledgeBase } from '../src/kb/memory.ts';
import type { EmbeddedPair } from '../src/kb/types.ts';
import { assembleInputs, labelIndexOf } from '../src/model/inputs.ts';
import { trainRun } from '../src/train/index.ts';
import { Rng } from '../src/util/rng.ts';
import { FakeEncoder, makeClusteredProblem, makeTmp } from './helpers/train-fixtures.ts';

/**
 * Label memory (labelMemory: table | tied): the neighbours' labels reach the model. Gradients and the
 * forward against the tfjs reference: model-onnx.test.ts; the exported file: export-onnx.test.ts.
 */

const tmp = makeTmp('retformer-labels-');

/** Train a small run on a seeded clustered problem; `predict` reloads it from disk each time (its config.json may have been edited). */
async function savedRun(name: string, seed: number, config: Record<string, unknown>): Promise<{ predict: () => Promise<number[][]>; configFile: string }> {
  const p = makeClusteredProblem({ dim: 16, trainCounts: [10, 6, 3], testPerClass: 4, kbPerClass: 5, imageNoise: 1, textNoise: 0.3, seed });
  const outDir = join(tmp.dir, name);
  await trainRun({ dataset: p.train, kb: p.kb, encoder: p.encoder, embeddings: p.trainEmbeddings, outDir, quiet: true, config: { batchSize: 8, microBatch: 8, width: 8, heads: 2, layers: 2, hidden: 16, k: 4, seed: 2, ...config } });
  const predict = async () => {
    const run = await Predictor.fromRun(outDir, { kbInstance: p.kb, encoder: p.encoder });
    const preds = await run.classifyEmbeddings(p.testEmbeddings);
    await run.close();
    return preds.map((pr) => Array.from(pr.probs));
  };
  return { predict, configFile: join(outDir, 'config.json') };
}
after(() => tmp.cleanup());

const unit = (v: Float32Array) => {
  const s = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  return v.map((x) => x / s);
};

/**
 * A problem where only the neighbours' labels carry the answer (as on the emoji benchmark, where a
 * picture's nearest KB pairs are the same emoji drawn by other vendors): "items" with random image
 * vectors and random classes (no class structure in the vectors, texts pure noise). The KB holds three
 * noisy copies of every item (three "vendors") with its label; training pictures are noisy copies of the training items, test
 * pictures noisy copies of items never trained on. Without the labels a query's class cannot be
 * told (chance, 25%); with them, the nearest pair's label is the answer.
 */
function labelOnlyProblem(seed: number) {
  const rng = new Rng(seed);
  const dim = 24;
  const C = 4;
  const classes = ['a', 'b', 'c', 'd'];
  const noisy = (v: Float32Array, s: number) => unit(v.map((x) => x + (s * rng.normal()) / Math.sqrt(dim)));
  const vectors = new Map<string, Float32Array>();
  const pairs: EmbeddedPair[] = [];
  const train: Dataset['samples'] = [];
  const test: Dataset['samples'] = [];
  for (let item = 0; item < 200; item++) {
    const centre = unit(Float32Array.from({ length: dim }, () => rng.normal()));
    const label = classes[item % C];
    for (let v = 0; v < 3; v++) {
      const kbPath = `/fake/kb/${item}-${v}.png`;
      vectors.set(kbPath, noisy(centre, 0.3));
      pairs.push({ meta: { id: `kb-${item}-${v}`, text: 'a picture', source: kbPath, label }, imageVector: vectors.get(kbPath)!, textVector: unit(Float32Array.from({ length: dim }, () => rng.normal())) });
    }
    const isTest = item >= 160;
    for (let j = 0; j < (isTest ? 1 : 3); j++) {
      const path = `/fake/${isTest ? 'test' : 'train'}/${item}_${j}.png`;
      vectors.set(path, noisy(centre, 0.3));
      (isTest ? test : train).push({ path, label, row: (isTest ? test : train).length + 2 });
    }
  }
  const encoder = new FakeEncoder(dim, vectors);
  const stack = (samples: Dataset['samples']) => {
    const out = new Float32Array(samples.length * dim);
    for (const [i, s] of samples.entries()) out.set(vectors.get(s.path)!, i * dim);
    return out;
  };
  return {
    encoder,
    kb: new MemoryKnowledgeBase(encoder.descriptor(), pairs),
    train: { source: '/fake/train.csv', samples: train, classes } as Dataset,
    trainEmbeddings: stack(train),
    testEmbeddings: stack(test),
    testLabels: test.map((s) => classes.indexOf(s.label)),
  };
}

test('assembleInputs: neighbour labels as one-hot rows; no label, an unknown label or a missing neighbour give a zero row', () => {
  const D = 2;
  const k = 3;
  const C = 3;
  const labels = labelIndexOf(['b', undefined, 'zebra', 'a'], ['a', 'b', 'c']);
  assert.deepEqual(Array.from(labels), [1, -1, -1, 0]);
  const vectors = { images: new Float32Array(4 * D), texts: new Float32Array(4 * D), labels };
  const b = assembleInputs(new Float32Array(2 * D), 2, D, k, [0, 1, 2, 3, -1, 0], vectors, C);
  // query 0: b, none, unknown; query 1: a, missing, b
  assert.deepEqual(Array.from(b.neighbourLabels!), [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]);
  assert.equal(assembleInputs(new Float32Array(2 * D), 2, D, k, [0, 1, 2, 3, -1, 0], vectors).neighbourLabels, undefined);
});

test('label memory lets the model read the answer from its neighbours\' labels (chance without it)', async () => {
  const p = labelOnlyProblem(7);
  const accuracy = async (labelMemory: 'off' | 'table' | 'tied') => {
    const outDir = join(tmp.dir, `labels-${labelMemory}`);
    await trainRun({
      dataset: p.train,
      kb: p.kb,
      encoder: p.encoder,
      embeddings: p.trainEmbeddings,
      outDir,
      quiet: true,
      config: { variant: 'full', labelMemory, epochs: 25, batchSize: 32, microBatch: 32, width: 16, heads: 2, layers: 2, hidden: 32, k: 4, lr: 3e-3, mixupAlpha: 0, seed: 1 },
    });
    const run = await Predictor.fromRun(outDir, { kbInstance: p.kb, encoder: p.encoder });
    const preds = await run.classifyEmbeddings(p.testEmbeddings);
    await run.close();
    return (100 * preds.filter((pr, i) => pr.label === p.testLabels[i]).length) / preds.length;
  };
  const off = await accuracy('off');
  const tied = await accuracy('tied');
  const table = await accuracy('table');
  console.log(`# unseen items: off ${off.toFixed(1)}%, tied ${tied.toFixed(1)}%, table ${table.toFixed(1)}%`);
  assert.ok(off < 50, `without labels the classes cannot be told apart (off ${off.toFixed(1)}%)`);
  assert.ok(tied > off + 30, `tied ${tied.toFixed(1)}% should be far above off ${off.toFixed(1)}%`);
  assert.ok(table > off + 30, `table ${table.toFixed(1)}% should be far above off ${off.toFixed(1)}%`);
});

test('a run saved before label memory and the similarity bias existed (neither in its config) loads and predicts exactly as before', async () => {
  const { predict, configFile } = await savedRun('old-run', 4, { epochs: 2 });
  const before = await predict();
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  assert.equal(config.labelMemory, 'off');
  assert.equal(config.simBias, false);
  delete config.labelMemory;
  delete config.simBias;
  writeFileSync(configFile, JSON.stringify(config));
  assert.deepEqual(await predict(), before);
});

test('compare: the fusion options reach the RetFormer rows only, never the baselines', async () => {
  const { parseCompareOptions, trainJobs } = await import('../src/experiments/compare-plan.ts');
  const { METHODS } = await import('../src/experiments/methods.ts');
  const o = parseCompareOptions({ train: 't.csv', test: 'x.csv', kb: '/kb', out: '/out', fusion: { labelMemory: 'tied', simBias: true } });
  const jobs = trainJobs(o, METHODS, { train: 'digest', kb: {} });
  for (const job of jobs) {
    const fused = job.args.includes('--label-memory') && job.args[job.args.indexOf('--label-memory') + 1] === 'tied' && job.args.includes('--sim-bias');
    assert.equal(fused, job.method.kind === 'retformer', `${job.method.key}: ${job.args.join(' ')}`);
  }
  assert.ok(jobs.some((j) => j.method.key === 'image-only') && jobs.some((j) => j.method.key === 'full'));
  const plain = trainJobs(parseCompareOptions({ train: 't.csv', test: 'x.csv', kb: '/kb', out: '/out' }), METHODS, { train: 'digest', kb: {} });
  assert.ok(plain.every((j) => !j.args.includes('--label-memory') && !j.args.includes('--sim-bias')));
});

test('a similarity-bias run saved before simBiasGain existed loads with gain 10; the saved gain is the one the model uses', async () => {
  const { predict, configFile } = await savedRun('sim-run', 5, { simBias: true, epochs: 3, lr: 3e-2 });
  const before = await predict();
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  assert.equal(config.simBiasGain, 10);
  delete config.simBiasGain;
  writeFileSync(configFile, JSON.stringify(config));
  assert.deepEqual(await predict(), before);
  writeFileSync(configFile, JSON.stringify({ ...config, simBiasGain: 60 }));
  assert.notDeepEqual(await predict(), before, 'a run with another saved gain must predict differently (the learned scales are not zero)');
});
