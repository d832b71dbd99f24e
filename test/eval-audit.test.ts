import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readDataset } from '../src/data/index.ts';
import { auditRow, labelEvidence, scoreAudit } from '../src/eval/audit.ts';
import { writeTinyDataset } from './helpers/eval-dataset.ts';

const BIN = fileURLToPath(new URL('../bin/retformer.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'retformer-audit-'));
after(() => rmSync(work, { recursive: true, force: true }));

const nb = (label: string | undefined, similarity: number) => ({ id: `kb:${label}:${similarity}`, label, similarity, source: `/kb/${label}.png`, text: '' });

describe('label evidence', () => {
  it('is a similarity-weighted vote; unlabelled neighbours and negative similarities carry no weight', () => {
    const e = labelEvidence([nb('cat', 0.9), nb('dog', 0.3), nb('cat', 0.3), nb(undefined, 0.9), nb('dog', -0.5)]);
    assert.ok(Math.abs(e.shares.get('cat')! - 1.2 / 1.5) < 1e-12);
    assert.ok(Math.abs(e.shares.get('dog')! - 0.3 / 1.5) < 1e-12);
    assert.equal(e.suggested, 'cat');
  });

  it('flags a row only when another label leads and its own share is at most maxSupport', () => {
    const sample = { row: 7, path: '/t/x.png', label: 'dog' };
    const flagged = auditRow(sample, [nb('cat', 0.8), nb('cat', 0.6), nb('dog', 0.2), nb('owl', 0.4)], 0.25)!;
    assert.equal(flagged.suggested, 'cat');
    assert.ok(Math.abs(flagged.labelShare - 0.1) < 1e-12);
    assert.ok(Math.abs(flagged.margin - (0.7 - 0.1)) < 1e-12);
    assert.deepEqual(
      flagged.contradicting.map((n) => n.label),
      ['cat', 'cat', 'owl'],
    );
    assert.equal(auditRow(sample, [nb('cat', 0.8), nb('dog', 0.6)], 0.25), undefined, 'own share 0.43 > 0.25');
    assert.equal(auditRow(sample, [nb('dog', 0.8), nb('cat', 0.2)], 1), undefined, 'own label leads');
  });

  it('scores the flags against the clean labels', () => {
    const samples = [
      { row: 1, label: 'a', cleanLabel: 'b' },
      { row: 2, label: 'a', cleanLabel: 'a' },
      { row: 3, label: 'c', cleanLabel: 'a' },
      { row: 4, label: 'b', cleanLabel: 'b' },
    ];
    const flag = (row: number, suggested: string, cleanLabel: string) => ({ row, path: '', label: '', suggested, labelShare: 0, suggestedShare: 1, margin: 1, cleanLabel, contradicting: [] });
    const s = scoreAudit(samples, [flag(1, 'b', 'b'), flag(2, 'c', 'a')]);
    // ranked: row 1 (noisy) first, so the top 2 (= noisy count) hold one noisy row
    assert.deepEqual(s, { noisy: 2, precision: 0.5, recall: 0.5, suggestedClean: 1, rPrecision: 0.5 });
    assert.equal(scoreAudit(samples, [flag(1, 'b', 'b'), flag(3, 'a', 'a'), flag(2, 'c', 'a')]).rPrecision, 1);
    assert.deepEqual(scoreAudit([{ row: 1, label: 'a' }], []), {});
  });
});

describe('retformer audit', () => {
  it('finds rows made noisy by data noise in a downstream KB, never citing the row itself', async () => {
    const data = await writeTinyDataset(join(work, 'data'), { trainCounts: [14, 12, 10, 8] });
    const noisy = join(work, 'noisy.csv');
    const kb = join(work, 'kb');
    const run = join(work, 'run');
    const out = join(work, 'audit');
    const call = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
        execFile(process.execPath, [BIN, ...args], { cwd: work }, (err, stdout, stderr) => done({ code: err ? 1 : 0, stdout, stderr })),
      );
    for (const args of [
      ['data', 'noise', '--manifest', data.train, '--rate', '0.3', '--mode', 'sym', '--seed', '1', '--out', noisy],
      ['kb', 'build', '--from-train', noisy, '--out', kb, '--encoder', 'pixels', '--quiet'],
      ['train', '--train', noisy, '--kb', kb, '--out', run, '--k', '6', '--epochs', '1', '--variant', 'mlp-only', '--cache', join(work, 'cache'), '--quiet'],
    ]) {
      const r = await call(args);
      assert.equal(r.code, 0, `${args.slice(0, 2).join(' ')}: ${r.stderr}`);
    }
    const r = await call(['audit', '--run', run, '--train', noisy, '--out', out, '--cache', join(work, 'cache'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { summary } = JSON.parse(r.stdout) as { summary: { checked: number; flagged: number; noisy: number; precision: number; recall: number } };
    assert.equal(summary.checked, 44);
    const noisyRows = readDataset(noisy).samples.filter((s) => s.cleanLabel !== s.label).length;
    assert.equal(summary.noisy, noisyRows);
    assert.ok(noisyRows > 5);
    // the classes are easy to tell apart: the evidence finds most noisy rows, and most flags are right
    assert.ok(summary.recall >= 0.6, `recall ${summary.recall}`);
    assert.ok(summary.precision >= 0.6, `precision ${summary.precision}`);
    const csv = readFileSync(join(out, 'audit.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'rank,row,path,label,suggested,label_share,suggested_share,clean_label,contradicting');
    assert.equal(csv.length - 1, summary.flagged);
    for (const line of csv.slice(1)) {
      const row = line.split(',')[1];
      assert.ok(!line.split(',').slice(8).join(',').includes(`train:${row} `), 'a row never cites its own pair');
    }
    assert.ok(existsSync(join(out, 'audit.md')));
    assert.match(readFileSync(join(out, 'audit.md'), 'utf8'), /precision \d+\.\d%, recall \d+\.\d%/);
  });
});
