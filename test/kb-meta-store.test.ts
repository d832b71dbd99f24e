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

/** Append `more` rows to the files writeMeta wrote (as a commit appends), returning every line. */
function appendMeta(files: { meta: string; idx: string; bytes: number; lines: PairMeta[] }, more: number): { bytes: number; lines: PairMeta[] } {
  const rows = files.lines.length;
  const added: PairMeta[] = Array.from({ length: more }, (_, i) => ({ id: `p${rows + i}`, text: `text ${rows + i}`, source: `img/${rows + i}.png` }));
  const encoded = added.map((m) => Buffer.from(`${JSON.stringify(m)}\n`));
  const ends = Buffer.alloc(more * 8);
  let end = files.bytes;
  encoded.forEach((b, i) => {
    end += b.length;
    ends.writeBigUInt64LE(BigInt(end), i * 8);
  });
  const metaFd = openSync(files.meta, 'r+');
  writeSync(metaFd, Buffer.concat(encoded), 0, end - files.bytes, files.bytes);
  closeSync(metaFd);
  const idxFd = openSync(files.idx, 'r+');
  writeSync(idxFd, ends, 0, ends.length, rows * 8);
  closeSync(idxFd);
  return { bytes: end, lines: [...files.lines, ...added] };
}

for (const [name, limits] of [
  ['in memory', { inMemoryBytes: 1 << 30, backgroundBytes: 1 << 30 }],
  ['read in the background', { inMemoryBytes: 0, backgroundBytes: 1 << 30 }],
] as const) {
  test(`a store that follows the previous one of the same file (${name}) reads only the appended rows`, async () => {
    const { store: first, fd, meta, idx, bytes, lines } = open(limits, 300);
    await first.loaded;
    assert.equal(first.bytesRead, 300 * 8 + bytes, 'the first store read the offsets and the whole file');
    const grown = appendMeta({ meta, idx, bytes, lines }, 40);
    const idxFd = openSync(idx, 'r');
    const next = new MetaStore(fd, meta, idxFd, idx, 340, grown.bytes, limits, first);
    closeSync(idxFd);
    first.close();
    await next.loaded;
    assert.equal(next.bytesRead, 40 * 8 + (grown.bytes - bytes), 'offsets and bytes of the 40 appended rows only');
    rewriteRow(meta, next, 42, lines[42]);
    assert.deepEqual(next.get(42), lines[42], 'an old row comes from the bytes the first store held');
    assert.deepEqual(next.get(0), lines[0]);
    assert.deepEqual(next.get(339), grown.lines[339]);
    assert.deepEqual(next.get(300), grown.lines[300]);
    assert.equal(next.bytesRead, 40 * 8 + (grown.bytes - bytes), 'rows served from memory');
    assert.throws(() => next.get(340), /row 340 out of range \(0\.\.339\)/);
    // many refreshes: chunks stay bounded and every row stays right
    let store = next;
    let files = { meta, idx, ...grown };
    for (let i = 0; i < 12; i++) {
      const more = appendMeta(files, 3);
      const fdIdx = openSync(idx, 'r');
      const following = new MetaStore(fd, meta, fdIdx, idx, more.lines.length, more.bytes, limits, store);
      closeSync(fdIdx);
      store.close();
      await following.loaded;
      store = following;
      files = { meta, idx, ...more };
    }
    for (const r of [0, 42, 299, 300, 339, 340, 341, files.lines.length - 1]) assert.deepEqual(store.get(r), files.lines[r], `row ${r}`);
    assert.ok((store as unknown as { chunks: unknown[] }).chunks.length <= 8, 'chunks merged');
    store.close();
    closeSync(fd);
  });
}
