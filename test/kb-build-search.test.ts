import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { addPairsCsv, buildKnowledgeBase, FileKnowledgeBase, MemoryKnowledgeBase, openKbEncoder, openKnowledgeBase, readManifest } from '../src/kb/index.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');
let dir: string;
let kbDir: string;

before(async () => {
  dir = tempDir();
  const { csv } = await writePairsFixture(dir, { n: 45, seed: 1 });
  kbDir = join(dir, 'kb');
  const m = await buildKnowledgeBase({ pairsCsv: csv, out: kbDir, encoderSpec: 'pixels', batchSize: 16, dtype: 'f32', quiet: true }); // f32: exact stored vectors and similarities
  assert.equal(m.count, 45);
});

test('build: manifest, row-aligned vectors and metadata, no temp folder left', async () => {
  const kb = await openKnowledgeBase(kbDir);
  assert.equal(kb.size, 45);
  assert.equal(kb.dim, 128);
  assert.equal(kb.encoderId, 'pixels-v1');
  assert.equal(kb.manifest.formatVersion, 2);
  assert.deepEqual(kb.manifest.labels, ['blue', 'green', 'purple', 'red', 'yellow']);
  const [m7] = await kb.meta([7]);
  assert.equal(m7.id, 'p7');
  assert.equal(m7.source, join(dir, 'images/p7.png'));
  const enc = await openKbEncoder(kbDir);
  const direct = await enc.embedImages([m7.source]);
  const stored = await kb.vectors([7], 'image');
  for (let j = 0; j < 128; j++) assert.ok(Math.abs(direct[j] - stored[j]) < 1e-6);
  const text = await kb.vectors([7, 8], 'text'); // [2, 128]
  assert.deepEqual(text.slice(0, 128), await enc.embedTexts([m7.text]));
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes('building')),
    [],
  );
  await kb.close();
});

test('search: image-to-image, image-to-text, text-to-text, exclusion, batch, agreement with exact search', async () => {
  const kb = await openKnowledgeBase(kbDir);
  const enc = await openKbEncoder(kbDir);
  const q = await enc.embedImages([join(dir, 'images/p3.png')]);
  const [img] = await kb.search(q, { k: 5, queryEncoderId: enc.id });
  assert.equal(img[0].id, 'p3');
  assert.ok(img[0].similarity > 0.999);
  assert.ok(img.every((n, i) => i === 0 || n.similarity <= img[i - 1].similarity));
  assert.equal(img[1].label, 'yellow');
  const [guarded] = await kb.search(q, { k: 5, queryEncoderId: enc.id, excludeIds: [new Set(['p3'])] });
  assert.ok(!guarded.some((n) => n.id === 'p3'));
  assert.equal(guarded.length, 5);
  const [cross] = await kb.search(q, { k: 3, modality: 'text', queryEncoderId: enc.id });
  assert.equal(cross.length, 3);
  const [txt] = await kb.search(await enc.embedTexts(['a green stripe']), { k: 3, modality: 'text', queryEncoderId: enc.id });
  assert.ok(txt.every((n) => n.text === 'a green stripe'));

  // a batch of every stored image, each excluding itself, equals exact search in memory
  const rows = Array.from({ length: 45 }, (_, i) => i);
  const all = await kb.vectors(rows, 'image');
  const metas = await kb.meta(rows);
  const mem = new MemoryKnowledgeBase(kb.manifest.encoder, metas.map((meta, i) => ({ meta, imageVector: all.subarray(i * 128, (i + 1) * 128), textVector: all.subarray(i * 128, (i + 1) * 128) })));
  const exclude = metas.map((m) => new Set([m.id]));
  const got = await kb.search(all, { k: 4, queryEncoderId: enc.id, excludeIds: exclude, ef: 256 });
  const want = await mem.search(all, { k: 4, queryEncoderId: enc.id, excludeIds: exclude });
  assert.equal(got.length, 45);
  got.forEach((list, i) => {
    assert.ok(!list.some((n) => n.id === metas[i].id));
    assert.deepEqual(
      list.map((n) => n.similarity.toFixed(4)),
      want[i].map((n) => n.similarity.toFixed(4)),
    );
  });
  await kb.close();
});

test('search: a query from another encoder is refused naming both ids', async () => {
  const kb = await openKnowledgeBase(kbDir);
  await assert.rejects(kb.search(new Float32Array(128), { k: 3, queryEncoderId: 'clip-other' }), /encoder "clip-other".*"pixels-v1"/);
  await assert.rejects(kb.search(new Float32Array(100), { k: 3, queryEncoderId: 'pixels-v1' }), /wrong dimension/);
  const mem = new MemoryKnowledgeBase({ kind: 'pixels', id: 'pixels-v1', dim: 128 });
  await assert.rejects(mem.search(new Float32Array(128), { k: 3, queryEncoderId: 'x' }), /encoder "x"/);
  await kb.close();
});

test('add and remove: new generation, old rows kept, removed ids never returned, re-add allowed', async () => {
  const work = tempDir();
  const a = await writePairsFixture(work, { n: 20, seed: 2, prefix: 'a' });
  const b = await writePairsFixture(work, { n: 10, seed: 3, prefix: 'b' });
  const k = join(work, 'kb');
  await buildKnowledgeBase({ pairsCsv: a.csv, out: k, encoderSpec: 'pixels', quiet: true });
  const before = await openKnowledgeBase(k);
  const oldVec = await before.vectors([5], 'image');
  await before.close();
  const { manifest: m, added } = await addPairsCsv(k, b.csv, { quiet: true, batchSize: 4 });
  assert.equal(m.count, 30);
  assert.equal(added, 10);
  assert.equal(m.generation, 2);
  const kb = await FileKnowledgeBase.open(k);
  assert.deepEqual(await kb.vectors([5], 'image'), oldVec);
  assert.equal((await kb.meta([25]))[0].id, 'b5');
  await kb.remove(['a3', 'b5']);
  assert.equal(kb.size, 28);
  await assert.rejects(kb.remove(['nope']), /unknown id "nope"/);
  const enc = await openKbEncoder(k);
  const q = await enc.embedImages([join(work, 'images/a3.png'), join(work, 'images/b5.png')]);
  const res = await kb.search(q, { k: 28, queryEncoderId: enc.id });
  for (const list of res) {
    assert.equal(list.length, 28);
    assert.ok(!list.some((n) => n.id === 'a3' || n.id === 'b5'));
  }
  // only the live generation's files remain
  assert.deepEqual(readdirSync(k).filter((f) => f.endsWith('.usearch')).sort(), ['image-000002.usearch', 'text-000002.usearch']);
  // a removed id may come back (new row key)
  await kb.add([{ meta: { id: 'a3', text: 'back', source: 'x', label: 'red' }, imageVector: q.slice(0, 128), textVector: q.slice(0, 128) }]);
  assert.equal(kb.size, 29);
  assert.equal(kb.rows, 31);
  const [again] = await kb.search(q.subarray(0, 128), { k: 1, queryEncoderId: enc.id });
  assert.deepEqual([again[0].id, again[0].row, again[0].text], ['a3', 30, 'back']);
  await kb.close();
});

test('CLI: build, stats --json, search --json with --exclude-id, mismatched --encoder refused', async () => {
  const work = tempDir();
  const { csv } = await writePairsFixture(work, { n: 12, seed: 4 });
  const out = join(work, 'kb');
  const run = (...args: string[]) => execFileSync('node', [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RETFORMER_QUIET: '1' } });
  run('kb', 'build', '--pairs', csv, '--encoder', 'pixels', '--out', out);
  const stats = JSON.parse(run('kb', 'stats', '--kb', out, '--json'));
  const dense = join(work, 'kb-m24');
  run('kb', 'build', '--pairs', csv, '--encoder', 'pixels', '--out', dense, '--hnsw-m', '24');
  assert.equal(JSON.parse(run('kb', 'stats', '--kb', dense, '--json')).folder.index.connectivity, 24);
  assert.equal(stats.count, 12);
  assert.equal(stats.encoder.id, 'pixels-v1');
  assert.deepEqual(stats.folder.index, { metric: 'cos', connectivity: 16, expansionAdd: 128, expansionSearch: 96, layout: 'locality' });
  assert.match(run('kb', 'stats', '--kb', out), /\nindex layout +slots in graph order \(laid out for locality\)\n/);
  assert.equal(stats.index, undefined, 'index parameters are the backend section, not the neutral manifest');
  assert.equal(stats.formatVersion, 2);
  const res = JSON.parse(run('kb', 'search', '--kb', out, '--image', join(work, 'images/p2.png'), '-k', '3', '--exclude-id', 'p2', '--json'));
  assert.equal(res.neighbours.length, 3);
  assert.ok(!res.neighbours.some((n: { id: string }) => n.id === 'p2'));
  assert.equal(res.neighbours[0].label, 'blue');
  assert.throws(
    () => run('kb', 'search', '--kb', out, '--text', 'a red square', '--encoder', 'embedded'),
    (e: { status: number; stderr: string }) => e.status !== 0 && /^retformer: .*differs from the knowledge base's encoder "pixels-v1"/.test(e.stderr),
  );
  assert.ok(existsSync(join(out, 'manifest.json')));
});

test('a format 1 KB (index parameters and files at the top level) is read as is and written as format 2 by its next commit', async () => {
  const work = tempDir();
  const a = await writePairsFixture(work, { n: 12, seed: 8, prefix: 'a' });
  const b = await writePairsFixture(work, { n: 3, seed: 9, prefix: 'b' });
  const k = join(work, 'kb');
  await buildKnowledgeBase({ pairsCsv: a.csv, out: k, encoderSpec: 'pixels', dtype: 'f32', quiet: true }); // format 1 was f32 only
  const v2 = readManifest(k);
  const { folder, kbId: _id, ...neutral } = v2;
  const v1 = { ...neutral, formatVersion: 1, rows: folder.rows, removed: folder.removed, metaBytes: folder.metaBytes, index: folder.index, files: { imageIndex: folder.files.imageIndex, textIndex: folder.files.textIndex, tombstones: null } };
  writeFileSync(join(k, 'manifest.json'), JSON.stringify(v1));
  const kb = await openKnowledgeBase(k);
  const enc = await kb.openEncoder();
  const [found] = await kb.search(await enc.embedImages([join(work, 'images/a4.png')]), { k: 1, queryEncoderId: enc.id });
  assert.equal(found[0].id, 'a4');
  await enc.close();
  await kb.close();
  const { manifest, added } = await addPairsCsv(k, b.csv, { quiet: true });
  assert.equal(added, 3);
  const onDisk = JSON.parse(readFileSync(join(k, 'manifest.json'), 'utf8'));
  assert.deepEqual([onDisk.formatVersion, onDisk.count, onDisk.folder.rows, onDisk.index], [2, 15, 15, undefined]);
  assert.equal(manifest.generation, 2);
});

test('CLI: kb compact drops removed rows, keeps ids and answers, bumps the generation; stats reports bytes per pair', async () => {
  const work = tempDir();
  const { csv } = await writePairsFixture(work, { n: 20, seed: 12 });
  const out = join(work, 'kb');
  const run = (...args: string[]) => execFileSync('node', [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RETFORMER_QUIET: '1' } });
  run('kb', 'build', '--pairs', csv, '--encoder', 'pixels', '--out', out);
  run('kb', 'remove', '--kb', out, '--id', 'p1', '--id', 'p7', '--id', 'p8');
  const search = () => JSON.parse(run('kb', 'search', '--kb', out, '--image', join(work, 'images/p9.png'), '-k', '5', '--json')).neighbours.map((n: { id: string; similarity: number }) => `${n.id}:${n.similarity.toFixed(4)}`);
  const before = search();
  // a KB written before the index layout (no 'layout' in its manifest): stats says so, compact lays it out
  const manifestFile = join(out, 'manifest.json');
  const old = JSON.parse(readFileSync(manifestFile, 'utf8'));
  delete old.folder.index.layout;
  writeFileSync(manifestFile, JSON.stringify(old));
  assert.match(run('kb', 'stats', '--kb', out), /\nindex layout +slots in insertion order \(not laid out for locality\)\n/);
  const stats0 = JSON.parse(run('kb', 'stats', '--kb', out, '--json'));
  assert.deepEqual([stats0.count, stats0.folder.rows, stats0.generation], [17, 20, 2]);
  assert.match(run('kb', 'compact', '--kb', out), /^compacted .*: 17 pairs \(3 removed rows dropped\), generation 3\n$/);
  const stats = JSON.parse(run('kb', 'stats', '--kb', out, '--json'));
  assert.deepEqual([stats.count, stats.folder.rows, stats.folder.removed, stats.folder.files.tombstones, stats.generation], [17, 17, 0, null, 3]);
  assert.equal(stats.bytesPerPair, Math.round(stats.diskBytes / 17));
  assert.deepEqual(search(), before);
  assert.match(run('kb', 'stats', '--kb', out), /bytes per pair/);
  assert.equal(stats.folder.index.layout, 'locality', 'compact lays the indexes out');
  assert.match(run('kb', 'stats', '--kb', out), /\nindex layout +slots in graph order/);
  // --hnsw-m re-shapes the graphs (a KB that grew large by adds keeps its M until then)
  assert.match(run('kb', 'compact', '--kb', out, '--hnsw-m', '24'), /^compacted .*: 17 pairs \(0 removed rows dropped\), generation 4\n$/);
  assert.equal(JSON.parse(run('kb', 'stats', '--kb', out, '--json')).folder.index.connectivity, 24);
  assert.deepEqual(search(), before);
  // an M out of range is refused before anything is written
  assert.throws(() => run('kb', 'compact', '--kb', out, '--hnsw-m', '1'), (err: { stderr: string }) => /--hnsw-m: /.test(err.stderr));
  assert.equal(JSON.parse(run('kb', 'stats', '--kb', out, '--json')).generation, 4);
});
