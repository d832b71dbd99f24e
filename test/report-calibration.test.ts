import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { coverageAccuracyCurve, reliabilityBins } from '../src/eval/calibration.ts';
import { calibratedMethods, coverageSpec, reliabilitySpec } from '../src/eval/report/calibration-charts.ts';
import { readCompareResults, renderReport } from '../src/eval/report/index.ts';
import type { CompareResults } from '../src/eval/results.ts';
import { Rng } from '../src/util/rng.ts';
import { makeReportFixture } from './helpers/report-fixture.ts';

const root = mkdtempSync(join(tmpdir(), 'retformer-report-cal-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Give the trained methods top-1 confidences: higher when right, so abstaining raises accuracy. */
function withConfidences(results: CompareResults, seed = 0): CompareResults {
  const rng = new Rng(seed);
  const methods = results.methods.map((m) => {
    if (m.key === 'knn-vote' || m.key === 'zero-shot') return m;
    const confidences = m.predictions.map((p, i) => (p === results.test[i].label ? 0.5 + 0.5 * rng.next() : 0.6 * rng.next()));
    return { ...m, confidences };
  });
  return { ...results, methods };
}

type Layered = { layer: { data: { values: Record<string, number | string>[] } }[] };
type Single = { data: { values: Record<string, number | string>[] } };

describe('calibration charts in the report', () => {
  it('plot the reliability bins of MLP only and RetFormer full, and a coverage curve per method with confidences', async () => {
    const results = withConfidences(await makeReportFixture(join(root, 'a-data'), { classes: 12, testPerClass: 10, galleryItems: 2 }));
    const methods = calibratedMethods(results);
    assert.deepEqual(
      methods.slice(0, 2).map((m) => m.method.key),
      ['mlp-only', 'full'],
    );
    assert.ok(!methods.some((m) => m.method.key === 'knn-vote'), 'methods without confidences are left out');

    const rel = reliabilitySpec(results) as unknown as Layered;
    const points = rel.layer[1].data.values.filter((v) => String(v.method).startsWith('MLP only'));
    const mlp = methods[0];
    const bins = reliabilityBins(mlp.method.confidences!, mlp.correct).filter((b) => b.count > 0);
    assert.equal(points.length, bins.length);
    points.forEach((p, i) => {
      assert.ok(Math.abs(Number(p.accuracy) - 100 * bins[i].accuracy!) < 1e-9);
      assert.ok(Math.abs(Number(p.confidence) - 100 * bins[i].confidence!) < 1e-9);
    });

    const cov = coverageSpec(results) as unknown as Single;
    const full = methods.find((m) => m.method.key === 'full')!;
    const curve = coverageAccuracyCurve(full.method.confidences!, full.correct, 20);
    const fullPoints = cov.data.values.filter((v) => v.method === full.method.name);
    assert.equal(fullPoints.length, curve.length);
    // confidences are higher when right: the 5% most confident are more accurate than all pictures
    assert.ok(Number(fullPoints[0].accuracy) > Number(fullPoints.at(-1)!.accuracy));

    const outDir = join(root, 'a');
    const { markdown } = await renderReport(results, outDir);
    for (const f of ['chart-reliability.svg', 'chart-coverage.svg']) {
      assert.ok(existsSync(join(outDir, f)), f);
      assert.match(readFileSync(join(outDir, f), 'utf8'), /^<svg/);
      assert.match(markdown, new RegExp(`\\(${f}\\)`));
    }
  });

  it('survive a round trip through results.json (confidences, balanced accuracy, ECE and extra sections are read back)', async () => {
    const results = withConfidences(await makeReportFixture(join(root, 'c-data'), { classes: 12, testPerClass: 10, galleryItems: 2 }));
    results.methods[0].metrics.balanced = 42;
    results.methods[0].metrics.ece = 7;
    results.sections = [{ id: 's', title: 'S', notes: ['n'], header: ['a'], rows: [['1']] }];
    const file = join(root, 'c.json');
    writeFileSync(file, JSON.stringify(results));
    const back = readCompareResults(file);
    assert.deepEqual(back.methods[0].confidences, results.methods[0].confidences);
    assert.equal(back.methods[0].metrics.balanced, 42);
    assert.equal(back.methods[0].metrics.ece, 7);
    assert.deepEqual(back.sections, results.sections);
    assert.notEqual(reliabilitySpec(back), null);
  });

  it('are skipped with a reason when no method recorded confidences (results from before they existed)', async () => {
    const results = await makeReportFixture(join(root, 'b-data'), { classes: 12, testPerClass: 10, galleryItems: 2 });
    assert.equal(reliabilitySpec(results), null);
    assert.equal(coverageSpec(results), null);
    const outDir = join(root, 'b');
    const { markdown } = await renderReport(results, outDir);
    assert.ok(!existsSync(join(outDir, 'chart-reliability.svg')));
    assert.match(markdown, /Reliability diagram: not drawn — no method recorded its top-1 probabilities/);
  });
});
