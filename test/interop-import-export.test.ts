import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { readClipRetrievalPairs, scanClipRetrieval } from '../src/kb/interop/clip-retrieval.ts';
import { exportClipRetrieval } from '../src/kb/interop/export.ts';
import { importClipRetrieval } from '../src/kb/interop/import.ts';
import { NpyReader, NpyWriter } from '../src/kb/interop/npy.ts';
import { openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import type { KbDtype, PairMeta, WritableKnowledgeBase } from '../src/kb/types.ts';
import { RetformerError } from '../src/util/errors.ts';
import { writeClipFixture } from './helpers/clip-fixture.ts';
import { removeTempDirs, tempDir } from './helpers/kb-fixtures.ts';
import { makeTinyClipDir } from './helpers/onnx-fixture.ts';

const CLI = resolve('bin/retformer.js');
const DIM = 16; // the tiny CLIP's projection_dim
let encoderSpec: string;
let root: string;
let clipRoot: string;

before(() => {
  const clip = makeTinyClipDir();
  clipRoot = clip.root;
  encoderSpec = `onnx:${clip.modelDir}`;
  root = tempDir('retformer-interop-');
});
after(() => {
  removeTempDirs();
  rmSync(clipRoot, { recursive: true, force: true });
});

/** Every live pair of a KB, in row order: metadata and both vectors. */
async function contents(spec: string): Promise<{ metas: PairMeta[]; image: Float32Array; text: Float32Array; kb: WritableKnowledgeBase }> {
  const kb = await openKnowledgeBaseSpec(spec);
  const rows = (kb as unknown as { liveRows(): number[] }).liveRows();
  const out = { metas: await kb.meta(rows), image: await kb.vectors(rows, 'image'), text: await kb.vectors(rows, 'text'), kb };
  await kb.close();
  return out;
}

async function expectUserError(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof RetformerError, `a user error, got ${err.stack}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    assert.match(err.message, pattern);
    return true;
  });
}

for (const dtype of ['f32', 'f16'] as KbDtype[]) {
  test(`import -> export -> import is exact (${dtype} KB): ids, metadata with extra columns, vectors; the encoder is stored and checked`, async () => {
    const dir = join(root, `rt-${dtype}`);
    const src = join(dir, 'clip');
    const fx = await writeClipFixture(src, { n: 23, dim: DIM, partSize: 10, seed: 11, dtype: dtype === 'f16' ? 'f2' : 'f4' });
    const kb1 = join(dir, 'kb1');
    const m1 = await importClipRetrieval({ dir: src, out: kb1, encoderSpec, dtype, quiet: true, batchSize: 4 });
    assert.deepEqual([m1.count, m1.dim, m1.dtype, m1.encoder.kind], [23, DIM, dtype, 'onnx']);
    const c1 = await contents(kb1);
    assert.deepEqual(c1.metas, fx.metas, 'metadata kept: id from the row order, caption, image_path, label, extra columns');
    for (let i = 0; i < fx.image.length; i++) assert.ok(Math.abs(c1.image[i] - fx.image[i]) < (dtype === 'f16' ? 1e-3 : 1e-6), `image value ${i}`);

    // the encoder travels with the KB: reopened, same id; queries from another encoder are refused
    const kb = await openKnowledgeBaseSpec(kb1);
    const encoder = await kb.openEncoder();
    assert.equal(encoder.id, m1.encoder.id);
    const [hits] = await kb.search(c1.image.slice(5 * DIM, 6 * DIM), { k: 3, queryEncoderId: encoder.id });
    assert.equal(hits[0].id, '5', 'a stored vector finds its own pair first');
    await expectUserError(kb.search(c1.image.slice(0, DIM), { k: 3, queryEncoderId: 'embedded:other' }), /built with/);
    await encoder.close();
    await kb.close();

    const e1 = join(dir, 'export1');
    const r1 = await exportClipRetrieval({ kb: kb1, out: e1, partSize: 7, quiet: true });
    assert.deepEqual(r1, { rows: 23, parts: 4, dtype: dtype === 'f16' ? 'f2' : 'f4' });
    assert.deepEqual(readdirSync(join(e1, 'img_emb')), ['img_emb_0000.npy', 'img_emb_0001.npy', 'img_emb_0002.npy', 'img_emb_0003.npy']);
    const kb2 = join(dir, 'kb2');
    await importClipRetrieval({ dir: e1, out: kb2, encoderSpec, dtype, quiet: true });
    const c2 = await contents(kb2);
    assert.deepEqual(c2.metas, c1.metas, 'metadata identical after the round trip');
    assert.deepEqual(c2.image, c1.image, 'image vectors bit-identical');
    assert.deepEqual(c2.text, c1.text, 'text vectors bit-identical');
    const e2 = join(dir, 'export2');
    await exportClipRetrieval({ kb: kb2, out: e2, partSize: 7, quiet: true });
    for (const f of ['img_emb/img_emb_0002.npy', 'text_emb/text_emb_0003.npy', 'metadata/metadata_0001.parquet']) {
      assert.ok(readFileSync(join(e2, f)).equals(readFileSync(join(e1, f))), `${f} byte-identical across two exports`);
    }
  });
}

test('export after removes: only live pairs, in row order; f32 export of an f16 KB; refuses an existing folder', async () => {
  const dir = join(root, 'removes');
  const src = join(dir, 'clip');
  const fx = await writeClipFixture(src, { n: 12, dim: DIM, partSize: 5, seed: 12, ids: true });
  const kbDir = join(dir, 'kb');
  await importClipRetrieval({ dir: src, out: kbDir, encoderSpec, dtype: 'f16', quiet: true });
  const kb = await openKnowledgeBaseSpec(kbDir);
  const w = await kb.beginWrite();
  await w.remove([fx.metas[0].id, fx.metas[7].id]);
  await w.commit();
  await kb.close();
  const out = join(dir, 'export');
  assert.deepEqual(await exportClipRetrieval({ kb: kbDir, out, partSize: 100, dtype: 'f32', quiet: true }), { rows: 10, parts: 1, dtype: 'f4' });
  const pairs = [];
  for await (const b of readClipRetrievalPairs(await scanClipRetrieval(out))) pairs.push(...b.pairs);
  assert.deepEqual(
    pairs.map((p) => p.meta.id),
    fx.metas.filter((_, i) => i !== 0 && i !== 7).map((m) => m.id),
  );
  const live = await contents(kbDir);
  pairs.forEach((p, i) => {
    assert.deepEqual(p.imageVector, live.image.subarray(i * DIM, (i + 1) * DIM));
  });
  await expectUserError(exportClipRetrieval({ kb: kbDir, out, quiet: true }), /already exists/);

  // compaction keeps the imported metadata (extra columns included) and the export's content
  const before = await contents(kbDir);
  const compacting = await openKnowledgeBaseSpec(kbDir);
  await compacting.compact();
  await compacting.close();
  const after = await contents(kbDir);
  assert.deepEqual(after.metas, before.metas);
  assert.ok(after.metas.every((m) => m.extra !== undefined && typeof m.extra.url === 'string'));
  assert.deepEqual(after.image, before.image);
});

test('nothing is half-imported: a bad row in the last part, a duplicate id, a dimension the encoder does not produce', async () => {
  const dir = join(root, 'failures');
  const src = join(dir, 'clip');
  await writeClipFixture(src, { n: 12, dim: DIM, partSize: 5, seed: 13 });
  const last = join(src, 'img_emb', 'img_emb_0002.npy');
  const rows = NpyReader.open(last).readRows(0, 2).slice();
  rows[DIM + 2] = Number.NaN;
  const w = new NpyWriter(last, 'f4', 2, DIM);
  w.append(rows);
  w.close();
  const out = join(dir, 'kb');
  await expectUserError(importClipRetrieval({ dir: src, out, encoderSpec, quiet: true, batchSize: 3 }), /img_emb_0002\.npy:2: NaN at position 2/);
  assert.ok(!existsSync(out), 'no KB after a failed import');
  assert.deepEqual(
    readdirSync(dir).filter((n) => n !== 'clip'),
    [],
    'no temp folder left',
  );

  const dup = join(dir, 'dup');
  const fx = await writeClipFixture(dup, { n: 6, dim: DIM, partSize: 3, seed: 14, ids: true });
  // part 1 repeats part 0's ids
  const { ClipRetrievalWriter, ColumnTypes } = await import('../src/kb/interop/clip-retrieval-writer.ts');
  const again = join(dir, 'dup2');
  const types = new ColumnTypes();
  for (const m of fx.metas) types.add(m);
  const writer = new ClipRetrievalWriter(again, { dim: DIM, dtype: 'f4', partSize: 3, totalRows: 6, label: true, extras: types.columns() });
  await writer.append([...fx.metas.slice(0, 3), ...fx.metas.slice(0, 3)], fx.image.slice(0, 6 * DIM), fx.text.slice(0, 6 * DIM));
  await writer.close();
  await expectUserError(importClipRetrieval({ dir: again, out, encoderSpec, quiet: true }), /metadata_0001\.parquet:1: duplicate id "pair-0"/);
  assert.ok(!existsSync(out));

  const narrow = join(dir, 'narrow');
  await writeClipFixture(narrow, { n: 4, dim: 8, partSize: 4, seed: 15 });
  await expectUserError(importClipRetrieval({ dir: narrow, out, encoderSpec, quiet: true }), /img_emb_0000\.npy: vectors have dimension 8, but the encoder onnx:.* produces 16/);
  await expectUserError(importClipRetrieval({ dir: narrow, out, encoderSpec: 'embedded', quiet: true }), /name that model with --encoder onnx:DIR/);
  assert.ok(!existsSync(out));
});

test('CLI: kb import and kb export print one line each; errors are one line without a stack', () => {
  const dir = join(root, 'cli');
  const src = join(dir, 'clip');
  execFileSync(process.execPath, ['--import', 'tsx', '-e', `import('${resolve('test/helpers/clip-fixture.ts')}').then(m => m.writeClipFixture(${JSON.stringify(src)}, { n: 9, dim: ${DIM}, partSize: 4, seed: 16 }))`]);
  const kbDir = join(dir, 'kb');
  const out = execFileSync(process.execPath, [CLI, 'kb', 'import', '--clip-retrieval', src, '--out', kbDir, '--encoder', encoderSpec, '--dtype', 'f16', '--quiet'], { encoding: 'utf8' });
  assert.match(out, /^imported .* into .*kb: 9 pairs, dim 16, f16, encoder onnx/);
  const exp = execFileSync(process.execPath, [CLI, 'kb', 'export', '--kb', kbDir, '--clip-retrieval', join(dir, 'out'), '--part-size', '5', '--quiet'], { encoding: 'utf8' });
  assert.match(exp, /^exported 9 pairs of .* to .*out: 2 part\(s\), <f2\n$/);
  let stderr = '';
  try {
    execFileSync(process.execPath, [CLI, 'kb', 'import', '--clip-retrieval', join(dir, 'nowhere'), '--out', join(dir, 'kb2'), '--encoder', encoderSpec], { encoding: 'utf8', stdio: 'pipe' });
    assert.fail('should fail');
  } catch (err) {
    stderr = String((err as { stderr: string }).stderr);
  }
  assert.match(stderr, /nowhere: folder not found/);
  assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
});
