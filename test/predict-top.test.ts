import assert from 'node:assert/strict';
import { test } from 'node:test';
import { softmaxRow, topClasses, topClassesBySort } from '../src/infer/predictor.ts';
import { Rng } from '../src/util/rng.ts';

/** The one-pass top-k of a prediction gives exactly the full sort's answer: order, ties (lower class first), edge sizes. */

const names = (C: number) => Array.from({ length: C }, (_, c) => `class ${c}`);

test('top classes: one pass equals the full sort on random, tied and degenerate rows', () => {
  const rng = new Rng(5);
  for (let t = 0; t < 300; t++) {
    const C = 1 + rng.int(60);
    const logits = Float32Array.from({ length: C }, () => (t % 3 === 0 ? rng.int(4) : rng.normal() * 3)); // every third row full of ties
    const probs = softmaxRow(logits);
    for (const top of [0, 1, 2, 5, C - 1, C, C + 3]) {
      if (top < 0) continue;
      assert.deepEqual(topClasses(probs, names(C), top), topClassesBySort(probs, names(C), top), `row ${t}, C ${C}, top ${top}`);
    }
  }
  const tied = new Float32Array([0.1, 0.3, 0.3, 0.1, 0.3]);
  assert.deepEqual(
    topClasses(tied, names(5), 4).map((x) => x.label),
    [1, 2, 4, 0],
    'equal probabilities: lower class first',
  );
  const withNaN = new Float32Array([0.2, Number.NaN, 0.5]);
  assert.deepEqual(topClasses(withNaN, names(3), 2), topClassesBySort(withNaN, names(3), 2), 'a NaN row: the sort answers');
  assert.deepEqual(topClasses(tied, names(5), -1), topClassesBySort(tied, names(5), -1), 'a negative count: as slice() has it');
});
