import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  abstainBelow,
  abstentionSummary,
  coverageAccuracyCurve,
  ECE_BINS,
  expectedCalibrationError,
  formatAbstention,
  reliabilityBins,
  selectiveAccuracy,
} from '../src/eval/calibration.ts';
import { RetformerError } from '../src/util/errors.ts';

const near = (actual: number | null, expected: number, msg?: string) => {
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${msg ?? ''} expected ${expected}, got ${actual}`);
};

describe('expected calibration error', () => {
  it('is zero when accuracy equals confidence in every bin', () => {
    near(expectedCalibrationError([0.5, 0.5, 0.5, 0.5], [true, false, true, false]), 0);
  });

  it('matches hand-computed cases', () => {
    // one bin: confidence 0.9, accuracy 0.75 -> 0.15
    near(expectedCalibrationError([0.9, 0.9, 0.9, 0.9], [true, true, true, false]), 0.15);
    // two bins of half the samples: |0 - 0.2| / 2 + |1 - 0.8| / 2 = 0.2
    near(expectedCalibrationError([0.2, 0.2, 0.8, 0.8], [false, false, true, true]), 0.2);
    // overconfident: always 1.0 but right half the time -> 0.5
    near(expectedCalibrationError([1, 1], [true, false]), 0.5);
  });

  it('uses 15 equal-width bins (lower, upper] with 0 in the first and 1 in the last', () => {
    assert.equal(ECE_BINS, 15);
    const bins = reliabilityBins([0, 1 / 15, 0.0667, 0.5, 1], [true, true, false, true, false]);
    assert.equal(bins.length, 15);
    assert.deepEqual(
      bins.map((b) => b.count),
      [2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1],
    );
    near(bins[0].accuracy, 1);
    near(bins[0].confidence, 1 / 30);
    assert.equal(bins[3].accuracy, null);
    near(bins[14].accuracy, 0);
    near(bins[14].upper, 1);
    // a bin count changes the answer: with 1 bin the two groups above average out
    near(expectedCalibrationError([0.2, 0.2, 0.8, 0.8], [false, false, true, true], 1), 0);
  });

  it('refuses confidences outside [0, 1] and mismatched lengths', () => {
    assert.throws(() => expectedCalibrationError([1.2], [true]), RetformerError);
    assert.throws(() => expectedCalibrationError([Number.NaN], [true]), RetformerError);
    assert.throws(() => expectedCalibrationError([0.5], [true, false]), /1 confidences for 2/);
    assert.throws(() => expectedCalibrationError([], []), /no predictions/);
  });
});

describe('coverage and abstention', () => {
  const conf = [0.9, 0.8, 0.7, 0.6];
  const right = [true, true, false, false];

  it('traces coverage against the accuracy of the answered pictures, most confident first', () => {
    const curve = coverageAccuracyCurve(conf, right, 4);
    assert.deepEqual(
      curve.map((p) => [p.coverage, p.accuracy, p.threshold]),
      [
        [0.25, 1, 0.9],
        [0.5, 1, 0.8],
        [0.75, 2 / 3, 0.7],
        [1, 0.5, 0.6],
      ],
    );
  });

  it('answers ties together so that a threshold reproduces its point', () => {
    const curve = coverageAccuracyCurve([0.5, 0.5, 0.5, 0.2], [true, false, true, false], 4);
    assert.deepEqual(
      curve.map((p) => p.coverage),
      [0.75, 1],
    );
    const at = selectiveAccuracy([0.5, 0.5, 0.5, 0.2], [true, false, true, false], curve[0].threshold);
    near(at.coverage, curve[0].coverage);
    near(at.accuracy, curve[0].accuracy!);
  });

  it('selective accuracy at a threshold; nothing answered gives a null accuracy', () => {
    const p = selectiveAccuracy(conf, right, 0.75);
    assert.deepEqual(p, { threshold: 0.75, coverage: 0.5, accuracy: 1, answered: 2, total: 4 });
    assert.equal(selectiveAccuracy(conf, right, 0.95).accuracy, null);
    assert.deepEqual(abstainBelow([3, 1, 2, 0], conf, 0.75), [3, 1, -1, -1]);
  });

  it('summarises abstention per bucket by training count', () => {
    // classes 0 (Many: 200 training pictures) and 1 (Few: 2)
    const s = abstentionSummary({
      predictions: [0, 0, 1, 0],
      labels: [0, 0, 1, 1],
      confidences: [0.9, 0.4, 0.8, 0.3],
      trainCounts: [200, 2],
      edges: { many: 100, few: 20 },
      threshold: 0.5,
    });
    assert.deepEqual([s.overall.coverage, s.overall.accuracy], [0.5, 1]);
    assert.deepEqual([s.buckets.many.coverage, s.buckets.many.accuracy, s.buckets.many.total], [0.5, 1, 2]);
    assert.deepEqual([s.buckets.few.coverage, s.buckets.few.accuracy], [0.5, 1]);
    assert.equal(s.buckets.medium.total, 0);
    assert.match(formatAbstention(s), /Few +answered 50\.0% \(1 of 2\), accuracy on them 100\.0%/);
    assert.throws(() => abstentionSummary({ predictions: [0], labels: [0], confidences: [0.5], trainCounts: [1], edges: { many: 1, few: 1 }, threshold: 2 }), /\[0, 1\]/);
  });
});
