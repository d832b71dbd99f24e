import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { selectGallery } from '../src/eval/gallery.ts';
import { type CorePrediction, neighbour, prediction } from './helpers/eval-fakes.ts';

const classes = ['big', 'rare1', 'rare2', 'mid'];
const trainCounts = [200, 3, 8, 50];
const edges = { many: 100, few: 20 };

function fullPred(label: number, prob: number, k = 10): CorePrediction {
  const nbs = Array.from({ length: k }, (_, r) => neighbour(r, classes[r % 4], 1 - r * 0.05));
  // attention grows with rank so that the top by attention differs from the top by similarity
  const att = Array.from({ length: k }, (_, r) => (r + 1) / ((k * (k + 1)) / 2));
  return prediction(label, classes.length, prob, nbs, att);
}

describe('selectGallery', () => {
  // test samples: path, true label, MLP prediction, full prediction (+prob)
  const rows: [number, number, number, number][] = [
    [1, 0, 1, 0.6], // 0 rare1: mlp wrong, full right -> candidate
    [1, 1, 1, 0.9], // 1 rare1: mlp right -> no
    [1, 0, 2, 0.8], // 2 rare1: full wrong -> no
    [2, 3, 2, 0.7], // 3 rare2: candidate
    [2, 0, 2, 0.95], // 4 rare2: candidate, more confident
    [0, 3, 0, 0.9], // 5 big (Many): not Few -> no
    [3, 0, 3, 0.9], // 6 mid (Medium): not Few -> no
    [1, 2, 1, 0.99], // 7 rare1: candidate, most confident
  ];
  const test = rows.map(([label], i) => ({ path: `/test/${i}.png`, label }));
  const mlpPredictions = rows.map((r) => r[1]);
  const full = rows.map(([, , f, p]) => fullPred(f, p));

  it('keeps only Few-class pictures MLP-only got wrong and full got right, classes taking turns', () => {
    const items = selectGallery({ test, classes, trainCounts, edges, mlpPredictions, full });
    // class order: rare1 (3 train) before rare2 (8); within a class most confident first; round-robin
    assert.deepEqual(
      items.map((g) => g.testPath),
      ['/test/7.png', '/test/4.png', '/test/0.png', '/test/3.png'],
    );
    const first = items[0];
    assert.equal(first.label, 'rare1');
    assert.equal(first.mlpPred, 'rare2');
    assert.equal(first.fullPred, 'rare1');
    assert.ok(Math.abs(first.fullProb - 0.99) < 1e-6);
  });

  it('caps items and keeps the top neighbours by attention weight', () => {
    const items = selectGallery({ test, classes, trainCounts, edges, mlpPredictions, full, max: 2, neighbours: 3 });
    assert.equal(items.length, 2);
    for (const item of items) {
      assert.equal(item.neighbours.length, 3);
      assert.deepEqual(
        item.neighbours.map((n) => n.source),
        ['/kb/9.png', '/kb/8.png', '/kb/7.png'],
      );
      assert.ok(item.neighbours[0].attention > item.neighbours[1].attention);
      assert.equal(item.neighbours[0].label, classes[9 % 4]);
    }
  });

  it('is empty when no picture qualifies', () => {
    const items = selectGallery({ test, classes, trainCounts, edges: { many: 1, few: 1 }, mlpPredictions, full });
    assert.deepEqual(items, []);
  });
});
