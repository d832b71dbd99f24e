import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createEncoder } from '../src/encoders/registry.ts';
import { encoderState } from '../src/kb/build.ts';
import { FileKnowledgeBase } from '../src/kb/file-kb.ts';
import { connectivityFor, DEFAULT_EF_STEPS, DEFAULT_EF_STEPS_M32, DEFAULT_INDEX_PARAMS, defaultSearchEf, type FileKbManifest, LARGE_KB_ROWS } from '../src/kb/format.ts';
import { newHnswIndex } from '../src/kb/hnsw.ts';
import { layOutIndexFile } from '../src/kb/hnsw-layout.ts';
import { createKnowledgeBase, openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import type { KbCreateOptions, WritableKnowledgeBase, WriteProgress } from '../src/kb/types.ts';
import { conformanceDir, conformancePairs, removeConformanceDirs } from './helpers/kb-conformance.ts';

after(removeConformanceDirs);

let create: Omit<KbCreateOptions, 'dtype'>;
before(async () => {
  const encoder = await createEncoder({ kind: 'pixels' });
  const state = await encoderState(encoder);
  await encoder.close();
  create = { encoder: state.descriptor, encoderChecksum: state.checksum, encoderFiles: state.files, dim: encoder.dim };
});

/** Keys an index file holds, checked against 0..rows-1 (plus a few past the end). */
function indexKeys(file: string, dim: number, dtype: 'f16' | 'i8', rows: number): { size: number; missing: number[]; extra: number[] } {
  const index = newHnswIndex(dim, DEFAULT_INDEX_PARAMS, dtype);
  index.load(file);
  const missing: number[] = [];
  for (let r = 0; r < rows; r++) if (!index.contains(BigInt(r))) missing.push(r);
  const extra: number[] = [];
  for (let r = rows; r < rows + 20; r++) if (index.contains(BigInt(r))) extra.push(r);
  return { size: index.size(), missing, extra };
}

const indexFiles = (dir: string) => readdirSync(dir).filter((n) => n.includes('.usearch') || n.includes('index')).sort();

for (const dtype of ['f16', 'i8'] as const) {
  test(`${dtype}: append() leaves the indexes alone; commit() indexes exactly the committed rows, image then text, with progress`, async () => {
    const spec = join(conformanceDir(), 'kb');
    const kb = (await createKnowledgeBase(spec, { ...create, dtype })) as WritableKnowledgeBase;
    const first = await kb.beginWrite({ allowNewLabels: true });
    await first.append(conformancePairs(120, 1));
    await first.commit();
    const dim = kb.dim;
    const m1 = (kb as FileKnowledgeBase).manifest;
    const committedIndex = join(spec, m1.folder.files.imageIndex);
    const indexBytes = readFileSync(committedIndex);
    const filesBefore = indexFiles(spec);

    const added = conformancePairs(90, 2, 'n');
    const events: WriteProgress[] = [];
    const w = await kb.beginWrite({ allowNewLabels: true, onProgress: (p) => events.push({ ...p }) });
    // append() does not even open the indexes: with both committed index files moved away, it still succeeds
    const moved = [m1.folder.files.imageIndex, m1.folder.files.textIndex];
    for (const f of moved) renameSync(join(spec, f), join(spec, `${f}.away`));
    await w.append(added.slice(0, 45));
    await w.append(added.slice(45));
    for (const f of moved) renameSync(join(spec, `${f}.away`), join(spec, f));

    // appended but not committed: a reader neither counts nor finds the new pairs, and no index file changed or appeared
    const reader = await FileKnowledgeBase.open(spec);
    assert.equal(reader.size, 120);
    const [found] = await reader.search(added[0].imageVector, { k: 5, queryEncoderId: reader.encoderId });
    assert.ok(found.every((nb) => nb.row < 120), 'an uncommitted pair is not searchable');
    await reader.close();
    assert.deepEqual(indexFiles(spec), filesBefore, 'append() wrote no index file');
    assert.ok(readFileSync(committedIndex).equals(indexBytes), 'the committed index file is untouched');
    assert.equal(events.length, 0, 'append() reports no indexing');

    await w.commit();
    const m2 = (kb as FileKnowledgeBase).manifest;
    assert.equal(m2.folder.rows, 210);
    assert.equal(m2.folder.index.layout, 'locality', 'the manifest records the layout');
    for (const file of [m2.folder.files.imageIndex, m2.folder.files.textIndex]) {
      const keys = indexKeys(join(spec, file), dim, dtype, 210);
      assert.equal(keys.size, 210, `${file} holds every committed row once`);
      assert.deepEqual(keys.missing, []);
      assert.deepEqual(keys.extra, []);
      // the commit laid the index out for locality: laying out a copy again moves nothing
      const copy = join(conformanceDir(), `copy-${file}`);
      copyFileSync(join(spec, file), copy);
      assert.deepEqual(layOutIndexFile(copy).moved, 0, `${file} is laid out`);
    }
    // each added pair is found at its own row, through both modalities
    for (const [i, p] of added.entries()) {
      if (i % 15 !== 0) continue;
      const [img] = await kb.search(p.imageVector, { k: 1, queryEncoderId: kb.encoderId, modality: 'image' });
      const [txt] = await kb.search(p.textVector, { k: 1, queryEncoderId: kb.encoderId, modality: 'text' });
      assert.equal(img[0].id, p.meta.id);
      assert.equal(txt[0].id, p.meta.id);
    }
    // progress: indexing the 90 new rows of the image index, laying out all 210 of its rows, then the same for text
    const phases = [...new Set(events.map((e) => e.phase))];
    assert.deepEqual(phases, ['indexing image', 'laying out image', 'indexing text', 'laying out text']);
    for (const phase of phases) {
      const of = events.filter((e) => e.phase === phase);
      const total = phase.startsWith('indexing') ? 90 : 210;
      assert.equal(of[0].done, 0, phase);
      assert.equal(of.at(-1)?.done, total, phase);
      assert.ok(of.every((e, i) => e.total === total && (i === 0 || e.done >= of[i - 1].done)), `${phase}: totals and a rising count`);
    }
    const lastImage = events.map((e) => e.phase).lastIndexOf('indexing image');
    assert.ok(lastImage < events.findIndex((e) => e.phase === 'indexing text'), 'one index after the other');

    // a remove-only commit builds no index
    const removes: WriteProgress[] = [];
    const r = await kb.beginWrite({ onProgress: (p) => removes.push(p) });
    await r.remove(['n3']);
    await r.commit();
    assert.equal(removes.length, 0);
    await kb.close();
  });
}

test('an aborted write leaves the committed index files byte for byte', async () => {
  const spec = join(conformanceDir(), 'kb');
  const kb = await createKnowledgeBase(spec, { ...create, dtype: 'f16' });
  await (async () => {
    const w = await kb.beginWrite({ allowNewLabels: true });
    await w.append(conformancePairs(40, 3));
    await w.commit();
  })();
  const m = (kb as FileKnowledgeBase).manifest;
  const before = [m.folder.files.imageIndex, m.folder.files.textIndex].map((f) => readFileSync(join(spec, f)));
  const w = await kb.beginWrite({ allowNewLabels: true });
  await w.append(conformancePairs(30, 4, 'x'));
  await w.abort();
  const after = [m.folder.files.imageIndex, m.folder.files.textIndex].map((f) => readFileSync(join(spec, f)));
  assert.ok(before.every((b, i) => b.equals(after[i])));
  const reopened = await FileKnowledgeBase.open(spec);
  assert.equal(reopened.size, 40);
  assert.equal(reopened.rows, 40);
  await reopened.close();
  await kb.close();
});

test('the default ef grows with the indexed rows, as documented, and never drops below the manifest ef', () => {
  assert.deepEqual(
    [1, 50_000, 250_000, 250_001, 500_000, 1_000_000, 1_000_001, 50_000_000].map((rows) => defaultSearchEf(rows)),
    [96, 96, 96, 192, 192, 256, 384, 384],
  );
  assert.equal(defaultSearchEf(10, 300), 300, 'a KB whose manifest asks for a wider search keeps it');
  assert.equal(defaultSearchEf(600_000, 64), 256);
  for (const steps of [DEFAULT_EF_STEPS, DEFAULT_EF_STEPS_M32]) {
    const efs = steps.map((s) => s.ef);
    assert.deepEqual(efs, [...efs].sort((a, b) => a - b), 'steps never narrow the search');
  }
});

test('M: 16 for a KB created small, 32 for one created with more than 250k pairs, or as asked', () => {
  assert.equal(DEFAULT_INDEX_PARAMS.connectivity, 16);
  assert.deepEqual(
    [undefined, 5_000, LARGE_KB_ROWS, LARGE_KB_ROWS + 1, 1_000_000].map((expectedRows) => connectivityFor({ expectedRows })),
    [16, 16, 16, 32, 32],
  );
  assert.equal(connectivityFor({ expectedRows: 1_000_000, connectivity: 24 }), 24);
  assert.throws(() => connectivityFor({ connectivity: 1 }), /must be an integer in 2\.\.128, got 1/);
});

test('an M = 32 graph (large KBs) gets its own, narrower steps; M = 16 KBs keep theirs', () => {
  assert.deepEqual(
    [1, 250_000, 250_001, 500_000, 1_000_000, 1_000_001].map((rows) => defaultSearchEf(rows, 96, 32)),
    [96, 96, 128, 128, 128, 192],
  );
  assert.deepEqual(
    [250_001, 1_000_000].map((rows) => defaultSearchEf(rows, 96, 16)),
    [192, 256],
    'a KB built with M = 16 searches as before',
  );
  assert.equal(defaultSearchEf(1_000_000, 300, 32), 300, 'the manifest ef still wins when wider');
  assert.deepEqual(
    [5_000, 250_000, 1_000_000].map((rows) => defaultSearchEf(rows, 96, 32, 'i8')),
    [96, 96, 256],
    'a large i8 KB searches twice as wide (its re-rank needs the candidates)',
  );
  assert.equal(defaultSearchEf(1_000_000, 96, 32, 'f16'), 128);
  for (const rows of [1, 250_000, 500_000, 1_000_000, 5_000_000]) assert.ok(defaultSearchEf(rows, 96, 32) <= defaultSearchEf(rows, 96, 16), 'never wider than the M = 16 step');
});

test('kb.search uses the default ef for its rows, and an explicit ef wins', async () => {
  const spec = join(conformanceDir(), 'kb');
  const kb = (await createKnowledgeBase(spec, { ...create, dtype: 'f16' })) as FileKnowledgeBase;
  const w = await kb.beginWrite({ allowNewLabels: true });
  await w.append(conformancePairs(50, 5));
  await w.commit();
  assert.equal(kb.manifest.folder.index.connectivity, 16, 'a KB created with no size hint is built with M = 16');
  assert.equal(kb.defaultEf, defaultSearchEf(50, 96, 16));
  const q = conformancePairs(1, 6)[0].imageVector;
  await kb.search(q, { k: 3, queryEncoderId: kb.encoderId });
  await kb.search(q, { k: 3, queryEncoderId: kb.encoderId, ef: 40 });
  // one viewed index per (modality, ef): the default search opened the one at defaultEf
  const opened = [...(kb as unknown as { gen: { indexes: Map<string, unknown> } }).gen.indexes.keys()].sort();
  assert.deepEqual(opened, ['image:40', `image:${kb.defaultEf}`].sort());
  // the default follows the connectivity the manifest records (an M = 16 KB keeps its wider steps)
  const folder = (kb as unknown as { gen: { manifest: FileKbManifest } }).gen.manifest.folder;
  folder.rows = 600_000;
  assert.equal(kb.defaultEf, 256);
  folder.index = { ...folder.index, connectivity: 32 };
  assert.equal(kb.defaultEf, 128);
  await kb.close();
});

test('a KB created for more than 250k pairs is built with M = 32, and searches find what it holds', async () => {
  const spec = join(conformanceDir(), 'kb-large');
  const kb = (await createKnowledgeBase(spec, { ...create, dtype: 'f16', expectedRows: 300_000 })) as FileKnowledgeBase;
  const w = await kb.beginWrite({ allowNewLabels: true });
  const pairs = conformancePairs(60, 7);
  await w.append(pairs);
  await w.commit();
  assert.equal(kb.manifest.folder.index.connectivity, 32);
  const reopened = (await openKnowledgeBaseSpec(spec)) as FileKnowledgeBase;
  assert.equal(reopened.manifest.folder.index.connectivity, 32, 'recorded in the manifest');
  const [found] = await reopened.search(pairs[10].imageVector, { k: 1, queryEncoderId: reopened.encoderId });
  assert.equal(found[0].id, pairs[10].meta.id);
  await reopened.close();
  await kb.close();
});

test('compact with another connectivity rebuilds both graphs with that M, records it, and keeps the answers', async () => {
  const spec = join(conformanceDir(), 'kb-reshape');
  const kb = (await createKnowledgeBase(spec, { ...create, dtype: 'f16' })) as FileKnowledgeBase;
  const w = await kb.beginWrite({ allowNewLabels: true });
  const pairs = conformancePairs(80, 9);
  await w.append(pairs);
  await w.commit();
  const q = pairs[33].imageVector;
  const ids = async () => (await kb.search(q, { k: 5, queryEncoderId: kb.encoderId, ef: 200 }))[0].map((nb) => nb.id);
  const before = await ids();
  assert.equal(kb.manifest.folder.index.connectivity, 16);
  await assert.rejects(kb.compact({ connectivity: 1 }), /must be an integer in 2\.\.128, got 1/);
  assert.equal(kb.manifest.generation, 1, 'a refused M changes nothing');
  await kb.compact({ connectivity: 32 });
  const m = kb.manifest;
  assert.equal(m.folder.index.connectivity, 32);
  assert.equal(kb.defaultEf, defaultSearchEf(80, 96, 32));
  for (const file of [m.folder.files.imageIndex, m.folder.files.textIndex]) {
    const index = newHnswIndex(m.dim, m.folder.index, m.dtype);
    index.view(join(spec, file));
    assert.equal(index.connectivity(), 32, `${file} is an M = 32 graph`);
  }
  assert.deepEqual(await ids(), before, 'an exhaustive-width search finds the same pairs');
  const reopened = (await openKnowledgeBaseSpec(spec)) as FileKnowledgeBase;
  assert.equal(reopened.manifest.folder.index.connectivity, 32, 'recorded in the manifest');
  await reopened.close();
  await kb.close();
});

test("a reader's refresh after another process's add reads only the added rows' metadata; after compaction, all of it", async () => {
  const spec = join(conformanceDir(), 'kb-refresh');
  const writer = (await createKnowledgeBase(spec, { ...create, dtype: 'f16' })) as FileKnowledgeBase;
  const first = conformancePairs(120, 21);
  let w = await writer.beginWrite({ allowNewLabels: true });
  await w.append(first);
  await w.commit();
  const reader = (await openKnowledgeBaseSpec(spec)) as FileKnowledgeBase;
  const metaOf = (kb: FileKnowledgeBase) => (kb as unknown as { gen: { meta: { bytesRead: number; loaded: Promise<void> } } }).gen.meta;
  const metaBytes = (kb: FileKnowledgeBase) => kb.manifest.folder.metaBytes;
  await metaOf(reader).loaded;
  const before = metaBytes(reader);
  const more = conformancePairs(7, 22).map((p, i) => ({ ...p, meta: { ...p.meta, id: `added-${i}` } }));
  w = await writer.beginWrite({ allowNewLabels: true });
  await w.append(more);
  await w.commit();
  await reader.refresh();
  await metaOf(reader).loaded;
  assert.equal(reader.manifest.folder.rows, 127);
  assert.equal(metaOf(reader).bytesRead, 7 * 8 + (metaBytes(reader) - before), 'offsets and lines of the 7 added rows only');
  assert.deepEqual((await reader.meta([0, 119, 120, 126])).map((m) => m.id), [first[0].meta.id, first[119].meta.id, 'added-0', 'added-6']);
  // compaction writes new files: nothing to take over
  await writer.remove(['added-3']);
  await writer.compact();
  await reader.refresh();
  await metaOf(reader).loaded;
  assert.equal(metaOf(reader).bytesRead, 126 * 8 + metaBytes(reader), 'a compacted KB is read whole');
  assert.deepEqual((await reader.meta([122, 125])).map((m) => m.id), ['added-2', 'added-6']);
  await reader.close();
  await writer.close();
});

test('an f16 folder KB hands over its stored bits (halfVectors: exactly what vectors() decodes); other dtypes hand over none', async () => {
  const { halfToFloat } = await import('../src/util/half.ts');
  for (const dtype of ['f16', 'i8', 'f32'] as const) {
    const spec = join(conformanceDir(), `kb-half-${dtype}`);
    const kb = (await createKnowledgeBase(spec, { ...create, dtype })) as FileKnowledgeBase;
    const w = await kb.beginWrite({ allowNewLabels: true });
    await w.append(conformancePairs(12, 31));
    await w.commit();
    const rows = [7, 0, 11, 3];
    for (const modality of ['image', 'text'] as const) {
      const bits = await kb.halfVectors(rows, modality);
      if (dtype !== 'f16') assert.equal(bits, undefined, `${dtype}: no f16 bits`);
      else assert.deepEqual(halfToFloat(bits!), await kb.vectors(rows, modality), `${modality}: the same values`);
    }
    await assert.rejects(kb.halfVectors([12], 'image'), /row 12 out of range/);
    await kb.close();
  }
});
