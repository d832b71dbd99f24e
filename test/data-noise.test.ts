import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addLabelNoise } from '../src/data/noise.ts';
import { readDataset } from '../src/data/readers.ts';
import type { Dataset } from '../src/data/types.ts';
import { makeTmpDir, runDataCli, writeCountsManifest } from './helpers/data-fixtures.ts';

const tmp = makeTmpDir();
after(tmp.cleanup);
const C = 10;
const manifest = writeCountsManifest(tmp.dir, new Array(C).fill(400), 'clean.csv'); // 4,000 samples
const clean = readDataset(manifest);

function flips(ds: Dataset): { from: number; to: number }[] {
  const index = new Map(ds.classes.map((c, i) => [c, i]));
  return ds.samples.filter((s) => s.label !== s.cleanLabel).map((s) => ({ from: index.get(s.cleanLabel!)!, to: index.get(s.label)! }));
}

describe('symmetric noise', () => {
  it('flips about `rate` of the labels, always to another class, spread over all other classes', () => {
    const { dataset, flipped, realisedRate } = addLabelNoise(clean, { rate: 0.3, mode: 'sym', seed: 11 });
    // binomial(4000, 0.3): sd = 0.0072; 4 sd tolerance
    assert.ok(Math.abs(realisedRate - 0.3) < 0.03, `realised ${realisedRate}`);
    const f = flips(dataset);
    assert.equal(f.length, flipped);
    assert.ok(f.every(({ from, to }) => from !== to));
    // from class 0 (400 samples) each of the 9 other classes receives about 400 * 0.3 / 9 ~ 13 flips
    const targets = new Set(f.filter((x) => x.from === 0).map((x) => x.to));
    assert.equal(targets.size, C - 1);
    assert.ok(dataset.samples.every((s) => s.cleanLabel === clean.samples[s.row - 2].label));
  });

  it('is deterministic for a seed, differs across seeds, and rate 0 changes nothing', () => {
    const labels = (seed: number) => addLabelNoise(clean, { rate: 0.4, seed }).dataset.samples.map((s) => s.label);
    assert.deepEqual(labels(5), labels(5));
    assert.notDeepEqual(labels(5), labels(6));
    assert.equal(addLabelNoise(clean, { rate: 0, seed: 1 }).flipped, 0);
  });

  it('rate 1 flips every label', () => {
    const r = addLabelNoise(clean, { rate: 1, seed: 2 });
    assert.equal(r.flipped, clean.samples.length);
  });
});

describe('asymmetric noise', () => {
  it('follows the pair map i -> (i+1) mod C at about `rate`', () => {
    const { dataset, realisedRate } = addLabelNoise(clean, { rate: 0.2, mode: 'asym', seed: 3 });
    assert.ok(Math.abs(realisedRate - 0.2) < 0.03, `realised ${realisedRate}`);
    const f = flips(dataset);
    assert.ok(f.length > 0);
    for (const { from, to } of f) assert.equal(to, (from + 1) % C);
    assert.ok(f.some(({ from, to }) => from === C - 1 && to === 0), 'wrap-around pair never used');
  });

  it('keeps the first clean label when noise is applied twice', () => {
    const once = addLabelNoise(clean, { rate: 0.5, mode: 'asym', seed: 1 }).dataset;
    const twice = addLabelNoise(once, { rate: 0.5, mode: 'asym', seed: 2 }).dataset;
    assert.ok(twice.samples.every((s, i) => s.cleanLabel === clean.samples[i].label));
  });
});

describe('retformer data noise', () => {
  it('writes clean_label and the noisy label, reading back the same flips', async () => {
    const out = join(tmp.dir, 'noisy.csv');
    const run = await runDataCli(['noise', '--manifest', manifest, '--rate', '0.3', '--mode', 'sym', '--seed', '9', '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /labels flipped \(\d+\.\d%, sym, rate 0\.3\)/);
    const back = readDataset(out);
    const expected = addLabelNoise(clean, { rate: 0.3, mode: 'sym', seed: 9 }).dataset;
    assert.deepEqual(
      back.samples.map((s) => [s.label, s.cleanLabel]),
      expected.samples.map((s) => [s.label, s.cleanLabel]),
    );
  });

  it('refuses a rate above 1 and an unknown mode in one line', async () => {
    const r1 = await runDataCli(['noise', '--manifest', manifest, '--rate', '1.5', '--out', join(tmp.dir, 'x.csv')]);
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, /^retformer: --rate: /);
    const r2 = await runDataCli(['noise', '--manifest', manifest, '--rate', '0.1', '--mode', 'pair', '--out', join(tmp.dir, 'x.csv')]);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /pair/);
  });
});
