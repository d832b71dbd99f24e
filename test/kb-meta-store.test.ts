import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MetaStore, type MetaStoreLimits } from '../src/kb/storage.ts';
import type { PairMeta } from '../src/kb/types.ts';
import { removeTempDirs, tempDir } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

/** A metadata file of `rows` lines and its offset index, written as the folder backend writes them. */
function writeMeta(dir: string, rows: number): { meta: string; idx: string; bytes: number; lines: PairMeta[] } {
  const lines: PairMeta[] = Array.from({ length: rows }, (_, r) => ({ id: `p${r}`, text: `text ${r}`, source: `img/${r}.png`, label: `c${r % 7}` }));
  const encoded = lines.map((m) => Buffer.from(`${JSON.stringify(m)}\n`));
  const ends = Buffer.alloc(rows * 8);
  let end = 0;
  encoded.forEach((b, r) => {
    end += b.length;
    ends.writeBigUInt64LE(BigInt(end), r * 8);
  });
  const meta = join(dir, 'meta.jsonl');
  const idx = join(dir, 'meta.idx');
  writeFileSync(meta, Buffer.concat(encoded));
  writeFileSync(idx, ends);
  return { meta, idx, bytes: end, lines };
}

/** Overwrite row `row`'s line in place with a line of the same length whose text differs. */
function rewriteRow(path: string, store: MetaStore, row: number, original: PairMeta): void {
  const [start, length] = store.span(row);
  const changed = Buffer.from(`${JSON.stringify({ ...original, text: original.text.replace('text', 'TEXT') })}\n`);
  assert.equal(changed.length, length);
  const fd = openSync(path, 'r+');
  writeSync(fd, changed, 0, changed.length, start);
  closeSync(fd);
}

function open(limits: MetaStoreLimits, rows = 500) {
  const dir = tempDir();
  const files = writeMeta(dir, rows);
  const fd = openSync(files.meta, 'r');
  const idxFd = openSync(files.idx, 'r');
  const store = new MetaStore(fd, files.meta, idxFd, files.idx, rows, files.bytes, limits);
  closeSync(idxFd);
  return { store, fd, ...files };
}

test('a metadata file above the in-memory size is read into memory in the background, and rows come from memory once it lands', async () => {
  const { store, fd, meta, lines } = open({ inMemoryBytes: 0, backgroundBytes: 1 << 30 });
  try {
    assert.deepEqual(store.get(3), lines[3]); // served row by row while the read is under way
    await store.loaded;
    rewriteRow(meta, store, 42, lines[42]);
    assert.deepEqual(store.get(42), lines[42], 'row 42 is parsed from the bytes read at open, not re-read from the file');
    assert.deepEqual(store.get(499), lines[499]);
  } finally {
    store.close();
    closeSync(fd);
  }
});

test('a metadata file above the background size is read row by row', async () => {
  const { store, fd, meta, lines } = open({ inMemoryBytes: 0, backgroundBytes: 0 });
  try {
    await store.loaded;
    rewriteRow(meta, store, 42, lines[42]);
    assert.equal(store.get(42).text, 'TEXT 42', 'an unparsed row is read from the file');
    assert.deepEqual(store.get(7), lines[7]);
  } finally {
    store.close();
    closeSync(fd);
  }
});

test('close() stops a background read before it lands: rows are then never served from a stale copy', async () => {
  const { store, fd, meta, lines } = open({ inMemoryBytes: 0, backgroundBytes: 1 << 30 });
  store.close();
  await store.loaded;
  rewriteRow(meta, store, 42, lines[42]);
  assert.equal(store.get(42).text, 'TEXT 42');
  closeSync(fd);
});

test('out-of-range rows are refused on every path', async () => {
  for (const limits of [
    { inMemoryBytes: 1 << 30, backgroundBytes: 1 << 30 },
    { inMemoryBytes: 0, backgroundBytes: 1 << 30 },
    { inMemoryBytes: 0, backgroundBytes: 0 },
  ]) {
    const { store, fd } = open(limits, 20);
    await store.loaded;
    assert.throws(() => store.get(20), /row 20 out of range \(0\.\.19\)/);
    store.close();
    closeSync(fd);
  }
});
