import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeClassList } from '../src/data/classes.ts';
import { longTailCounts, makeLongTail } from '../src/data/longtail.ts';
import { readDataset } from '../src/data/readers.ts';
import { classCounts } from '../src/data/stats.ts';
import { classNames, makeTmpDir, runDataCli, writeCountsManifest } from './helpers/data-fixtures.ts';

const tmp = makeTmpDir();
after(tmp.cleanup);
const cifarLike = writeCountsManifest(tmp.dir, new Array(100).fill(500), 'cifar100.csv');
const cifarClasses = classNames(100);

describe('long-tail counts', () => {
  it('follow the CIFAR-100-LT rule: IF 100 over 100 classes of 500 gives 500..5, 10,847 in total', () => {
    const counts = longTailCounts(100, 500, 100, 'exp');
    assert.equal(counts[0], 500);
    assert.equal(counts[99], 5);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      10847,
    );
    for (let c = 1; c < 100; c++) assert.ok(counts[c] <= counts[c - 1], `not decreasing at ${c}`);
    assert.equal(counts[50], Math.floor(500 * 0.01 ** (50 / 99))); // floor, as LIFT's int()
  });

  it('IF 10 and IF 50 over CIFAR-100 give LIFT totals (19,573 and 12,608)', () => {
    const total = (imb: number) => longTailCounts(100, 500, imb, 'exp').reduce((a, b) => a + b, 0);
    assert.equal(total(10), 19573);
    assert.equal(total(50), 12608);
  });

  it('step profile: first half n_max, second half n_max / IF', () => {
    assert.deepEqual(longTailCounts(4, 100, 10, 'step'), [100, 100, 10, 10]);
    assert.deepEqual(longTailCounts(5, 100, 10, 'step'), [100, 100, 10, 10, 10]);
    assert.deepEqual(longTailCounts(1, 7, 100, 'exp'), [7]);
  });
});

describe('makeLongTail', () => {
  it('subsamples a 100 x 500 manifest to exactly 10,847 images, class order = class list order', () => {
    const ds = readDataset(cifarLike, { classes: cifarClasses });
    const lt = makeLongTail(ds, { imbalance: 100, seed: 1 });
    assert.equal(lt.dataset.samples.length, 10847);
    const counts = classCounts(lt.dataset);
    assert.equal(counts[0], 500);
    assert.equal(counts[99], 5);
    assert.deepEqual(counts, longTailCounts(100, 500, 100, 'exp'));
    assert.equal(lt.nMax, 500);
    assert.deepEqual(lt.short, []);
    // kept samples stay in their original order
    const rows = lt.dataset.samples.map((s) => s.row);
    assert.deepEqual(rows, [...rows].sort((a, b) => a - b));
  });

  it('is deterministic for a seed and changes with the seed', () => {
    const ds = readDataset(cifarLike, { classes: cifarClasses });
    const paths = (seed: number) => makeLongTail(ds, { imbalance: 100, seed }).dataset.samples.map((s) => s.path);
    assert.deepEqual(paths(7), paths(7));
    assert.notDeepEqual(paths(7), paths(8));
  });

  it('honours --max-per-class and keeps all of a class that is short of its target', () => {
    const file = writeCountsManifest(tmp.dir, [50, 3, 50], 'short.csv');
    const ds = readDataset(file);
    const lt = makeLongTail(ds, { imbalance: 4, maxPerClass: 40, seed: 0 });
    assert.deepEqual(lt.targets, [40, 20, 10]);
    assert.deepEqual(lt.counts, [40, 3, 10]);
    assert.deepEqual(lt.short, [{ label: 'c1', target: 20, available: 3 }]);
  });
});

describe('retformer data longtail', () => {
  it('writes a long-tailed manifest atomically and reports the counts', async () => {
    const out = join(tmp.dir, 'out', 'lt.csv');
    const classesFile = join(tmp.dir, 'classes.txt');
    writeClassList(classesFile, cifarClasses);
    const run = await runDataCli(['longtail', '--manifest', cifarLike, '--classes', classesFile, '--imbalance', '100', '--seed', '3', '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /10847 of 50000 images, 100 classes, 500\.\.5 per class/);
    const back = readDataset(out, { classes: cifarClasses });
    assert.equal(back.samples.length, 10847);
    assert.ok(back.samples.every((s) => s.path.startsWith(join(tmp.dir, 'img'))));
  });

  it('rejects a bad imbalance factor in one line', async () => {
    const run = await runDataCli(['longtail', '--manifest', cifarLike, '--imbalance', '0.5', '--out', join(tmp.dir, 'x.csv')]);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /^retformer: --imbalance: .*\n$/);
  });
});
