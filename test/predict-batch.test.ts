import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildKnowledgeBase } from '../src/kb/index.ts';
import { trainRun } from '../src/train/index.ts';
import { readCsv } from '../src/util/csv.ts';
import { type CliResult, runCli } from './helpers/cli.ts';
import { type TinyDataset, writeTinyDataset } from './helpers/eval-dataset.ts';

/** `retformer predict` for many pictures: repeated --image, --dir, --manifest; CSV and JSON Lines; failures as rows. */

const work = mkdtempSync(join(tmpdir(), 'retformer-predict-batch-'));
after(() => rmSync(work, { recursive: true, force: true }));

const cli = (args: string[]) => runCli(args, { cwd: work, env: { RETFORMER_CACHE: join(work, 'cache') } });

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, r.stderr);
  return r;
}

interface Row {
  image: string;
  label?: string | null;
  probability?: number;
  abstainBelow?: number;
  abstained?: boolean;
  top?: { label: string; probability: number }[];
  branches?: { image: number; retrieval?: number };
  neighbours?: { id: string; attention: number }[];
  error?: string;
}

const jsonLines = (text: string): Row[] =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row);

describe('predict for many pictures', () => {
  let data: TinyDataset;
  let runDir: string;
  let pictures: string[];
  let single: Row;

  before(async () => {
    data = await writeTinyDataset(join(work, 'data'), { trainCounts: [6, 4, 3], testPerClass: 2, kbPerClass: 3 });
    const kb = join(work, 'kb');
    await buildKnowledgeBase({ pairsCsv: data.kbCsv, out: kb, encoderSpec: 'pixels', quiet: true });
    runDir = join(work, 'run');
    await trainRun({ trainCsv: data.train, kbDir: kb, outDir: runDir, quiet: true, cacheDir: join(work, 'cache'), config: { epochs: 1, k: 3, width: 8, heads: 2, layers: 1, hidden: 16, batchSize: 8, microBatch: 8, seed: 3 } });
    // the test pictures in their own folder (sorted names), plus a file that is not an image
    const folder = join(work, 'to-label');
    mkdirSync(join(folder, 'sub'), { recursive: true });
    pictures = readCsv(data.test).rows.map((r) => join(data.dir, r.values.path));
    pictures.forEach((p, i) => {
      copyFileSync(p, join(i < 3 ? folder : join(folder, 'sub'), `p${i}.png`));
    });
    single = JSON.parse(ok(await cli(['predict', '--run', runDir, '--image', pictures[0], '--json'])).stdout) as Row;
  });

  it('repeated --image predicts every picture (JSON Lines on stdout), the same as one at a time', async () => {
    const r = ok(await cli(['predict', '--run', runDir, '--image', pictures[0], '--image', pictures[1], '--image', pictures[2]]));
    const rows = jsonLines(r.stdout);
    assert.deepEqual(
      rows.map((row) => row.image),
      pictures.slice(0, 3),
    );
    assert.equal(rows[0].label, single.label);
    assert.ok(Math.abs(rows[0].probability! - single.probability!) < 1e-6);
    assert.deepEqual(rows[0].neighbours, single.neighbours);
    assert.deepEqual(rows[0].branches, single.branches);
    assert.match(r.stderr, /predicted 3 of 3 pictures/);
  });

  it('--dir writes a CSV with one row per image file (recursive, sorted); unreadable files get an error row', async () => {
    const folder = join(work, 'to-label');
    writeFileSync(join(folder, 'broken.png'), 'not a png at all');
    const out = join(work, 'labels.csv');
    const r = ok(await cli(['predict', '--run', runDir, '--dir', folder, '--out', out]));
    const table = readCsv(out);
    assert.deepEqual(table.columns, ['image', 'label', 'probability', 'abstained', 'top', 'image_logit', 'retrieval_logit', 'gate', 'neighbours', 'error']);
    const names = table.rows.map((row) => row.values.image.slice(folder.length + 1));
    assert.deepEqual(names, ['broken.png', 'p0.png', 'p1.png', 'p2.png', ...pictures.slice(3).map((_, i) => `sub/p${i + 3}.png`)]);
    const broken = table.rows[0].values;
    assert.equal(broken.label, '');
    assert.match(broken.error, /broken\.png/);
    const p0 = table.rows[1].values;
    assert.equal(p0.label, single.label);
    assert.ok(Math.abs(Number(p0.probability) - single.probability!) < 1e-6);
    assert.equal(p0.top.split(';')[0].split(':')[0], single.label);
    assert.equal(p0.neighbours.split(';').length, 3);
    assert.ok(Math.abs(Number(p0.image_logit) - single.branches!.image) < 1e-5);
    assert.ok(Math.abs(Number(p0.retrieval_logit) - single.branches!.retrieval!) < 1e-5);
    assert.equal(p0.error, '');
    assert.equal(p0.abstained, '');
    assert.match(r.stderr, new RegExp(`predicted ${pictures.length} of ${pictures.length + 1} pictures \\(1 could not be read`));
    rmSync(join(folder, 'broken.png'));
    // an existing output is refused unless --force, and nothing partial is left behind
    const again = await cli(['predict', '--run', runDir, '--dir', folder, '--out', out]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr.trim(), /^retformer: .*labels\.csv: exists; use --force to replace it$/);
    ok(await cli(['predict', '--run', runDir, '--dir', folder, '--out', out, '--force', '--quiet']));
    assert.equal(readCsv(out).rows.length, pictures.length);
    assert.deepEqual(
      readdirSync(work).filter((f) => f.includes('partial')),
      [],
    );
  });

  it('--manifest reads the path column relative to the CSV; --out .jsonl writes JSON Lines', async () => {
    const out = join(work, 'labels.jsonl');
    ok(await cli(['predict', '--run', runDir, '--manifest', data.test, '--out', out, '--quiet']));
    const rows = jsonLines(readFileSync(out, 'utf8'));
    assert.deepEqual(
      rows.map((row) => row.image),
      pictures,
    );
    assert.ok(rows.every((row) => row.top!.length === 3 && row.neighbours!.length === 3));
  });

  it('--abstain-below: rows under P abstain (no label, best guess first in top); the summary gives coverage and accuracy on the answered labelled pictures', async () => {
    const truth = readCsv(data.test).rows.map((r) => r.values.label);
    const run = async (p: string) => {
      const out = join(work, `abstain-${p}.jsonl`);
      const r = ok(await cli(['predict', '--run', runDir, '--manifest', data.test, '--out', out, '--force', '--abstain-below', p]));
      return { rows: jsonLines(readFileSync(out, 'utf8')), stderr: r.stderr };
    };
    const all = await run('0');
    assert.ok(all.rows.every((row) => row.abstained === false && row.abstainBelow === 0 && row.label === row.top![0].label));
    const right = all.rows.filter((row, i) => row.label === truth[i]).length;
    const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`;
    assert.match(all.stderr, new RegExp(`predicted ${all.rows.length} of ${all.rows.length} pictures; answered ${all.rows.length} \\(coverage 100\\.0%\\), 0 abstained below p = 0; accuracy ${pct(right, all.rows.length)} on the ${all.rows.length} answered labelled pictures`));

    // P between two distinct probabilities: exactly the rows below it abstain, each keeping its best guess and probability
    const probs = [...new Set(all.rows.map((row) => row.probability!))].sort((a, b) => a - b);
    assert.ok(probs.length >= 2, 'the fixture gives distinct probabilities');
    const cut = (probs[Math.floor(probs.length / 2) - 1] + probs[Math.floor(probs.length / 2)]) / 2;
    const some = await run(String(cut));
    const below = all.rows.map((row) => row.probability! < cut);
    const answered = below.filter((b) => !b).length;
    assert.ok(answered > 0 && answered < all.rows.length);
    some.rows.forEach((row, i) => {
      assert.equal(row.abstained, below[i], row.image);
      assert.equal(row.label, below[i] ? null : all.rows[i].label);
      assert.equal(row.top![0].label, all.rows[i].top![0].label);
      assert.ok(Math.abs(row.probability! - all.rows[i].probability!) < 1e-9);
    });
    const answeredRight = all.rows.filter((row, i) => !below[i] && row.label === truth[i]).length;
    assert.match(some.stderr, new RegExp(`answered ${answered} \\(coverage ${pct(answered, all.rows.length).replace('.', '\\.')}\\), ${all.rows.length - answered} abstained below p = ${cut}; accuracy ${pct(answeredRight, answered)} on the ${answered} answered labelled pictures`));

    // P = 1: nothing is answered, so there is no accuracy to give
    const none = await run('1');
    assert.ok(none.rows.every((row) => row.abstained === true && row.label === null));
    assert.match(none.stderr, /answered 0 \(coverage 0\.0%\), \d+ abstained below p = 1 -> /);
    assert.equal(none.stderr.includes('accuracy'), false);

    // CSV: an abstained row has an empty label and abstained = true; its best guess leads the top column
    const csv = join(work, 'abstain.csv');
    ok(await cli(['predict', '--run', runDir, '--manifest', data.test, '--out', csv, '--abstain-below', String(cut), '--quiet']));
    const table = readCsv(csv).rows.map((row) => row.values);
    table.forEach((row, i) => {
      assert.equal(row.abstained, String(below[i]));
      assert.equal(row.label, below[i] ? '' : all.rows[i].label);
      assert.equal(row.top.split(';')[0].split(':')[0], all.rows[i].top![0].label);
    });
  });

  it('refuses bad batch requests with one line', async () => {
    const cases: [string[], RegExp][] = [
      [['predict', '--run', runDir], /no pictures: give --image FILE/],
      [['predict', '--run', runDir, '--image', pictures[0], '--out', join(work, 'x.txt')], /cannot tell the format from the extension/],
      [['predict', '--run', runDir, '--image', pictures[0], '--format', 'xml'], /--format: "xml" is not one of csv, jsonl/],
      [['predict', '--run', runDir, '--dir', join(work, 'nothing-here')], /nothing-here: folder not found/],
      [['predict', '--run', runDir, '--manifest', data.kbCsv.replace('kb.csv', 'none.csv')], /none\.csv: file not found/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli(args);
      assert.notEqual(r.code, 0, args.join(' '));
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], pattern);
    }
    assert.equal(existsSync(join(work, 'x.txt')), false);
  });
});
