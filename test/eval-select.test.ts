import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readDataset } from '../src/data/index.ts';
import type { Dataset } from '../src/data/types.ts';
import { carveValidation, writeValidationCsvs } from '../src/data/validation.ts';
import { type CandidateResult, chooseCandidate, formatSelection, K_GRID, pairedStandardError, prepareValidation, type SelectionResult, selectVoteK } from '../src/eval/select.ts';
import { buildKnowledgeBase } from '../src/kb/index.ts';
import { writeTinyDataset } from './helpers/eval-dataset.ts';

const BIN = fileURLToPath(new URL('../bin/retformer.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'retformer-select-'));
after(() => rmSync(work, { recursive: true, force: true }));

function dataset(counts: Record<string, number>): Dataset {
  const samples = Object.entries(counts).flatMap(([label, n]) => Array.from({ length: n }, (_, i) => ({ path: `/x/${label}-${i}.png`, label, row: 0 })));
  samples.forEach((s, i) => {
    s.row = i + 1;
  });
  return { source: 'mem.csv', samples, classes: Object.keys(counts).sort() };
}

describe('a validation split carved from the training data', () => {
  const data = dataset({ a: 50, b: 10, c: 3, d: 1 });

  it('is stratified: round(20%) of each class, at least one sample left for training', () => {
    const split = carveValidation(data, { seed: 0 });
    const held = (label: string) => split.validation.filter((i) => data.samples[i].label === label).length;
    assert.deepEqual([held('a'), held('b'), held('c'), held('d')], [10, 2, 1, 0]);
    assert.equal(split.train.length + split.validation.length, data.samples.length);
    assert.equal(new Set([...split.train, ...split.validation]).size, data.samples.length);
  });

  it('is the same for a seed and different for another', () => {
    assert.deepEqual(carveValidation(data, { seed: 3 }), carveValidation(data, { seed: 3 }));
    assert.notDeepEqual(carveValidation(data, { seed: 3 }).validation, carveValidation(data, { seed: 4 }).validation);
    assert.throws(() => carveValidation(data, { share: 1 }), /share/);
  });

  it('writes both parts with every column of the original CSV', () => {
    const csv = join(work, 'ids.csv');
    writeFileSync(csv, `path,label,id\n${Array.from({ length: 10 }, (_, i) => `img${i}.png,${i < 5 ? 'x' : 'y'},id-${i}`).join('\n')}\n`);
    const ds = readDataset(csv);
    const split = carveValidation(ds, { seed: 1 });
    const files = { train: join(work, 't.csv'), validation: join(work, 'v.csv') };
    writeValidationCsvs(csv, ds, split, files);
    const val = readFileSync(files.validation, 'utf8').trim().split('\n');
    assert.equal(val[0], 'path,label,id');
    assert.equal(val.length - 1, 2);
    assert.ok(val.slice(1).every((l) => l.startsWith('/') && /,id-\d$/.test(l)), 'absolute paths, ids kept');
  });
});

describe('choosing settings on validation', () => {
  const c = (k: number, balanced: number): CandidateResult => ({ k, tau: 1, overall: 50, balanced, many: null, medium: null, few: null });

  it('best: takes the highest balanced accuracy, the earlier candidate on a tie', () => {
    assert.equal(chooseCandidate([c(4, 40), c(8, 45), c(16, 45), c(32, 30)], 'best').k, 8);
    assert.throws(() => chooseCandidate([]), /no candidates/);
  });

  // per-class accuracies over 4 classes; the balanced accuracy is their mean
  const pc = (k: number, accs: number[]): CandidateResult => ({ ...c(k, accs.reduce((a, b) => a + b, 0) / accs.length), perClass: Object.fromEntries(accs.map((a, i) => [`c${i}`, a])) });

  it('the paired standard error is over the classes, of the per-class differences', () => {
    // differences 10, 0, -10, 20: mean 5, sd sqrt(((5)^2 + 5^2 + 15^2 + 15^2) / 3) = sqrt(500/3), se = that / 2
    assert.ok(Math.abs(pairedStandardError(pc(4, [60, 50, 40, 70]), pc(8, [50, 50, 50, 50]))! - Math.sqrt(500 / 3) / 2) < 1e-9);
    assert.equal(pairedStandardError(c(4, 40), c(8, 45)), null);
  });

  it('one-se: the first candidate within one paired standard error of the best, else the best', () => {
    const noisyGap = [pc(4, [80, 60, 40, 70]), pc(8, [70, 60, 50, 70]), pc(32, [90, 50, 50, 74])]; // 4: 62.5, 32: 66; per-class gaps 10,-10,10,4 -> se 4.7 > 3.5
    assert.equal(chooseCandidate(noisyGap, 'best').k, 32);
    assert.equal(chooseCandidate(noisyGap).k, 4);
    const clearGap = [pc(4, [50, 50, 50, 50]), pc(8, [60, 61, 59, 60]), pc(32, [80, 81, 79, 80])]; // every class gains 30 +- 1 at k 32
    assert.equal(chooseCandidate(clearGap).k, 32);
    assert.equal(chooseCandidate([c(4, 40), c(8, 45)]).k, 8, 'without per-class accuracies: the best');
  });

  it('the kNN vote chooses its k on the carved split with no training, its own pair left out', async () => {
    const data = await writeTinyDataset(join(work, 'vote-data'), { trainCounts: [16, 10, 5, 3] });
    // the downstream KB: the training pictures themselves, so every validation picture's own pair is in it
    const downstream = join(data.dir, 'downstream-pairs.csv'); // beside the training CSV: its paths are relative to that folder
    const rows = readFileSync(data.train, 'utf8').trim().split('\n').slice(1);
    writeFileSync(downstream, `path,text,id,label\n${rows.map((r, i) => { const [path, label] = r.split(','); return `${path},a picture,t${i},${label}`; }).join('\n')}\n`);
    const kb = join(work, 'vote-kb');
    await buildKnowledgeBase({ pairsCsv: downstream, out: kb, encoderSpec: 'pixels', quiet: true });
    const split = prepareValidation(data.train, join(work, 'vote-select'), { seed: 0 });
    const selection = await selectVoteK({ split, kb, grid: [1, 15], cacheDir: join(work, 'cache') });
    assert.equal(selection.method, 'knn-vote');
    assert.deepEqual(selection.candidates.map((x) => x.k), [1, 15]);
    // k = 1 would score 100 if a picture could retrieve itself; colour-coded classes keep the nearest other picture right too
    assert.equal(selection.candidates[0].overall, 100);
    assert.ok(selection.candidates[1].balanced < selection.candidates[0].balanced, '15 neighbours out-vote the 2-3 picture classes');
    assert.equal(selection.chosen.k, 1);
    assert.equal(selection.standardErrors[0], 0);
  });

  it('train --k auto trains each candidate on the carved split, records the choice and trains the run with it', async () => {
    const data = await writeTinyDataset(join(work, 'data'), { trainCounts: [16, 10, 5, 3] });
    const kb = join(work, 'kb');
    await buildKnowledgeBase({ pairsCsv: data.kbCsv, out: kb, encoderSpec: 'pixels', quiet: true });
    const run = join(work, 'run');
    const r = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile(process.execPath, [BIN, 'train', '--train', data.train, '--kb', kb, '--out', run, '--k', 'auto', '--epochs', '1', '--cache', join(work, 'cache'), '--quiet'], (err, _o, stderr) =>
        done({ code: err ? 1 : 0, stderr }),
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    const selection = JSON.parse(readFileSync(join(run, 'selection.json'), 'utf8')) as SelectionResult;
    assert.deepEqual(
      selection.candidates.map((x) => x.k),
      [...K_GRID],
    );
    assert.equal(selection.chosen.k, chooseCandidate(selection.candidates).k);
    assert.equal(selection.trainSize + selection.validationSize, 34);
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { k: number; tau: number };
    assert.equal(config.k, selection.chosen.k);
    assert.ok(existsSync(join(`${run}.select`, 'validation.csv')));
    // no validation picture was trained on by the candidates
    const trainPaths = new Set(readDataset(join(`${run}.select`, 'train.csv')).samples.map((s) => s.path));
    assert.ok(readDataset(join(`${run}.select`, 'validation.csv')).samples.every((s) => !trainPaths.has(s.path)));
    assert.match(formatSelection(selection), new RegExp(`\\| ${selection.chosen.k} \\| 1 \\|.*\\| chosen \\|`));
    assert.equal(selection.rule, 'one-se');
    assert.equal(selection.standardErrors.length, K_GRID.length);
    const best = chooseCandidate(selection.candidates, 'best');
    assert.equal(selection.standardErrors[selection.candidates.findIndex((x) => x.k === best.k)], 0, 'the best candidate is the reference');
  });
});
