import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readDataset } from '../src/data/index.ts';
import { zeroShot } from '../src/eval/baselines.ts';
import { runComparison } from '../src/experiments/compare.ts';
import type { CompareResults } from '../src/eval/results.ts';
import { buildKnowledgeBase, openKbEncoder } from '../src/kb/index.ts';
import { type TinyDataset, writeTinyDataset } from './helpers/eval-dataset.ts';

const work = mkdtempSync(join(tmpdir(), 'retformer-eval-compare-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('runComparison with the training-free baselines', () => {
  let data: TinyDataset;
  let kbDir: string;
  before(async () => {
    data = await writeTinyDataset(join(work, 'data'));
    kbDir = join(work, 'kb');
    await buildKnowledgeBase({ pairsCsv: data.kbCsv, out: kbDir, encoderSpec: 'pixels', quiet: true });
  });

  it('evaluates kNN vote and zero-shot, and writes results.json and results.md', async () => {
    const out = join(work, 'out');
    const steps: string[] = [];
    const results: CompareResults = await runComparison({
      train: data.train,
      test: data.test,
      kb: kbDir,
      out,
      k: 3,
      variants: ['zero-shot', 'knn-vote'],
      edges: { many: 10, few: 4 },
      cacheDir: join(work, 'cache'),
      quiet: true,
      onStep: (line) => steps.push(line),
    });
    // table order, not the order asked for
    assert.deepEqual(
      results.methods.map((m) => m.key),
      ['knn-vote', 'zero-shot'],
    );
    assert.deepEqual(results.classes, data.classes);
    assert.deepEqual(results.trainCounts, data.trainCounts);
    assert.equal(results.test.length, 12);
    const knn = results.methods[0];
    assert.equal(knn.predictions.length, 12);
    // colour-coded classes: the 3 nearest KB pictures share the class
    assert.equal(knn.metrics.overall, 100);
    assert.deepEqual(knn.metrics.buckets, { many: 1, medium: 1, few: 2 });
    assert.equal(results.settings.k, 3);
    assert.equal(results.settings.kbSize, 20);
    assert.deepEqual(results.purity, [null, null, null, null]); // no retrieval run
    assert.deepEqual(results.gallery, []);
    assert.equal(steps.length, 2);
    assert.match(steps[0], /eval knn-vote: overall 100\.0%/);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CompareResults;
    assert.deepEqual(saved.methods[0].predictions, knn.predictions);
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    assert.match(md, /\| kNN vote \| 100\.0 \| 100\.0 \| 100\.0 \| 100\.0 \|/);
    assert.match(md, /\| Zero-shot \|/);
    // zero-shot: the predictions of the baseline itself on the KB encoder's test embeddings
    const zs = results.methods[1];
    const encoder = await openKbEncoder(kbDir);
    const testSet = readDataset(data.test);
    const expected = await zeroShot(encoder, await encoder.embedImages(testSet.samples.map((x) => x.path)), results.classes);
    await encoder.close();
    assert.deepEqual(zs.predictions, expected);
    assert.equal(zs.metrics.n, 12);
    assert.match(steps[1], /eval zero-shot: overall [\d.]+%/);
    assert.equal(existsSync(join(out, 'runs')), false);
  });

  it('refuses a test label that is not a training class, naming the line', async () => {
    const bad = join(data.dir, 'bad-test.csv');
    const lines = readFileSync(data.test, 'utf8').trim().split('\n');
    lines[2] = lines[2].replace(/,class-a,/, ',class-z,');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(bad, `${lines.join('\n')}\n`);
    await assert.rejects(
      runComparison({ train: data.train, test: bad, kb: kbDir, out: join(work, 'out-bad'), variants: ['knn-vote'], quiet: true, cacheDir: join(work, 'cache') }),
      /bad-test\.csv:3: label "class-z" is not one of the training set's 4 classes/,
    );
  });

  it('a failing training run is reported with its log, and nothing is stamped as done', async () => {
    const out = join(work, 'out-fail');
    const config = join(work, 'broken-config.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(config, '{ this is not json');
    const steps: string[] = [];
    await assert.rejects(
      runComparison({ train: data.train, test: data.test, kb: kbDir, out, config, variants: ['mlp-only', 'knn-vote'], epochs: 1, quiet: true, onStep: (l) => steps.push(l) }),
      (err: Error) => {
        assert.match(err.message, /^training mlp-only failed \(exit [1-9]\d*\).*; see .*logs\/mlp-only\.log$/);
        return true;
      },
    );
    // what finished is kept: kNN vote's results are written, the failed method is listed as skipped with its reason
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CompareResults;
    assert.deepEqual(
      saved.methods.map((m) => m.key),
      ['knn-vote'],
    );
    assert.equal(saved.skipped?.[0].key, 'mlp-only');
    assert.match(saved.skipped![0].reason, /^training mlp-only failed/);
    const log = readFileSync(join(out, 'logs', 'mlp-only.log'), 'utf8');
    assert.match(log, /^\$ retformer train --variant mlp-only --train .* --epochs 1 --config .*broken-config\.json --out /);
    assert.equal(existsSync(join(out, 'stamps', 'mlp-only.json')), false);
    assert.ok(steps.some((l) => /train mlp-only: FAILED/.test(l)));
  });

  it('checks every method before training: kNN vote on a KB without labels is skipped with its reason, the rest finish', async () => {
    const unlabelled = join(data.dir, 'kb-no-labels.csv');
    const rows = readFileSync(data.kbCsv, 'utf8').trim().split('\n');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(unlabelled, `${rows.map((r) => r.split(',').slice(0, 3).join(',')).join('\n')}\n`); // path,text,id
    const kbNoLabels = join(work, 'kb-no-labels');
    await buildKnowledgeBase({ pairsCsv: unlabelled, out: kbNoLabels, encoderSpec: 'pixels', quiet: true });
    const out = join(work, 'out-no-labels');
    const steps: string[] = [];
    const results = await runComparison({ train: data.train, test: data.test, kb: kbNoLabels, out, variants: ['knn-vote', 'mlp-only'], epochs: 1, quiet: true, cacheDir: join(work, 'cache'), onStep: (l) => steps.push(l) });
    assert.deepEqual(
      results.methods.map((m) => m.key),
      ['mlp-only'],
    );
    assert.deepEqual(results.skipped, [{ key: 'knn-vote', name: 'kNN vote', reason: 'needs a knowledge base whose pairs have labels (build it from a CSV with a "label" column); this KB has none' }]);
    const skipAt = steps.findIndex((l) => /^skip knn-vote: needs a knowledge base whose pairs have labels/.test(l));
    const trainAt = steps.findIndex((l) => /train mlp-only: started/.test(l));
    assert.ok(skipAt >= 0 && trainAt > skipAt, `the skip is decided before training: ${steps.join(' / ')}`);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CompareResults;
    assert.equal(saved.methods[0].metrics.n, 12);
    assert.equal(saved.skipped?.[0].key, 'knn-vote');
    assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /Skipped kNN vote: needs a knowledge base whose pairs have labels/);
  });

  it('validates options at the edge', async () => {
    const base = { train: data.train, test: data.test, kb: kbDir, out: join(work, 'o'), quiet: true };
    await assert.rejects(runComparison({ ...base, variants: ['nope'] }), /unknown method "nope"/);
    await assert.rejects(runComparison({ ...base, edges: { many: 5, few: 10 } }), /Few edge must not exceed/);
    await assert.rejects(runComparison({ ...base, jobs: 0 }), /compare: jobs:/);
    await assert.rejects(runComparison({ ...base, kByMethod: { nope: 4 } }), /kByMethod names an unknown method "nope"/);
  });

  it('per-method k: the vote uses its own k, trained methods get theirs as --k, and each row says its k', async () => {
    const { parseCompareOptions, trainJobs } = await import('../src/experiments/compare-plan.ts');
    const { METHODS } = await import('../src/experiments/methods.ts');
    const o = parseCompareOptions({ train: data.train, test: data.test, kb: kbDir, out: join(work, 'o'), k: 8, kByMethod: { 'image-only': 4, full: 16 } });
    const kOf = (key: string) => {
      const args = trainJobs(o, METHODS, { train: 'digest', kb: {} }).find((j) => j.method.key === key)!.args;
      return args.includes('--k') ? Number(args[args.indexOf('--k') + 1]) : undefined;
    };
    assert.deepEqual([kOf('image-only'), kOf('full'), kOf('no-text'), kOf('mlp-only')], [4, 16, 8, 8]);
    // a KB with one pair of the last class and five of each other: one neighbour votes right, fifteen out-vote that class
    const rows = readFileSync(data.kbCsv, 'utf8').trim().split('\n');
    const last = data.classes.at(-1)!;
    let kept = 0;
    const skewed = rows.filter((r, i) => i === 0 || !r.endsWith(`,${last}`) || kept++ < 1);
    const skewedCsv = join(data.dir, 'kb-skewed.csv');
    writeFileSync(skewedCsv, `${skewed.join('\n')}\n`);
    const skewedKb = join(work, 'kb-skewed');
    await buildKnowledgeBase({ pairsCsv: skewedCsv, out: skewedKb, encoderSpec: 'pixels', quiet: true });
    const run = (kByMethod: Record<string, number>, out: string) =>
      runComparison({ train: data.train, test: data.test, kb: skewedKb, out: join(work, out), k: 3, kByMethod, variants: ['knn-vote', 'zero-shot'], edges: { many: 10, few: 4 }, cacheDir: join(work, 'cache'), quiet: true });
    const one = await run({ 'knn-vote': 1 }, 'o-k1');
    const wide = await run({ 'knn-vote': 15 }, 'o-k15');
    assert.deepEqual([one.methods[0].k, wide.methods[0].k], [1, 15]);
    assert.equal(one.methods[0].metrics.overall, 100);
    assert.equal(wide.methods[0].metrics.perClass[last], 0, `15 neighbours out-vote the class with one pair: ${JSON.stringify(wide.methods[0].metrics.perClass)}`);
    assert.equal(one.methods[0].name, 'kNN vote', 'one retrieving method: no k in its name');
  });
});
