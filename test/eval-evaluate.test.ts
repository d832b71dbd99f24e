import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Dataset } from '../src/data/types.ts';
import { embedTestImages, evaluateRun, labelIndices } from '../src/eval/evaluate.ts';
import { MemoryKnowledgeBase } from '../src/kb/memory.ts';
import { encoderDescriptor, fakeEncoder, fakeRun, prediction, unit, writePngs } from './helpers/eval-fakes.ts';

const work = mkdtempSync(join(tmpdir(), 'retformer-eval-'));
after(() => rmSync(work, { recursive: true, force: true }));

const classes = ['many-a', 'medium-b', 'few-c'];
const trainCounts = [150, 50, 5];
const prototypes = [unit([1, 0, 0]), unit([0, 1, 0]), unit([0, 0, 1])];

/** Nearest prototype: the fake model's answer. */
function nearest(e: Float32Array): number {
  let best = 0;
  for (let c = 1; c < prototypes.length; c++) {
    const s = (p: Float32Array) => p[0] * e[0] + p[1] * e[1] + p[2] * e[2];
    if (s(prototypes[c]) > s(prototypes[best])) best = c;
  }
  return best;
}

async function fixture() {
  // 6 test pictures: true labels, and vectors that put two of them nearer a wrong class.
  const labels = ['many-a', 'many-a', 'medium-b', 'medium-b', 'few-c', 'few-c'];
  const vectors = [unit([1, 0.1, 0]), unit([0.2, 1, 0]), unit([0, 1, 0.1]), unit([0.1, 1, 0]), unit([0, 0.1, 1]), unit([1, 0, 0.3])];
  const paths = await writePngs(join(work, 'img'), labels.map((l, i) => `${l}-${i}`));
  const test: Dataset = { source: join(work, 'test.csv'), classes: [...new Set(labels)], samples: paths.map((path, i) => ({ path, label: labels[i], row: i + 1 })) };
  const encoder = fakeEncoder(3, new Map(paths.map((p, i) => [p, vectors[i]])));
  const kb = new MemoryKnowledgeBase(encoderDescriptor(3));
  const run = fakeRun({ classes, trainCounts, encoder, kb, predictOne: (e) => prediction(nearest(e), classes.length) });
  return { test, encoder, run, paths };
}

describe('evaluateRun', () => {
  it('embeds through the cache, predicts in batches and computes long-tail metrics from the run counts', async () => {
    const { test, encoder, run } = await fixture();
    const cacheDir = join(work, 'cache-1');
    const r = await evaluateRun(run, test, { cacheDir, batchSize: 4, quiet: true, edges: { many: 100, few: 20 } });
    assert.deepEqual(r.predictions, [0, 1, 1, 1, 2, 0]);
    assert.deepEqual(r.details.labels, [0, 0, 1, 1, 2, 2]);
    assert.equal(run.predictCalls, 2); // 6 queries in batches of 4
    assert.equal(r.metrics.n, 6);
    assert.ok(Math.abs(r.metrics.overall - (100 * 4) / 6) < 1e-9);
    assert.equal(r.metrics.many, 50);
    assert.equal(r.metrics.medium, 100);
    assert.equal(r.metrics.few, 50);
    assert.deepEqual(r.metrics.buckets, { many: 1, medium: 1, few: 1 });
    assert.equal(encoder.imageCalls.length, 1);

    // A second evaluation reads every embedding from the cache: the encoder is not called again.
    const again = await evaluateRun(run, test, { cacheDir, quiet: true });
    assert.deepEqual(again.predictions, r.predictions);
    assert.equal(encoder.imageCalls.length, 1);
    assert.deepEqual(Array.from(again.details.embeddings), Array.from(r.details.embeddings));
  });

  it('uses the bucket edges it is given', async () => {
    const { test, run } = await fixture();
    const r = await evaluateRun(run, test, { cacheDir: join(work, 'cache-2'), quiet: true, edges: { many: 10, few: 2 } });
    // all three classes now have more than 10 or between 2 and 10 training images: no Few bucket
    assert.equal(r.metrics.few, null);
    assert.deepEqual(r.metrics.buckets, { many: 2, medium: 1, few: 0 });
  });

  it('skips embedding when embeddings are given', async () => {
    const { test, encoder, run } = await fixture();
    const given = await embedTestImages(encoder, test, { cacheDir: join(work, 'cache-3'), quiet: true });
    const calls = encoder.imageCalls.length;
    const r = await evaluateRun(run, test, { embeddings: given, quiet: true });
    assert.equal(encoder.imageCalls.length, calls);
    assert.deepEqual(r.predictions, [0, 1, 1, 1, 2, 0]);
  });

  it('a test label the run does not know is a one-line error naming file and row', async () => {
    const { test, run } = await fixture();
    test.samples[3] = { ...test.samples[3], label: 'mystery', row: 4 };
    await assert.rejects(evaluateRun(run, test, { cacheDir: join(work, 'cache-4'), quiet: true }), (err: Error) => {
      assert.match(err.message, /test\.csv:4: label "mystery" is not one of the run's 3 classes/);
      assert.equal(err.message.includes('\n'), false);
      return true;
    });
  });
});

describe('embedTestImages', () => {
  it('refuses a missing picture before embedding anything, naming the manifest row', async () => {
    const { test, encoder } = await fixture();
    test.samples[2] = { ...test.samples[2], path: join(work, 'img', 'gone.png') };
    await assert.rejects(embedTestImages(encoder, test, { cacheDir: join(work, 'cache-5'), quiet: true }), /test\.csv:3: image not found: .*gone\.png$/);
    assert.equal(encoder.imageCalls.length, 0);
  });
});

describe('labelIndices', () => {
  it('maps labels through the given class order, not the dataset order', () => {
    const ds: Dataset = { source: 't.csv', classes: ['b', 'a'], samples: [{ path: '/x', label: 'a', row: 1 }, { path: '/y', label: 'b', row: 2 }] };
    assert.deepEqual(labelIndices(ds, ['a', 'b']), [0, 1]);
  });
});
