import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildKnowledgeBase } from '../src/kb/build.ts';
import { encodeVectors, decodeVectors } from '../src/kb/codec.ts';
import { FileKnowledgeBase } from '../src/kb/file-kb.ts';
import { DEFAULT_INDEX_PARAMS, type FileKbManifest, readManifest } from '../src/kb/format.ts';
import { type HnswIndex, newHnswIndex } from '../src/kb/hnsw.ts';
import { layOutIndexFile, linkLocality } from '../src/kb/hnsw-layout.ts';
import type { KbDtype } from '../src/kb/types.ts';
import { fileChecks } from '../src/kb/writer.ts';
import { writeJsonAtomic } from '../src/util/fs.ts';
import { Rng } from '../src/util/rng.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'retformer-layout-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
  removeTempDirs();
});

const DIM = 24;
const PARAMS = { ...DEFAULT_INDEX_PARAMS, connectivity: 6 }; // small M: hubs (level >= 2) every ~36 nodes

/** rows unit vectors around 40 centres, in random order (as imported data comes): [rows, DIM]. */
function clustered(rows: number, rng: Rng): Float32Array {
  const centres = Float32Array.from({ length: 40 * DIM }, () => rng.normal());
  const out = new Float32Array(rows * DIM);
  for (let r = 0; r < rows; r++) {
    const c = rng.int(40);
    let norm = 0;
    for (let j = 0; j < DIM; j++) {
      out[r * DIM + j] = centres[c * DIM + j] + 0.4 * rng.normal();
      norm += out[r * DIM + j] ** 2;
    }
    for (let j = 0; j < DIM; j++) out[r * DIM + j] /= Math.sqrt(norm);
  }
  return out;
}

function saved(name: string, dtype: KbDtype, vectors: Float32Array, removeKeys: number[] = []): string {
  const index = newHnswIndex(DIM, PARAMS, dtype, 64);
  const rows = vectors.length / DIM;
  index.add(BigUint64Array.from({ length: rows }, (_, i) => BigInt(i)), decodeVectors(encodeVectors(vectors, dtype, DIM), dtype, DIM), 1);
  for (const key of removeKeys) index.remove(BigInt(key));
  const path = join(dir, name);
  index.save(path);
  return path;
}

function viewed(path: string, dtype: KbDtype): HnswIndex {
  const index = newHnswIndex(DIM, PARAMS, dtype, 64);
  index.view(path);
  return index;
}

for (const dtype of ['f32', 'f16', 'i8'] as const) {
  test(`${dtype}: the laid-out index answers every query with the same keys and distances, its links are short, and laying out again changes nothing`, () => {
    const rng = new Rng(11);
    const before = saved(`plain-${dtype}.usearch`, dtype, clustered(3000, rng));
    const after = join(dir, `laid-${dtype}.usearch`);
    copyFileSync(before, after);
    const layout = layOutIndexFile(after);
    assert.equal(layout.reason, undefined);
    assert.ok(layout.moved > 2500, `moved ${layout.moved} of 3000`);
    assert.ok(layout.groups > 20, `${layout.groups} groups`);
    const localBefore = linkLocality(before, 64)!;
    const localAfter = linkLocality(after, 64)!;
    assert.ok(localAfter.median < localBefore.median, `median link span ${localAfter.median} against ${localBefore.median} in insertion order`);
    assert.ok(localAfter.near > 4 * localBefore.near, `links shorter than 64 slots: ${localAfter.near} against ${localBefore.near} in insertion order`);

    const a = viewed(before, dtype);
    const b = viewed(after, dtype);
    assert.equal(b.size(), a.size());
    const queries = clustered(100, new Rng(12));
    const ra = a.search(queries, 10, 1) as unknown as { keys: BigUint64Array; distances: Float32Array };
    const rb = b.search(queries, 10, 1) as unknown as { keys: BigUint64Array; distances: Float32Array };
    assert.deepEqual([...rb.keys], [...ra.keys]);
    assert.deepEqual([...rb.distances], [...ra.distances]);
    for (let r = 0; r < 3000; r += 97) assert.ok(b.contains(BigInt(r)), `key ${r} kept`);

    const bytes = readFileSync(after);
    assert.deepEqual(layOutIndexFile(after), { moved: 0, groups: layout.groups });
    assert.ok(readFileSync(after).equals(bytes), 'a second layout leaves the file byte for byte');
    // keys were added in order on one thread, so slots in key order are the file usearch wrote
    assert.equal(layOutIndexFile(after, 'key').moved, layout.moved);
    assert.ok(readFileSync(after).equals(readFileSync(before)), 'key order restores the original file byte for byte');
  });
}

test('an index with removed keys lays out too, and the removed keys stay removed', () => {
  const vectors = clustered(1500, new Rng(21));
  const removed = [3, 500, 1499];
  const before = saved('removed.usearch', 'f16', vectors, removed);
  const after = join(dir, 'removed-laid.usearch');
  copyFileSync(before, after);
  assert.ok(layOutIndexFile(after).moved > 0);
  const a = viewed(before, 'f16');
  const b = viewed(after, 'f16');
  for (const key of removed) assert.equal(b.contains(BigInt(key)), false, `key ${key} removed`);
  const queries = vectors.subarray(0, 40 * DIM);
  const ra = a.search(queries, 8, 1) as unknown as { keys: BigUint64Array };
  const rb = b.search(queries, 8, 1) as unknown as { keys: BigUint64Array };
  assert.deepEqual([...rb.keys], [...ra.keys]);
});

test('a file that is not a usearch index, or a cut one, is left byte for byte, with the reason', () => {
  const good = saved('cut-source.usearch', 'f16', clustered(400, new Rng(31)));
  const cases: Array<[string, Buffer, RegExp]> = [
    ['noise.usearch', Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 37) & 255)), /not a usearch index|magic/],
    ['cut.usearch', readFileSync(good).subarray(0, readFileSync(good).length - 7), /node records end/],
    ['tiny.usearch', Buffer.from([1, 2, 3]), /no vector matrix/],
  ];
  for (const [name, bytes, reason] of cases) {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    const layout = layOutIndexFile(path);
    assert.match(layout.reason ?? '', reason, name);
    assert.equal(layout.moved, 0);
    assert.ok(readFileSync(path).equals(bytes), `${name} unchanged`);
    assert.equal(linkLocality(path, 64), undefined);
  }
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
});

test('a node linking past the last slot (a corrupt index): one line naming the file and the node, the file left byte for byte, no temp file', () => {
  const rows = 300;
  const path = saved('bad-link.usearch', 'f16', clustered(rows, new Rng(41)));
  const bytes = readFileSync(path);
  // node 0's record: after the vectors [rows, DIM] f16, the 64-byte dense head, the 40-byte graph head and the levels [rows] i16
  const node0 = 8 + rows * DIM * 2 + 64 + 40 + 2 * rows;
  const corrupt = Buffer.from(bytes);
  assert.ok(corrupt.readUInt32LE(node0 + 10) > 0, 'node 0 has level-0 neighbours');
  corrupt.writeUInt32LE(rows + 5, node0 + 10 + 4); // its first neighbour's slot
  writeFileSync(path, corrupt);
  assert.throws(() => layOutIndexFile(path), (err: Error) => err.message === `${path}: node 0 links to slot ${rows + 5} of ${rows} (corrupt index)`);
  assert.ok(readFileSync(path).equals(corrupt), 'the file is unchanged');
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
});

test('an empty index (a KB created with no pairs) is already laid out', () => {
  const path = join(dir, 'empty.usearch');
  newHnswIndex(DIM, PARAMS, 'f16').save(path);
  const bytes = readFileSync(path);
  assert.deepEqual(layOutIndexFile(path), { moved: 0, groups: 0 });
  assert.ok(readFileSync(path).equals(bytes));
  assert.deepEqual(linkLocality(path, 64), { median: 0, near: 1 });
});

test('kb compact with nothing removed keeps the graphs and only lays them out: a KB written before the layout gets exactly its old index files laid out', async () => {
  const work = tempDir();
  const { csv, pairs } = await writePairsFixture(work, { n: 60, seed: 5 });
  const kbDir = join(work, 'kb');
  await buildKnowledgeBase({ pairsCsv: csv, out: kbDir, encoderSpec: 'pixels', batchSize: 16, quiet: true });
  // make it a KB from before the layout, whose graphs no rebuild would reproduce: each index built
  // again with the rows inserted last to first (slots in that order), no layout recorded
  const old = readManifest(kbDir);
  const indexes = [old.folder.files.imageIndex, old.folder.files.textIndex];
  const reader = await FileKnowledgeBase.open(kbDir);
  const rows = Array.from({ length: old.folder.rows }, (_, i) => old.folder.rows - 1 - i);
  for (const [i, modality] of (['image', 'text'] as const).entries()) {
    const index = newHnswIndex(old.dim, old.folder.index, old.dtype);
    index.add(BigUint64Array.from(rows, BigInt), await reader.vectors(rows, modality), 1);
    index.save(join(kbDir, indexes[i]));
  }
  await reader.close();
  const { layout: _layout, ...params } = old.folder.index;
  const before = { ...old, folder: { ...old.folder, index: params, checks: {} } };
  before.folder.checks = fileChecks(kbDir, before);
  writeJsonAtomic(join(kbDir, 'manifest.json'), before);
  const expected = indexes.map((name) => {
    const copy = join(dir, `expected-${name}`);
    copyFileSync(join(kbDir, name), copy);
    layOutIndexFile(copy);
    return readFileSync(copy);
  });

  const kb = await FileKnowledgeBase.open(kbDir);
  const encoder = await kb.openEncoder();
  const probes = await encoder.embedImages(pairs.slice(0, 6).map((p) => join(work, p.path)));
  const answers = async () => (await kb.search(probes, { k: 5, queryEncoderId: encoder.id })).map((list) => list.map((nb) => `${nb.id}:${nb.similarity.toFixed(5)}`));
  const answersBefore = await answers();
  const m = (await kb.compact()) as FileKbManifest;
  assert.equal(m.generation, before.generation + 1);
  assert.equal(m.folder.index.layout, 'locality');
  [m.folder.files.imageIndex, m.folder.files.textIndex].forEach((name, i) => {
    assert.notEqual(name, indexes[i], 'a new generation of index files');
    assert.ok(readFileSync(join(kbDir, name)).equals(expected[i]), `${name}: the old graph, laid out`);
  });
  assert.deepEqual(await answers(), answersBefore);
  await encoder.close();
  await kb.close();
});
