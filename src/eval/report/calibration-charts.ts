import type { TopLevelSpec } from 'vega-lite';
import { coverageAccuracyCurve, ECE_BINS, reliabilityBins } from '../calibration.ts';
import type { CompareResults, MethodResult } from '../results.ts';
import { BASELINE_KEY, FULL_KEY } from './model.ts';

/**
 * The report's calibration charts, from each method's top-1 confidences (MethodResult.confidences):
 * a reliability diagram (accuracy against confidence per bin, the diagonal is perfect calibration)
 * and the coverage-accuracy curve of abstaining below a threshold.
 */

const THEME = {
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  background: 'white',
  view: { stroke: null },
  axis: { labelColor: '#444', titleColor: '#222', titleFontWeight: 600, titleFontSize: 12, labelFontSize: 11, gridColor: '#ececec', domainColor: '#999', tickColor: '#999' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, labelColor: '#333', titleColor: '#222' },
} as const;
const COLOURS = ['#e45756', '#4c78a8', '#54a24b', '#b279a2', '#f58518', '#72b7b2', '#9d755d', '#bab0ac'];

/** Methods with confidences and correctness per test picture, the baseline first and RetFormer full second. */
export function calibratedMethods(results: CompareResults): { method: MethodResult; correct: boolean[] }[] {
  const labels = results.test.map((t) => t.label);
  const rank = (m: MethodResult) => (m.key === BASELINE_KEY ? 0 : m.key === FULL_KEY ? 1 : 2);
  return results.methods
    .filter((m) => Array.isArray(m.confidences) && m.confidences.length === labels.length)
    .sort((a, b) => rank(a) - rank(b))
    .map((method) => ({ method, correct: method.predictions.map((p, i) => p === labels[i]) }));
}

/** Reliability diagram of the baseline and RetFormer full (or the first two calibrated methods): accuracy per confidence bin. */
export function reliabilitySpec(results: CompareResults): TopLevelSpec | null {
  const shown = calibratedMethods(results).slice(0, 2);
  if (shown.length === 0) return null;
  const values = shown.flatMap(({ method, correct }) =>
    reliabilityBins(method.confidences!, correct, ECE_BINS)
      .filter((b) => b.count > 0)
      .map((b) => ({ method: `${method.name} (ECE ${(method.metrics.ece ?? 0).toFixed(1)})`, confidence: 100 * b.confidence!, accuracy: 100 * b.accuracy!, count: b.count })),
  );
  const names = [...new Set(values.map((v) => v.method))];
  const axis = { type: 'quantitative' as const, scale: { domain: [0, 100] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: THEME,
    width: 360,
    height: 360,
    layer: [
      {
        data: { values: [{ x: 0, y: 0, x2: 100, y2: 100 }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#999' },
        encoding: { x: { field: 'x', ...axis, title: 'Mean confidence in the bin (%)' }, y: { field: 'y', ...axis, title: 'Accuracy in the bin (%)' }, x2: { field: 'x2' }, y2: { field: 'y2' } },
      },
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x: { field: 'confidence', ...axis },
          y: { field: 'accuracy', ...axis },
          color: { field: 'method', type: 'nominal', scale: { domain: names, range: COLOURS }, legend: { title: null, orient: 'top', direction: 'vertical', labelLimit: 400 } },
        },
      },
      {
        data: { values },
        mark: { type: 'circle', opacity: 0.9 },
        encoding: {
          x: { field: 'confidence', ...axis },
          y: { field: 'accuracy', ...axis },
          size: { field: 'count', type: 'quantitative', legend: null, scale: { range: [20, 240] } },
          color: { field: 'method', type: 'nominal', scale: { domain: names, range: COLOURS }, legend: null },
        },
      },
    ],
  };
}

/** Coverage (share of pictures answered) against the accuracy of the answered pictures, one line per calibrated method. */
export function coverageSpec(results: CompareResults, points = 20): TopLevelSpec | null {
  const methods = calibratedMethods(results);
  if (methods.length === 0) return null;
  const values = methods.flatMap(({ method, correct }) =>
    coverageAccuracyCurve(method.confidences!, correct, points).map((p) => ({ method: method.name, coverage: 100 * p.coverage, accuracy: 100 * p.accuracy!, threshold: p.threshold })),
  );
  const names = methods.map((m) => m.method.name);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: THEME,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x: { field: 'coverage', type: 'quantitative', title: 'Coverage: pictures answered (%)', scale: { domain: [0, 100] }, sort: 'descending' },
      y: { field: 'accuracy', type: 'quantitative', title: 'Accuracy of the answered pictures (%)', scale: { domain: [0, 100] } },
      color: { field: 'method', type: 'nominal', scale: { domain: names, range: COLOURS }, legend: { title: null, orient: 'top', direction: 'horizontal', labelLimit: 400 } },
    },
  };
}
