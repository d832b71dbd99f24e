import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runComparison } from '../src/experiments/compare.ts';
import { buildKnowledgeBase } from '../src/kb/index.ts';
import { runCli } from './helpers/cli.ts';
import { writeTinyDataset } from './helpers/eval-dataset.ts';

/**
 * End to end: train MLP-only and RetFormer full for one epoch on a tiny generated dataset (pixels
 * encoder), compare them with the kNN vote, re-run (reusing the trained runs), then `eval --json`
 * and `predict --json` on the full run.
 */
const BIN = fileURLToPath(new URL('../bin/retformer.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'retformer-eval-e2e-'));
after(() => rmSync(work, { recursive: true, force: true }));

const cliRun = (args: string[]) => runCli(args, { env: { RETFORMER_CACHE: join(work, 'cache') } });

function cliJson(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, RETFORMER_CACHE: join(work, 'cache') } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(' ')} failed: ${stderr}`));
      else resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

describe('compare, eval and predict end to end', () => {
  it('trains, evaluates, reuses the runs, and serves eval / predict', async () => {
    const data = await writeTinyDataset(join(work, 'data'));
    const kb = join(work, 'kb');
    await buildKnowledgeBase({ pairsCsv: data.kbCsv, out: kb, encoderSpec: 'pixels', quiet: true });
    const out = join(work, 'out');
    const options = {
      train: data.train,
      test: data.test,
      kb,
      out,
      epochs: 1,
      k: 3,
      jobs: 2,
      variants: ['full', 'knn-vote', 'mlp-only'],
      edges: { many: 10, few: 4 },
      cacheDir: join(work, 'cache'),
      quiet: true,
    };
    const steps: string[] = [];
    const first = await runComparison({ ...options, onStep: (l) => steps.push(l) });
    assert.deepEqual(
      first.methods.map((m) => m.key),
      ['mlp-only', 'knn-vote', 'full'],
    );
    for (const m of first.methods) {
      assert.equal(m.metrics.n, 12);
      assert.equal(m.predictions.length, 12);
    }
    for (const key of ['mlp-only', 'full']) {
      assert.ok(existsSync(join(out, 'runs', key, 'model')), `${key} has final weights`);
      assert.ok(existsSync(join(out, 'logs', `${key}.log`)));
      assert.ok(first.timings[`train:${key}`] > 0);
    }
    assert.equal(first.settings.epochs, 1);
    assert.equal(first.settings.puritySource, 'full');
    assert.equal(first.purity.length, 4);
    for (const p of first.purity) assert.ok(p !== null && p >= 0 && p <= 1);
    assert.ok(steps.some((l) => /train full: done/.test(l)));

    // Same settings again: both runs are reused, nothing is retrained, predictions are identical.
    const again: string[] = [];
    const second = await runComparison({ ...options, onStep: (l) => again.push(l) });
    assert.equal(again.filter((l) => /reusing/.test(l)).length, 2);
    assert.equal(second.timings['train:full'], undefined);
    assert.deepEqual(second.methods[2].predictions, first.methods[2].predictions);

    const runDir = join(out, 'runs', 'full');
    const metrics = await cliJson(['eval', '--run', runDir, '--test', data.test, '--many', '10', '--few', '4', '--json']);
    for (const key of ['overall', 'many', 'medium', 'few', 'macroF1', 'worstClass', 'perClass', 'buckets']) assert.ok(key in metrics, `eval --json has ${key}`);
    assert.equal(metrics.overall, first.methods[2].metrics.overall);
    assert.ok(typeof metrics.ece === 'number' && metrics.ece >= 0 && metrics.ece <= 100, `ece ${metrics.ece}`);
    assert.ok(typeof metrics.balanced === 'number');
    // Abstention: at p = 0 everything is answered; at p = 1 (no softmax reaches it) nothing is.
    const all = (await cliJson(['eval', '--run', runDir, '--test', data.test, '--many', '10', '--few', '4', '--json', '--abstain-below', '0'])) as { abstention: { overall: { coverage: number; accuracy: number } } };
    assert.equal(all.abstention.overall.coverage, 1);
    assert.ok(Math.abs(100 * all.abstention.overall.accuracy - metrics.overall) < 1e-9);
    const none = (await cliJson(['eval', '--run', runDir, '--test', data.test, '--json', '--abstain-below', '1'])) as { abstention: { overall: { coverage: number; accuracy: number | null } } };
    assert.equal(none.abstention.overall.coverage, 0);
    assert.equal(none.abstention.overall.accuracy, null);
    const abstaining = (await cliJson(['predict', '--run', runDir, '--image', join(data.dir, 'img', 'test-class-a-0.png'), '--json', '--abstain-below', '1'])) as { abstained: boolean };
    assert.equal(abstaining.abstained, true);

    const predicted = (await cliJson(['predict', '--run', runDir, '--image', join(data.dir, 'img', 'test-class-a-0.png'), '--json'])) as {
      label: string;
      top: unknown[];
      neighbours: { attention: number; text: string }[];
    };
    assert.ok(data.classes.includes(predicted.label));
    assert.equal(predicted.top.length, 4); // 4 classes < 5
    assert.equal(predicted.neighbours.length, 3);
    const attention = predicted.neighbours.reduce((s, n) => s + n.attention, 0);
    assert.ok(Math.abs(attention - 1) < 1e-3, `attention sums to ${attention}`);
    const withBranches = predicted as unknown as { branches: { image: number; retrieval: number } };
    assert.ok(Number.isFinite(withBranches.branches.image) && Number.isFinite(withBranches.branches.retrieval), 'predict --json shows both branch logits');

    // The KB moves: the recorded path fails with a one-line hint, --kb points at the new place.
    const moved = join(work, 'kb-moved');
    renameSync(kb, moved);
    const image = join(data.dir, 'img', 'test-class-a-0.png');
    const missing = await cliRun(['predict', '--run', runDir, '--image', image]);
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /knowledge base not found \(the path comes from .*kb\.json\); if the KB moved, point at it with --kb/);
    const again2 = await cliJson(['predict', '--run', runDir, '--image', image, '--kb', moved, '--json']);
    assert.equal(again2.label, predicted.label);
    const movedMetrics = await cliJson(['eval', '--run', runDir, '--test', data.test, '--kb', moved, '--many', '10', '--few', '4', '--json']);
    assert.equal(movedMetrics.overall, metrics.overall);

    // A KB rebuilt at the same path is a different KB (generation 1 again, new identity): nothing is reused.
    await buildKnowledgeBase({ pairsCsv: data.kbCsv, out: kb, encoderSpec: 'pixels', quiet: true });
    const third: string[] = [];
    await runComparison({ ...options, onStep: (l) => third.push(l) });
    assert.equal(third.filter((l) => /reusing/.test(l)).length, 0, third.join(' / '));
    assert.equal(third.filter((l) => /train (full|mlp-only): started/.test(l)).length, 2);
  });
});
