import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { addPairsCsv, buildKnowledgeBase, FileKnowledgeBase, openKnowledgeBase } from '../src/kb/index.ts';
import { RetformerError } from '../src/util/errors.ts';
import { removeTempDirs, tempDir, writeBadImages, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');
let dir: string;
let goodCsvText: string;

before(async () => {
  dir = tempDir();
  const { csv } = await writePairsFixture(dir, { n: 8, seed: 5, csvName: 'good.csv' });
  goodCsvText = readFileSync(csv, 'utf8');
  writeBadImages(dir, 'images/p0.png');
});

/** Write a CSV into the fixture folder, build from it, expect a one-line RetformerError matching `pattern`, and no KB. */
async function expectBuildError(name: string, csvText: string, pattern: RegExp): Promise<void> {
  const csv = join(dir, name);
  writeFileSync(csv, csvText);
  const out = join(dir, `kb-${name}`);
  await assert.rejects(buildKnowledgeBase({ pairsCsv: csv, out, encoderSpec: 'pixels', quiet: true, batchSize: 4 }), (err: Error) => {
    assert.ok(err instanceof RetformerError, `a user error, got ${err.stack}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
  assert.ok(!existsSync(out), 'no KB folder');
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes('building')),
    [],
    'no temp folder left',
  );
}

const header = 'id,path,text,label\n';

test('empty CSV, missing column, header only', async () => {
  await expectBuildError('empty.csv', '', /empty\.csv: empty CSV/);
  await expectBuildError('nocol.csv', 'id,path,label\np0,images/p0.png,red\n', /nocol\.csv: missing column "text"/);
  await expectBuildError('header.csv', header, /header\.csv: no data rows/);
});

test('missing CSV and missing image name the file (and row)', async () => {
  await assert.rejects(buildKnowledgeBase({ pairsCsv: join(dir, 'absent.csv'), out: join(dir, 'kb-absent'), encoderSpec: 'pixels', quiet: true }), /absent\.csv: file not found/);
  await expectBuildError('missing-image.csv', `${header}p0,images/p0.png,a red square,red\np1,images/nothere.png,a thing,red\n`, /missing-image\.csv:2: image not found: .*nothere\.png/);
});

test('truncated image and text file named .png: row named, nothing written', async () => {
  const rows = goodCsvText.trim().split('\n').slice(1, 6).join('\n');
  await expectBuildError('truncated.csv', `${header}${rows}\nt1,images/truncated.png,a broken square,red\n`, /truncated\.csv:6: .*truncated\.png: unreadable image \(truncated or corrupt\)/);
  await expectBuildError('notimage.csv', `${header}n1,images/not-an-image.png,not a picture,red\n${rows}\n`, /notimage\.csv:1: .*not-an-image\.png: unknown or unsupported image format/);
});

test('duplicate id, empty text, empty label', async () => {
  await expectBuildError('dup.csv', `${header}x,images/p0.png,a,red\ny,images/p1.png,b,red\nx,images/p2.png,c,red\n`, /dup\.csv:3: duplicate id "x" \(first used on row 1\)/);
  await expectBuildError('notext.csv', `${header}x,images/p0.png,,red\n`, /notext\.csv:1: empty text/);
  await expectBuildError('nolabel.csv', `${header}x,images/p0.png,a,\n`, /nolabel\.csv:1: empty label/);
});

test('kb add: unknown label and duplicate id are refused and the KB is unchanged', async () => {
  const out = join(dir, 'kb-add');
  await buildKnowledgeBase({ pairsCsv: join(dir, 'good.csv'), out, encoderSpec: 'pixels', quiet: true });
  const manifestBefore = readFileSync(join(out, 'manifest.json'), 'utf8');
  const sizes = () => readdirSync(out).map((n) => `${n}:${statSync(join(out, n)).size}`);
  const before = sizes();
  writeFileSync(join(dir, 'newlabel.csv'), `${header}n1,images/p0.png,a red square,red\nn2,images/p1.png,an orange thing,orange\n`);
  await assert.rejects(addPairsCsv(out, join(dir, 'newlabel.csv'), { quiet: true }), /newlabel\.csv:2: unknown label "orange"/);
  writeFileSync(join(dir, 'dupkb.csv'), `${header}n1,images/p0.png,a red square,red\np3,images/p1.png,again,red\n`);
  await assert.rejects(addPairsCsv(out, join(dir, 'dupkb.csv'), { quiet: true }), /dupkb\.csv:2: duplicate id "p3"/);
  const kb = await openKnowledgeBase(out); // opening cuts any uncommitted tail
  assert.equal(kb.size, 8);
  await kb.close();
  assert.equal(readFileSync(join(out, 'manifest.json'), 'utf8'), manifestBefore);
  assert.deepEqual(sizes(), before);
  // with --allow-new-labels the same CSV goes in
  const { manifest: m, added } = await addPairsCsv(out, join(dir, 'newlabel.csv'), { quiet: true, allowNewLabels: true });
  assert.equal(m.count, 10);
  assert.equal(added, 2);
  assert.ok((m.labels as string[]).includes('orange'));
});

test('NaN and wrong-dimension vectors are refused by add; nothing is committed', async () => {
  const out = join(dir, 'kb-vec');
  await buildKnowledgeBase({ pairsCsv: join(dir, 'good.csv'), out, encoderSpec: 'pixels', quiet: true });
  const kb = await FileKnowledgeBase.open(out);
  const ok = new Float32Array(128).fill(0.1);
  const nan = ok.slice();
  nan[7] = Number.NaN;
  const pair = (id: string, imageVector: Float32Array, textVector = ok) => ({ meta: { id, text: 't', source: 's', label: 'red' }, imageVector, textVector });
  await assert.rejects(kb.add([pair('v1', ok), pair('v2', nan)]), /pair 2: image vector contains NaN at position 7/);
  await assert.rejects(kb.add([pair('v1', ok, new Float32Array(64).fill(1))]), /pair 1: text vector has 64 values, expected 128 \(wrong dimension\)/);
  await assert.rejects(kb.add([pair('v1', new Float32Array(128))]), /all zeros/);
  assert.equal(kb.size, 8);
  assert.equal(kb.manifest.generation, 1);
  await kb.close();
  const again = await FileKnowledgeBase.open(out);
  assert.equal(again.rows, 8);
  await again.close();
});

test('CLI: a bad input is one line on stderr with a non-zero exit', () => {
  const csv = join(dir, 'cli-bad.csv');
  writeFileSync(csv, `${header}x,images/not-an-image.png,a,red\n`);
  try {
    execFileSync('node', [CLI, 'kb', 'build', '--pairs', csv, '--encoder', 'pixels', '--out', join(dir, 'kb-cli')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RETFORMER_QUIET: '1' } });
    assert.fail('expected a non-zero exit');
  } catch (err) {
    const e = err as { status: number; stderr: string };
    assert.equal(e.status, 1);
    const lines = e.stderr.trim().split('\n');
    assert.equal(lines.length, 1, e.stderr);
    assert.match(lines[0], /^retformer: .*cli-bad\.csv:1: .*not-an-image\.png: unknown or unsupported image format/);
  }
  assert.ok(!existsSync(join(dir, 'kb-cli')));
});

test('CLI: a bad --threads value (kb build, train) is one line naming the option', () => {
  const csv = join(dir, 'cli-threads.csv');
  writeFileSync(csv, header);
  const runs: [string[], RegExp][] = [
    [['kb', 'build', '--pairs', csv, '--encoder', 'pixels', '--out', join(dir, 'kb-threads'), '--threads', '-1'], /--threads/],
    [['kb', 'build', '--pairs', csv, '--encoder', 'pixels', '--out', join(dir, 'kb-threads'), '--threads', 'many'], /--threads/],
    [['train', '--train', csv, '--kb', join(dir, 'no-kb'), '--out', join(dir, 'run-threads'), '--threads', '0'], /--threads/],
  ];
  for (const [args, pattern] of runs) {
    try {
      execFileSync('node', [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RETFORMER_QUIET: '1' } });
      assert.fail(`expected a non-zero exit: ${args.join(' ')}`);
    } catch (err) {
      const e = err as { status: number; stderr: string };
      assert.equal(e.status, 1, e.stderr);
      const lines = e.stderr.trim().split('\n');
      assert.equal(lines.length, 1, e.stderr);
      assert.match(lines[0], pattern);
    }
  }
  assert.ok(!existsSync(join(dir, 'kb-threads')) && !existsSync(join(dir, 'run-threads')));
});
