import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { trainRun } from '../src/train/index.ts';
import { Predictor } from '../src/infer/predictor.ts';
import { makeClusteredProblem, makeTmp } from './helpers/train-fixtures.ts';

const tmp = makeTmp();
after(() => tmp.cleanup());

// 6 Many classes (40 images), 6 Few classes (2 images); the KB holds 20 captioned pairs per class.
const MANY = 6;
const FEW = 6;
const problem = makeClusteredProblem({
  dim: 32,
  trainCounts: [...Array(MANY).fill(40), ...Array(FEW).fill(2)],
  testPerClass: 20,
  kbPerClass: 20,
  imageNoise: 1.6,
  textNoise: 0.3,
  seed: 11,
});

async function fewAccuracy(variant: 'full' | 'mlp-only'): Promise<number> {
  const outDir = join(tmp.dir, variant);
  await trainRun({
    dataset: problem.train,
    kb: problem.kb,
    encoder: problem.encoder,
    embeddings: problem.trainEmbeddings,
    outDir,
    quiet: true,
    config: { variant, epochs: 30, batchSize: 32, microBatch: 32, width: 32, heads: 2, layers: 2, hidden: 64, k: 8, lr: 3e-3, mixupAlpha: 0, seed: 3 },
  });
  const run = await Predictor.fromRun(outDir, { kbInstance: problem.kb, encoder: problem.encoder });
  const preds = await run.classifyEmbeddings(problem.testEmbeddings);
  await run.close();
  let right = 0;
  let total = 0;
  preds.forEach((p, i) => {
    const y = problem.testLabels[i];
    if (y < MANY) return;
    total++;
    if (p.label === y) right++;
  });
  return (100 * right) / total;
}

test('retrieval beats MLP-only on the Few classes of a synthetic long-tailed problem', async () => {
  const mlp = await fewAccuracy('mlp-only');
  const full = await fewAccuracy('full');
  console.log(`# Few-class accuracy: mlp-only ${mlp.toFixed(1)}%, full ${full.toFixed(1)}%`);
  assert.ok(full > mlp + 10, `full ${full.toFixed(1)}% should beat mlp-only ${mlp.toFixed(1)}% on Few classes by > 10 points`);
});
