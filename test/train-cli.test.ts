import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildKnowledgeBase } from '../src/kb/index.ts';
import { Predictor } from '../src/infer/predictor.ts';
import { toCsv } from '../src/util/csv.ts';
import { tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

const dir = tempDir('retformer-train-cli-');
const kbDir = join(dir, 'kb');
const trainCsv = join(dir, 'train.csv');
const configFile = join(dir, 'cfg.json');
after(() => rmSync(dir, { recursive: true, force: true }));

before(async () => {
  const { csv, pairs } = await writePairsFixture(dir, { n: 30, seed: 4 });
  await buildKnowledgeBase({ pairsCsv: csv, out: kbDir, encoderSpec: 'pixels', batchSize: 16, quiet: true });
  // train on the KB's own images: the leakage guard must drop each one's own pair (id column + same source)
  writeFileSync(trainCsv, toCsv(['path', 'label', 'id'], pairs.map((p) => ({ path: join(dir, p.path), label: p.label, id: p.id }))));
  writeFileSync(configFile, JSON.stringify({ width: 16, heads: 2, layers: 2, hidden: 16, batchSize: 8, microBatch: 8 }));
});

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/retformer.js', ...args], { encoding: 'utf8', env: { ...process.env, RETFORMER_QUIET: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const historyEpochs = (runDir: string) =>
  readFileSync(join(runDir, 'history.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).epoch);

const common = () => ['--train', trainCsv, '--kb', kbDir, '--config', configFile, '--cache', join(dir, 'cache'), '--quiet'];

test('retformer train: trains, saves the run, refuses to overwrite, resumes, and the run predicts', async () => {
  const out = join(dir, 'run');
  const r = cli('train', ...common(), '--out', out, '--k', '4', '--epochs', '2', '--variant', 'full', '--loss', 'lace', '--seed', '3');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /trained .* samples\/s/);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.k, 4);
  assert.equal(config.width, 16); // from the config file
  assert.equal(config.loss, 'lace'); // from the flags
  const kb = JSON.parse(readFileSync(join(out, 'kb.json'), 'utf8'));
  assert.equal(kb.dir, kbDir);
  assert.ok(existsSync(join(out, 'retrieval')));

  const again = cli('train', ...common(), '--out', out, '--k', '4', '--epochs', '2');
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /^retformer: .*run folder exists; use --resume .* or --force/);
  assert.equal(again.stderr.trim().split('\n').length, 1);

  // resuming a finished run trains nothing: history and weights stay as they were
  const weightsBefore = readFileSync(join(out, 'model', 'weights.bin'));
  const finished = cli('train', ...common(), '--out', out, '--resume');
  assert.equal(finished.code, 0, finished.stderr);
  assert.match(finished.stdout, /^nothing to resume: .* has finished all 2 epochs\n$/);
  assert.deepEqual(historyEpochs(out), [1, 2]);
  assert.deepEqual(readFileSync(join(out, 'model', 'weights.bin')), weightsBefore);

  // stopped after epoch 1 of 2 (1 epoch trained, saved config then says 2): --resume trains only epoch 2
  // and ends on the same weights as the uninterrupted run
  const part = join(dir, 'run-part');
  const first = cli('train', ...common(), '--out', part, '--k', '4', '--epochs', '1', '--variant', 'full', '--loss', 'lace', '--seed', '3');
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(historyEpochs(part), [1]);
  const cfgFile = join(part, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), epochs: 2 }));
  const resumed = cli('train', ...common(), '--out', part, '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /^trained .* s, epoch 2 \(resumed\) \(.* samples\/s\)\n$/);
  assert.deepEqual(historyEpochs(part), [1, 2]);
  assert.deepEqual(readFileSync(join(part, 'model', 'weights.bin')), weightsBefore);

  const run = await Predictor.fromRun(out);
  const queries = new Float32Array(2 * run.kb.dim);
  queries.set(await run.kb.vectors([0, 1], 'image'));
  const excludeIds = (await run.kb.meta([0, 1])).map((m) => new Set([m.id]));
  const preds = await run.classifyEmbeddings(queries, { excludeIds });
  assert.equal(preds.length, 2);
  preds.forEach((p, i) => {
    assert.equal(p.neighbours.length, 4);
    assert.ok(p.neighbours.every((nb) => !excludeIds[i].has(nb.id)));
  });
  await run.close();
});

test('retformer train: clear one-line errors', () => {
  const missingKb = cli('train', '--train', trainCsv, '--kb', join(dir, 'nope'), '--out', join(dir, 'r2'), '--quiet');
  assert.notEqual(missingKb.code, 0);
  assert.match(missingKb.stderr, /^retformer: .*knowledge base not found/);
  assert.ok(!existsSync(join(dir, 'r2')), 'no run folder left behind');
  const badVariant = cli('train', ...common(), '--out', join(dir, 'r3'), '--variant', 'both');
  assert.match(badVariant.stderr, /^retformer: --variant: /);
  const badConfig = join(dir, 'bad.json');
  writeFileSync(badConfig, JSON.stringify({ widht: 3 }));
  const bad = cli('train', '--train', trainCsv, '--kb', kbDir, '--out', join(dir, 'r4'), '--config', badConfig, '--quiet');
  assert.match(bad.stderr, /^retformer: .*bad\.json: invalid config/);
  // a manifest row naming a picture that is not there: refused before embedding, naming file and row
  const lines = readFileSync(trainCsv, 'utf8').trimEnd().split('\n');
  lines[3] = lines[3].replace(/^[^,]+/, join(dir, 'gone.png'));
  const missingCsv = join(dir, 'missing-image.csv');
  writeFileSync(missingCsv, `${lines.join('\n')}\n`);
  const missing = cli('train', '--train', missingCsv, '--kb', kbDir, '--out', join(dir, 'r5'), '--config', configFile, '--quiet');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /^retformer: .*missing-image\.csv:3: image not found: .*gone\.png\n$/);
});
