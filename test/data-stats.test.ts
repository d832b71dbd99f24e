import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { bucketOf, classCounts, datasetStats } from '../src/data/stats.ts';
import type { Dataset } from '../src/data/types.ts';
import { LIFT_BUCKETS } from '../src/eval/types.ts';
import { makeTmpDir, runDataCli, writeCountsManifest } from './helpers/data-fixtures.ts';

const tmp = makeTmpDir();
after(tmp.cleanup);

describe('bucketOf', () => {
  it('Many > many, Medium few..many inclusive, Few < few', () => {
    const edges = { many: 100, few: 20 };
    assert.equal(bucketOf(101, edges), 'many');
    assert.equal(bucketOf(100, edges), 'medium');
    assert.equal(bucketOf(20, edges), 'medium');
    assert.equal(bucketOf(19, edges), 'few');
    assert.equal(bucketOf(0, edges), 'few');
    assert.equal(bucketOf(41, { many: 40, few: 16 }), 'many');
    assert.equal(bucketOf(15, { many: 40, few: 16 }), 'few');
  });
});

describe('classCounts and datasetStats', () => {
  const ds: Dataset = {
    source: 'mem',
    classes: ['a', 'b', 'c', 'd'],
    samples: [
      ...Array.from({ length: 150 }, (_, i) => ({ path: `/a${i}`, label: 'a', row: i + 1 })),
      ...Array.from({ length: 20 }, (_, i) => ({ path: `/b${i}`, label: 'b', row: i + 151 })),
      { path: '/c0', label: 'c', cleanLabel: 'a', row: 171 },
    ],
  };

  it('counts per class in class order, including empty classes', () => {
    assert.deepEqual(classCounts(ds), [150, 20, 1, 0]);
  });

  it('summarises buckets by classes and images', () => {
    const s = datasetStats(ds, LIFT_BUCKETS);
    assert.deepEqual(s.buckets, { many: { classes: 1, images: 150 }, medium: { classes: 1, images: 20 }, few: { classes: 2, images: 1 } });
    assert.equal(s.maxCount, 150);
    assert.equal(s.minCount, 1);
    assert.equal(s.imbalance, 150);
    assert.equal(s.emptyClasses, 1);
    assert.equal(s.noisy, 1);
    assert.deepEqual(
      s.perClass.map((c) => c.bucket),
      ['many', 'medium', 'few', 'few'],
    );
  });
});

describe('retformer data stats', () => {
  it('prints JSON with the given edges', async () => {
    const file = writeCountsManifest(tmp.dir, [50, 30, 10, 5]);
    const run = await runDataCli(['stats', '--manifest', file, '--many', '40', '--few', '16', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const s = JSON.parse(run.stdout);
    assert.equal(s.images, 95);
    assert.deepEqual(s.edges, { many: 40, few: 16 });
    assert.deepEqual(s.buckets, { many: { classes: 1, images: 50 }, medium: { classes: 1, images: 30 }, few: { classes: 2, images: 15 } });
  });

  it('prints Markdown tables by default, and one-line errors for a missing manifest or bad edges', async () => {
    const file = writeCountsManifest(tmp.dir, [3, 1], 'small.csv');
    const ok = await runDataCli(['stats', '--manifest', file]);
    assert.match(ok.stdout, /\| Few \| < 20 \| 2 \| 4 \|/);
    const missing = await runDataCli(['stats', '--manifest', `${tmp.dir}/none.csv`]);
    assert.match(missing.stderr, /^retformer: .*none\.csv: file not found\n$/);
    const bad = await runDataCli(['stats', '--manifest', file, '--many', '5', '--few', '10']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^retformer: bad bucket edges/);
  });

  it('names a misspelt flag as unknown (with a suggestion) rather than the required flag as missing', async () => {
    const typo = await runDataCli(['stats', '--manfest', 'x.csv']);
    assert.notEqual(typo.code, 0);
    assert.match(typo.stderr, /^error: unknown option '--manfest'\n\(Did you mean --manifest\?\)/);
    const help = await runDataCli(['stats', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--manifest <input>/);
  });
});
