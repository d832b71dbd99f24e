import assert from 'node:assert/strict';
import { readdirSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ClipRetrievalWriter } from '../src/kb/interop/clip-retrieval-writer.ts';
import { type ClipRetrievalScan, readClipRetrievalPairs, scanClipRetrieval } from '../src/kb/interop/clip-retrieval.ts';
import { halfToFloat, floatToHalf } from '../src/util/half.ts';
import { NpyReader, NpyWriter } from '../src/kb/interop/npy.ts';
import type { EmbeddedPair } from '../src/kb/types.ts';
import { RetformerError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';
import { unitRows, writeClipFixture } from './helpers/clip-fixture.ts';
import { removeTempDirs, tempDir } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const DIM = 8;

async function readAll(scan: ClipRetrievalScan, normalise = false): Promise<{ pairs: EmbeddedPair[]; where: string[] }> {
  const pairs: EmbeddedPair[] = [];
  const where: string[] = [];
  for await (const b of readClipRetrievalPairs(scan, { batchSize: 2, normalise })) {
    b.pairs.forEach((p, i) => {
      pairs.push(p);
      where.push(b.locate(i));
    });
  }
  return { pairs, where };
}

async function expectError(dir: string, pattern: RegExp, read = false): Promise<void> {
  await assert.rejects(
    async () => {
      const scan = await scanClipRetrieval(dir);
      if (read) await readAll(scan);
    },
    (err: Error) => {
      assert.ok(err instanceof RetformerError, `a user error, got ${err.stack}`);
      assert.ok(!err.message.includes('\n'), 'one line');
      assert.match(err.message, pattern);
      return true;
    },
  );
}

/** Overwrite one .npy of a fixture with other rows. */
function writeNpy(path: string, rows: Float32Array, dim: number, dtype: 'f2' | 'f4' = 'f4'): void {
  const w = new NpyWriter(path, dtype, rows.length / dim, dim);
  w.append(rows);
  w.close();
}

test('a folder of three parts reads back in global row order: vectors, caption, image_path, label, extras, ids from the row order', async () => {
  const dir = tempDir('retformer-clip-');
  const fx = await writeClipFixture(dir, { n: 13, dim: DIM, partSize: 5, seed: 1 });
  assert.deepEqual(readdirSync(join(dir, 'metadata')), ['metadata_0000.parquet', 'metadata_0001.parquet', 'metadata_0002.parquet']);
  const scan = await scanClipRetrieval(dir);
  assert.deepEqual([scan.rows, scan.dim, scan.dtype, scan.parts.map((p) => p.rows)], [13, DIM, 'f4', [5, 5, 3]]);
  assert.deepEqual(scan.columns.sort(), ['caption', 'image_path', 'label', 'nsfw', 'note', 'score', 'tags', 'url', 'width'].sort());
  const { pairs, where } = await readAll(scan);
  assert.equal(pairs.length, 13);
  pairs.forEach((p, i) => {
    assert.deepEqual(p.meta, fx.metas[i], `row ${i}`);
    assert.deepEqual(p.imageVector, fx.image.subarray(i * DIM, (i + 1) * DIM));
    assert.deepEqual(p.textVector, fx.text.subarray(i * DIM, (i + 1) * DIM));
  });
  assert.equal(pairs[7].meta.id, '7', 'id = global row number without an id column');
  assert.equal(where[7], join(dir, 'metadata', 'metadata_0001.parquet:3'));
});

test('an id column is used; f16 files are widened exactly', async () => {
  const dir = tempDir('retformer-clip-');
  const fx = await writeClipFixture(dir, { n: 6, dim: DIM, partSize: 4, seed: 2, dtype: 'f2', ids: true });
  const scan = await scanClipRetrieval(dir);
  assert.equal(scan.dtype, 'f2');
  const { pairs } = await readAll(scan);
  assert.deepEqual(
    pairs.map((p) => p.meta.id),
    fx.metas.map((m) => m.id),
  );
  assert.ok(pairs[0].meta.id.startsWith('pair-'));
  const rounded = halfToFloat(floatToHalf(fx.image));
  pairs.forEach((p, i) => {
    assert.deepEqual(p.imageVector, rounded.subarray(i * DIM, (i + 1) * DIM));
  });
});

test('parts are taken in numeric order of N, whatever the padding', async () => {
  const dir = tempDir('retformer-clip-');
  const fx = await writeClipFixture(dir, { n: 6, dim: DIM, partSize: 3, seed: 3 });
  // part 0000 becomes 10, part 0001 becomes 2: lexically "10" < "2", numerically 2 < 10
  for (const [folder, stem, ext] of [
    ['img_emb', 'img_emb', 'npy'],
    ['text_emb', 'text_emb', 'npy'],
    ['metadata', 'metadata', 'parquet'],
  ]) {
    renameSync(join(dir, folder, `${stem}_0000.${ext}`), join(dir, folder, `${stem}_10.${ext}`));
    renameSync(join(dir, folder, `${stem}_0001.${ext}`), join(dir, folder, `${stem}_2.${ext}`));
  }
  const scan = await scanClipRetrieval(dir);
  assert.deepEqual(
    scan.parts.map((p) => p.n),
    [2, 10],
  );
  const { pairs } = await readAll(scan);
  // ids follow the new global order: the old rows 3..5 first
  assert.deepEqual(
    pairs.map((p) => p.meta.text),
    [3, 4, 5, 0, 1, 2].map((i) => fx.metas[i].text),
  );
  assert.deepEqual(
    pairs.map((p) => p.meta.id),
    ['0', '1', '2', '3', '4', '5'],
  );
});

test('structural surprises fail before any row is read: missing file, row counts, dimension, mixed dtype, no caption', async () => {
  const rng = new Rng(9);
  const fresh = async () => {
    const dir = tempDir('retformer-clip-');
    await writeClipFixture(dir, { n: 10, dim: DIM, partSize: 5, seed: 4 });
    return dir;
  };
  let dir = await fresh();
  unlinkSync(join(dir, 'metadata', 'metadata_0001.parquet'));
  await expectError(dir, /metadata_1\.parquet: missing \(part 1 has img_emb\/img_emb_0001\.npy\)/);

  dir = await fresh();
  writeNpy(join(dir, 'text_emb', 'text_emb_0001.npy'), unitRows(4, DIM, rng), DIM);
  await expectError(dir, /text_emb_0001\.npy: 4 rows, but .*img_emb_0001\.npy has 5 \(row counts must match across the three files of part 1\)/);

  dir = await fresh();
  for (const f of ['img_emb/img_emb_0001.npy', 'text_emb/text_emb_0001.npy']) writeNpy(join(dir, f), unitRows(6, DIM, rng), DIM);
  await expectError(dir, /metadata_0001\.parquet: 5 rows, but .*img_emb_0001\.npy has 6 \(row counts must match/);

  dir = await fresh();
  writeNpy(join(dir, 'img_emb', 'img_emb_0001.npy'), unitRows(5, DIM + 1, rng), DIM + 1);
  await expectError(dir, /img_emb_0001\.npy: dimension 9, but .* has 8/);

  dir = await fresh();
  writeNpy(join(dir, 'text_emb', 'text_emb_0001.npy'), unitRows(5, DIM, rng), DIM, 'f2');
  await expectError(dir, /text_emb_0001\.npy: dtype <f2, but .*img_emb_0000\.npy is <f4 \(mixed dtypes/);

  dir = tempDir('retformer-clip-');
  const w = new ClipRetrievalWriter(dir, { dim: DIM, dtype: 'f4', partSize: 4, totalRows: 2, label: false, extras: [] });
  await w.append(
    [
      { id: 'a', text: 'x', source: 's' },
      { id: 'b', text: 'y', source: 's' },
    ],
    unitRows(2, DIM, rng),
    unitRows(2, DIM, rng),
  );
  await w.close();
  const { ParquetWriter, fileWriter, schemaFromColumnData } = await import('hyparquet-writer');
  const meta = join(dir, 'metadata', 'metadata_0000.parquet');
  const columnData = [{ name: 'image_path', data: ['p', 'q'], type: 'STRING' as const }];
  const pw = new ParquetWriter({ writer: fileWriter(meta), schema: schemaFromColumnData({ columnData }) });
  pw.write({ columnData });
  pw.finish();
  await expectError(dir, /metadata_0000\.parquet: no "caption" column \(columns: image_path\)/);

  dir = await fresh();
  rmSync(join(dir, 'text_emb'), { recursive: true });
  await expectError(dir, /text_emb: folder not found/);
});

test('row checks name FILE:ROW: NaN, infinity, a row that is not L2-normalised (or normalised with --normalise)', async () => {
  const dir = tempDir('retformer-clip-');
  await writeClipFixture(dir, { n: 10, dim: DIM, partSize: 5, seed: 5 });
  const imgPath = join(dir, 'img_emb', 'img_emb_0001.npy');
  const good = NpyReader.open(imgPath).readRows(0, 5).slice();
  const bad = good.slice();
  bad[2 * DIM + 3] = Number.NaN; // part 1, row 3 (global row 8)
  writeNpy(imgPath, bad, DIM);
  await expectError(dir, /img_emb_0001\.npy:3: NaN at position 3 \(NaN or infinite value\)/, true);
  bad[2 * DIM + 3] = Number.POSITIVE_INFINITY;
  writeNpy(imgPath, bad, DIM);
  await expectError(dir, /img_emb_0001\.npy:3: Infinity at position 3/, true);

  const scaled = good.slice();
  for (let j = 0; j < DIM; j++) scaled[4 * DIM + j] *= 2; // part 1, row 5
  writeNpy(imgPath, scaled, DIM);
  await expectError(dir, /img_emb_0001\.npy:5: row is not L2-normalised \(norm 2\.000, tolerance ±0\.01\); pass --normalise/, true);
  const { pairs } = await readAll(await scanClipRetrieval(dir), true);
  const v = pairs[9].imageVector;
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-6, `normalised with --normalise (norm ${norm})`);
  for (let j = 0; j < DIM; j++) assert.ok(Math.abs(v[j] - good[4 * DIM + j]) < 1e-6);

  // within the tolerance (as f16 rounding leaves rows): accepted unchanged
  const nearly = good.slice();
  for (let j = 0; j < DIM; j++) nearly[j] *= 1.005;
  writeNpy(imgPath, nearly, DIM);
  const again = await readAll(await scanClipRetrieval(dir));
  assert.deepEqual(again.pairs[5].imageVector, nearly.subarray(0, DIM));

  const zero = good.slice();
  zero.fill(0, 0, DIM);
  writeNpy(imgPath, zero, DIM);
  await expectError(dir, /img_emb_0001\.npy:1: row is not L2-normalised \(norm 0\.000/, true);
});

test('numeric id and label columns become strings; a null caption is an empty text', async () => {
  const dir = tempDir('retformer-clip-');
  const rng = new Rng(21);
  const w = new ClipRetrievalWriter(dir, { dim: DIM, dtype: 'f4', partSize: 3, totalRows: 3, label: false, extras: [], idColumn: false });
  await w.append(
    [0, 1, 2].map((i) => ({ id: String(i), text: `t${i}`, source: `s${i}` })),
    unitRows(3, DIM, rng),
    unitRows(3, DIM, rng),
  );
  await w.close();
  const { ParquetWriter, fileWriter, schemaFromColumnData } = await import('hyparquet-writer');
  const columnData = [
    { name: 'id', data: [10n, 11n, 12n], type: 'INT64' as const },
    { name: 'caption', data: ['a', null, 'c'], type: 'STRING' as const, nullable: true },
    { name: 'label', data: [3n, null, 5n], type: 'INT64' as const, nullable: true },
  ];
  const pw = new ParquetWriter({ writer: fileWriter(join(dir, 'metadata', 'metadata_0000.parquet')), schema: schemaFromColumnData({ columnData }) });
  pw.write({ columnData });
  pw.finish();
  const { pairs } = await readAll(await scanClipRetrieval(dir));
  assert.deepEqual(
    pairs.map((p) => p.meta),
    [
      { id: '10', text: 'a', source: '', label: '3' },
      { id: '11', text: '', source: '' },
      { id: '12', text: 'c', source: '', label: '5' },
    ],
  );
});
