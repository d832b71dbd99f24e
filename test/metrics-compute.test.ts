import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeMetrics, formatMetricsTable, METRICS_TABLE_NOTE } from '../src/eval/metrics.ts';
import { RetformerError } from '../src/util/errors.ts';

const near = (actual: number | null, expected: number, msg?: string) => {
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${msg ?? ''} expected ${expected}, got ${actual}`);
};

describe('computeMetrics', () => {
  // classes a (200 train: Many), b (50: Medium), c (5: Few), d (300: Many, absent from the test set)
  const classes = ['a', 'b', 'c', 'd'];
  const trainCounts = [200, 50, 5, 300];
  const labels = [0, 0, 0, 0, 1, 1, 2, 2, 2];
  const predictions = [0, 0, 0, 1, 1, 0, 2, 3, 1];

  it('matches a hand-computed case', () => {
    const m = computeMetrics({ predictions, labels, classes, trainCounts });
    near(m.overall, (100 * 5) / 9, 'overall');
    near(m.many, 75, 'many'); // only a: d has no test samples
    near(m.medium, 50, 'medium');
    near(m.few, 100 / 3, 'few');
    // F1: a P=3/4 R=3/4 -> 0.75; b P=1/3 R=1/2 -> 0.4; c P=1 R=1/3 -> 0.5
    near(m.macroF1, 55, 'macroF1');
    near(m.balanced ?? null, (75 + 50 + 100 / 3) / 3, 'balanced: mean per-class accuracy');
    assert.equal(m.worstClass.label, 'c');
    near(m.worstClass.accuracy, 100 / 3);
    assert.deepEqual(Object.keys(m.perClass), ['a', 'b', 'c']);
    near(m.perClass.a, 75);
    assert.deepEqual(m.buckets, { many: 1, medium: 1, few: 1 });
    assert.equal(m.n, 9);
  });

  it('buckets use training counts and the given edges, empty buckets are null', () => {
    const m = computeMetrics({ predictions, labels, classes, trainCounts, edges: { many: 4, few: 2 } });
    assert.deepEqual(m.buckets, { many: 3, medium: 0, few: 0 });
    near(m.many, (75 + 50 + 100 / 3) / 3);
    assert.equal(m.medium, null);
    assert.equal(m.few, null);
  });

  it('Many/Medium/Few are class means while overall is sample-level', () => {
    // class 0: 8 test samples all right; class 1: 2 samples all wrong -> overall 80, class mean 50
    const m = computeMetrics({
      predictions: Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      labels: Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]),
      classes: ['x', 'y'],
      trainCounts: [500, 500],
    });
    near(m.overall, 80);
    near(m.many, 50);
    near(m.balanced ?? null, 50, 'balanced weighs both classes equally');
    // F1: x P=8/10 R=1 -> 8/9; y 0 -> macro 4/9
    near(m.macroF1, (100 * 4) / 9);
  });

  it('counts an out-of-range prediction (-1, abstain) as wrong and refuses mismatched inputs', () => {
    const m = computeMetrics({ predictions: [-1, 1], labels: [0, 1], classes: ['x', 'y'], trainCounts: [1, 1] });
    near(m.overall, 50);
    assert.throws(() => computeMetrics({ predictions: [0], labels: [0, 1], classes: ['x', 'y'], trainCounts: [1, 1] }), RetformerError);
    assert.throws(() => computeMetrics({ predictions: [0], labels: [0], classes: ['x', 'y'], trainCounts: [1] }), RetformerError);
    assert.throws(() => computeMetrics({ predictions: [0], labels: [2], classes: ['x', 'y'], trainCounts: [1, 1] }), /label 2/);
    assert.throws(() => computeMetrics({ predictions: [], labels: [], classes: ['x'], trainCounts: [1] }), /no test samples/);
  });
});

describe('formatMetricsTable', () => {
  it('prints a Markdown table with one decimal and - for empty buckets', () => {
    const a = computeMetrics({ predictions: [0, 1, 1], labels: [0, 1, 0], classes: ['x', 'y'], trainCounts: [200, 5] });
    const b = computeMetrics({ predictions: [0], labels: [0], classes: ['x'], trainCounts: [30] });
    assert.equal(
      formatMetricsTable([
        { name: 'MLP only', metrics: a },
        { name: 'a|b', metrics: b },
      ]),
      [
        '| method | Many | Medium | Few | Overall | Balanced |',
        '|---|---:|---:|---:|---:|---:|',
        '| MLP only | 50.0 | - | 100.0 | 66.7 | 75.0 |',
        '| a\\|b | - | 100.0 | - | 100.0 | 100.0 |',
        '',
        METRICS_TABLE_NOTE,
        '',
      ].join('\n'),
    );
  });

  it('leaves the note out on request and shows a dash for results saved without balanced accuracy', () => {
    const { balanced: _, ...old } = computeMetrics({ predictions: [0], labels: [0], classes: ['x'], trainCounts: [300] });
    assert.equal(formatMetricsTable([{ name: 'old', metrics: old }], { note: false }).split('\n')[2], '| old | 100.0 | - | - | 100.0 | - |');
    assert.ok(!formatMetricsTable([{ name: 'old', metrics: old }], { note: false }).includes('per test picture'));
    assert.match(METRICS_TABLE_NOTE, /per-class/);
    assert.match(METRICS_TABLE_NOTE, /Overall is per test picture/);
  });
});
