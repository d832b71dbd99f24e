import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readClassList } from '../src/data/classes.ts';
import { type EmojiBenchmarkInfo, type EmojiVendor, buildEmojiBenchmark, emojiPicturePath, emojiText, loadEmojiRecords } from '../src/data/emoji.ts';
import { readDataset } from '../src/data/readers.ts';
import { classCounts } from '../src/data/stats.ts';
import type { Dataset } from '../src/data/types.ts';
import { readCsv } from '../src/util/csv.ts';
import { RetformerError } from '../src/util/errors.ts';
import { makeTmpDir, runDataCli } from './helpers/data-fixtures.ts';

const tmp = makeTmpDir('retformer-emoji-');
after(tmp.cleanup);
const dir = join(tmp.dir, 'emoji');
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const vendorOf = (path: string) => relative(dir, path).split('/')[1];

let info: EmojiBenchmarkInfo;
let train: Dataset;
let test: Dataset;
let kb: Dataset;
let classes: string[];

describe('emoji benchmark (default split)', () => {
  before(async () => {
    info = await buildEmojiBenchmark(dir, { quiet: true });
    classes = readClassList(join(dir, 'classes.txt'));
    train = readDataset(join(dir, 'train.csv'), { classes });
    test = readDataset(join(dir, 'test.csv'), { classes });
    kb = readDataset(join(dir, 'kb.csv'), { classes });
  });

  it('has the stated sizes: 99 subcategories, ~3,770 train pictures with 2..517 per class, 1,911 test and KB pictures', () => {
    assert.equal(classes.length, 99);
    assert.deepEqual(classes, [...classes].sort());
    assert.equal(train.samples.length, 3768); // apple 1,908 + facebook 1,860
    assert.equal(test.samples.length, 1911);
    assert.equal(kb.samples.length, 1911);
    const counts = classCounts(train);
    assert.equal(Math.min(...counts), 2);
    assert.equal(Math.max(...counts), 517);
    assert.deepEqual(info.counts, { train: 3768, test: 1911, kb: 1911, classes: 99 });
    assert.deepEqual(info.trainCounts, counts);
    assert.deepEqual(info.perVendor.train, { apple: 1908, facebook: 1860 });
    assert.deepEqual(info.edges, { many: 40, few: 16 });
    assert.equal(info.buckets.many.classes + info.buckets.medium.classes + info.buckets.few.classes, 99);
    assert.equal(info.droppedDuplicates, 0);
    // the same sizes derived from the packages' records directly (one picture per emoji and vendor;
    // nothing dropped): a split that lost or duplicated pictures would disagree
    const records = (vendors: EmojiVendor[]) => vendors.flatMap((v) => loadEmojiRecords(v));
    const trainRecords = records(['apple', 'facebook']);
    assert.equal(train.samples.length, trainRecords.length);
    assert.equal(test.samples.length, records(['google']).length);
    assert.equal(kb.samples.length, records(['twitter']).length);
    assert.deepEqual(classes, [...new Set(records(['apple', 'facebook', 'google', 'twitter']).map((r) => r.subcategory))].sort());
    assert.deepEqual(
      counts,
      classes.map((c) => trainRecords.filter((r) => r.subcategory === c).length),
    );
    const onDisk = JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8'));
    assert.deepEqual(onDisk.counts, info.counts);
    assert.equal(onDisk.files.train, 'train.csv');
  });

  it('keeps vendors apart: train apple+facebook, test google, KB twitter', () => {
    assert.deepEqual(new Set(train.samples.map((s) => vendorOf(s.path))), new Set(['apple', 'facebook']));
    assert.deepEqual(new Set(test.samples.map((s) => vendorOf(s.path))), new Set(['google']));
    assert.deepEqual(new Set(kb.samples.map((s) => vendorOf(s.path))), new Set(['twitter']));
    assert.ok(train.samples.every((s) => s.path.startsWith(join(dir, 'images'))), 'pictures are copied into the benchmark folder');
  });

  it('no test picture and no google picture enters the training set or the KB (by content hash)', () => {
    const forbidden = new Set(test.samples.map((s) => sha(s.path)));
    for (const r of loadEmojiRecords('google')) forbidden.add(sha(emojiPicturePath('google', r.image)));
    assert.ok(forbidden.size > 1800);
    const leaks = [...train.samples, ...kb.samples].filter((s) => forbidden.has(sha(s.path)));
    assert.deepEqual(
      leaks.map((s) => s.path),
      [],
    );
    // the copies are byte-identical to the package pictures
    const s = test.samples[0];
    assert.equal(sha(s.path), sha(emojiPicturePath('google', basename(s.path))));
  });

  it('labels are emoji subcategories; KB rows carry id and text', () => {
    // google has a picture of every emoji, so its records name every subcategory
    const subcategoryOf = new Map(loadEmojiRecords('google').map((r) => [r.image, r.subcategory]));
    for (const s of [...train.samples, ...test.samples, ...kb.samples]) assert.equal(s.label, subcategoryOf.get(basename(s.path)), s.path);
    const kbCsv = readCsv(join(dir, 'kb.csv'));
    assert.deepEqual(kbCsv.columns, ['path', 'text', 'id', 'label']);
    const grinning = kbCsv.rows.find((r) => r.values.id === 'twitter:1f600');
    assert.ok(grinning, 'twitter:1f600 in kb.csv');
    assert.equal(grinning.values.label, 'face-smiling');
    assert.match(grinning.values.text, /^grinning face, /);
    assert.deepEqual(readCsv(join(dir, 'train.csv')).columns, ['path', 'label', 'text']);
    assert.ok(test.samples.every((t) => (t.text ?? '').length > 0));
  });

  it('a second build copies nothing and writes the same manifests', async () => {
    const before = readFileSync(join(dir, 'train.csv'), 'utf8');
    const again = await buildEmojiBenchmark(dir, { quiet: true });
    assert.equal(again.copied, 0);
    assert.equal(again.reused, 3768 + 1911 + 1911);
    assert.equal(readFileSync(join(dir, 'train.csv'), 'utf8'), before);
  });

  it('retformer data emoji reports the split and reuses the pictures', async () => {
    const run = await runDataCli(['emoji', '--out', dir]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /train 3768 \(apple\+facebook\), test 1911 \(google\), kb 1911 \(twitter\), 99 classes/);
    assert.match(run.stdout, /0 pictures copied, 7590 already there/);
  });
});

describe('emoji benchmark options', () => {
  it('emojiText lower-cases the name, turns underscores into spaces and drops duplicates', () => {
    assert.equal(emojiText('GRINNING FACE', ['grinning_face', 'face', 'smile', 'Face', 'happy_face']), 'grinning face, face, smile, happy face');
  });

  it('refuses overlapping vendor sets and unknown vendors in one line', async () => {
    await assert.rejects(
      buildEmojiBenchmark(join(tmp.dir, 'bad'), { trainVendors: ['apple', 'google'], quiet: true }),
      (e: unknown) => e instanceof RetformerError && /"google" is in both --train-vendors and --test-vendors/.test(e.message),
    );
    const run = await runDataCli(['emoji', '--out', join(tmp.dir, 'bad2'), '--kb-vendors', 'samsung']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /^retformer: --kb-vendors: .*\n$/);
  });
});
