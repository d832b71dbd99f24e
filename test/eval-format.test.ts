import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEvalText } from '../src/eval/format.ts';
import { formatPredictionText, predictionReport } from '../src/infer/report.ts';
import { computeMetrics } from '../src/eval/metrics.ts';
import { neighbour } from './helpers/eval-fakes.ts';

const classes = ['a', 'b', 'c', 'd', 'e', 'f'];

describe('predictionReport', () => {
  const probs = Float32Array.from([0.05, 0.4, 0.1, 0.3, 0.1, 0.05]);
  const nbs = [neighbour(7, 'b', 0.91), neighbour(3, undefined, 0.8)];
  const report = predictionReport('/img/x.png', { label: 1, probs, neighbours: nbs, attention: Float32Array.from([0.75, 0.25]), gate: 0.4 }, classes, 3);

  it('lists the label, its probability and the top classes by probability', () => {
    assert.equal(report.label, 'b');
    assert.ok(Math.abs(report.probability - 0.4) < 1e-6);
    assert.deepEqual(
      report.top.map((t) => t.label),
      ['b', 'd', 'c'], // c and e tie at 0.1: lower index first
    );
    assert.ok(report.gate !== undefined && Math.abs(report.gate - 0.4) < 1e-6);
  });

  it('pairs each neighbour with its attention weight', () => {
    assert.deepEqual(
      report.neighbours.map((n) => [n.rank, n.id, n.label, n.attention]),
      [
        [1, 'kb:7', 'b', 0.75],
        [2, 'kb:3', undefined, 0.25],
      ],
    );
  });

  it('renders text with the neighbour table, or says when the run does not retrieve', () => {
    const text = formatPredictionText(report);
    assert.match(text, /^\/img\/x\.png: b \(p = 0\.400\)/);
    assert.match(text, /retrieval gate: 0\.400/);
    assert.match(text, /\| 1 \| 0\.910 \| 0\.750 \| b \| text 7 \|/);
    const mlp = formatPredictionText(predictionReport('/y.png', { label: 0, probs, neighbours: [], attention: new Float32Array(0) }, classes));
    assert.match(mlp, /neighbours: none/);
    assert.equal(mlp.includes('gate'), false);
  });

  it('abstains below the threshold and says so with the best guess', () => {
    const prediction = { label: 1, probs, neighbours: nbs, attention: Float32Array.from([0.75, 0.25]) };
    const unsure = predictionReport('/img/x.png', prediction, classes, 3, 0.5);
    assert.equal(unsure.abstained, true);
    assert.equal(unsure.label, null);
    assert.equal(unsure.top[0].label, 'b');
    assert.ok(Math.abs(unsure.probability - 0.4) < 1e-6);
    assert.match(formatPredictionText(unsure), /^\/img\/x\.png: abstains \(top probability 0\.400 < 0\.5; best guess b\)/);
    const sure = predictionReport('/img/x.png', prediction, classes, 3, 0.3);
    assert.equal(sure.abstained, false);
    assert.equal(sure.label, 'b');
    assert.match(formatPredictionText(sure), /^\/img\/x\.png: b \(p = 0\.400\)/);
    assert.equal('abstained' in predictionReport('/img/x.png', prediction, classes, 3), false);
  });
});

describe('formatEvalText', () => {
  it('shows the table, summary figures and per-class accuracy lowest first with training counts', () => {
    const metrics = computeMetrics({ predictions: [0, 0, 1, 0], labels: [0, 0, 1, 1], classes: ['x', 'y'], trainCounts: [150, 5] });
    const text = formatEvalText('full', metrics, ['x', 'y'], [150, 5]);
    assert.match(text, /\| full \| 100\.0 \| - \| 50\.0 \| 75\.0 \|/);
    assert.match(text, /worst class: y \(50\.0%\)/);
    assert.match(text, /classes per bucket: Many 1, Medium 0, Few 1/);
    assert.ok(text.indexOf('| y | 5 | 50.0 |') < text.indexOf('| x | 150 | 100.0 |'));
  });
});
