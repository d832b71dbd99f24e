import { closeSync, fsyncSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath } from '../util/fs.ts';
import { decodeVectors } from './codec.ts';
import { crashPoint } from './crash-point.ts';
import { DTYPE_BYTES, type FileKbManifest, indexFileName, metaFileNames, vectorsFileName } from './format.ts';
import { newHnswIndex } from './hnsw.ts';
import { writeAll } from './io.ts';
import type { MetaStore, VectorFile } from './storage.ts';
import type { Modality } from './types.ts';
import { deleteOlderGenerations, fileChecks, writeManifestSwap } from './writer.ts';

const CHUNK_ROWS = 4096;

/**
 * Compaction of a KB folder (caller holds the write lock): the live rows of generation G are
 * copied, in row order, into new files named by G+1 (vectors at the KB's dtype, metadata and its
 * offsets), both indexes are rebuilt over them with keys 0..count-1, everything is fsynced, and
 * only then the manifest is replaced (the commit point). A crash before leaves generation G
 * untouched (recovery deletes the unnamed new files); after, G+1 is complete. The old files
 * stay as the previous generation for readers that still open it, and go at the next commit.
 */
export function compactFolder(
  dir: string,
  m: FileKbManifest,
  from: { tombstones: ReadonlySet<number>; meta: MetaStore; vectors: Record<Modality, VectorFile> },
  indexThreads: number,
): FileKbManifest {
  const generation = m.generation + 1;
  const live: number[] = [];
  for (let r = 0; r < m.folder.rows; r++) if (!from.tombstones.has(r)) live.push(r);
  const files = {
    imageVectors: vectorsFileName('image', m.dtype, generation),
    textVectors: vectorsFileName('text', m.dtype, generation),
    ...metaFileNames(generation),
    imageIndex: indexFileName('image', generation),
    textIndex: indexFileName('text', generation),
    tombstones: null,
  };
  const open = (name: string) => openSync(join(dir, name), 'w');
  const fds = { image: open(files.imageVectors), text: open(files.textVectors), meta: open(files.meta), metaIndex: open(files.metaIndex) };
  const rowBytes = m.dim * DTYPE_BYTES[m.dtype];
  let metaBytes = 0;
  try {
    for (let s = 0; s < live.length; s += CHUNK_ROWS) {
      const rows = live.slice(s, s + CHUNK_ROWS);
      writeAll(fds.image, from.vectors.image.readRaw(rows), s * rowBytes);
      writeAll(fds.text, from.vectors.text.readRaw(rows), s * rowBytes);
      const lines = rows.map((r) => from.meta.rawLine(r));
      const ends = new DataView(new ArrayBuffer(rows.length * 8)); // [chunk] u64 end offsets
      let end = metaBytes;
      lines.forEach((l, i) => {
        end += l.byteLength;
        ends.setBigUint64(i * 8, BigInt(end), true);
      });
      writeAll(fds.meta, Buffer.concat(lines), metaBytes);
      writeAll(fds.metaIndex, new Uint8Array(ends.buffer), s * 8);
      metaBytes = end;
    }
    for (const fd of Object.values(fds)) fsyncSync(fd);
  } finally {
    for (const fd of Object.values(fds)) closeSync(fd);
  }
  crashPoint('compact:after-data');

  for (const modality of ['image', 'text'] as const) {
    const index = newHnswIndex(m.dim, m.folder.index, m.dtype);
    for (let s = 0; s < live.length; s += CHUNK_ROWS) {
      const rows = live.slice(s, s + CHUNK_ROWS);
      const vectors = decodeVectors(from.vectors[modality].readRaw(rows), m.dtype, m.dim); // [chunk, dim]
      const keys = new BigUint64Array(rows.length);
      for (let i = 0; i < rows.length; i++) keys[i] = BigInt(s + i);
      index.add(keys, vectors, indexThreads);
    }
    const name = modality === 'image' ? files.imageIndex : files.textIndex;
    index.save(join(dir, name));
    fsyncPath(join(dir, name));
  }
  fsyncPath(dir);
  crashPoint('compact:before-manifest');

  const next: FileKbManifest = {
    ...m,
    formatVersion: 2,
    generation,
    count: live.length,
    updatedAt: new Date().toISOString(),
    folder: { ...m.folder, rows: live.length, removed: 0, metaBytes, files, checks: {}, previous: [] },
  };
  next.folder.checks = fileChecks(dir, next);
  writeManifestSwap(dir, m, next);
  crashPoint('compact:after-manifest');
  deleteOlderGenerations(dir, m, next);
  return next;
}
