import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { addPairsCsv, buildKnowledgeBase, openKnowledgeBase } from '../src/kb/index.ts';
import { removeTempDirs, tempDir, writeBadImages, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');
const header = 'id,path,text,label\n';
let dir: string;
let kbDir: string;

before(async () => {
  dir = tempDir();
  const { csv } = await writePairsFixture(dir, { n: 10, seed: 5 });
  writeBadImages(dir, 'images/p0.png');
  kbDir = join(dir, 'kb');
  await buildKnowledgeBase({ pairsCsv: csv, out: kbDir, encoderSpec: 'pixels', quiet: true });
});

// Issue 17 (8): `kb add` embedded every pair before checking labels and the lock.
test('kb add checks labels before embedding: an unknown label on row 2 is reported, not the unreadable image on row 1', async () => {
  const csv = join(dir, 'label-late.csv');
  writeFileSync(csv, `${header}n1,images/not-an-image.png,broken,red\nn2,images/p1.png,an orange thing,orange\n`);
  await assert.rejects(addPairsCsv(kbDir, csv, { quiet: true }), /label-late\.csv:2: unknown label "orange"/);
});

test('kb add takes the write lock before embedding: a running writer is reported, not the unreadable image', async () => {
  const csv = join(dir, 'while-writing.csv');
  writeFileSync(csv, `${header}n1,images/not-an-image.png,broken,red\n`);
  const kb = await openKnowledgeBase(kbDir);
  const writer = await kb.beginWrite();
  try {
    await assert.rejects(addPairsCsv(kbDir, csv, { quiet: true }), /is already writing this knowledge base|another process .* is writing/);
  } finally {
    await writer.abort();
    await kb.close();
  }
});

test('kb add prints the pairs it added', () => {
  const csv = join(dir, 'three.csv');
  writeFileSync(csv, `${header}t1,images/p1.png,one,red\nt2,images/p2.png,two,green\nt3,images/p3.png,three,blue\n`);
  const run = (...args: string[]) => execFileSync('node', [CLI, ...args], { encoding: 'utf8', env: { ...process.env, RETFORMER_QUIET: '1' } });
  assert.match(run('kb', 'add', '--kb', kbDir, '--pairs', csv, '--quiet'), /^added 3 pairs to .*: 13 pairs, generation 2\n$/);
  const csv2 = join(dir, 'two.csv');
  writeFileSync(csv2, `${header}u1,images/p4.png,four,red\nu2,images/p5.png,five,green\n`);
  const json = JSON.parse(run('kb', 'add', '--kb', kbDir, '--pairs', csv2, '--json'));
  assert.deepEqual([json.added, json.count, json.generation], [2, 15, 3]);
});
