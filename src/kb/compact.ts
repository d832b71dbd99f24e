import { closeSync, copyFileSync, fsyncSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath } from '../util/fs.ts';
import { decodeVectors } from './codec.ts';
import { crashPoint } from './crash-point.ts';
import { DTYPE_BYTES, type FileKbManifest, indexFileName, metaFileNames, namedFiles, vectorsFileName } from './format.ts';
import { collectDroppedIndexes, newHnswIndex } from './hnsw.ts';
import { layOutIndexFile } from './hnsw-layout.ts';
import { saveIndex, writeAll } from './io.ts';
import type { MetaStore, VectorFile } from './storage.ts';
import type { Modality } from './types.ts';
import { deleteOlderGenerations, fileChecks, writeManifestSwap } from './writer.ts';

const CHUNK_ROWS = 4096;

/**
 * Compaction of a KB folder (caller holds the write lock): the live rows of generation G are
 * copied, in row order, into new files named by G+1 (vectors at the KB's dtype, metadata and its
 * offsets), both indexes are rebuilt over them with keys 0..count-1 (copied instead when no row
 * was removed and M stays: the keys are the same rows then) and laid out, everything is fsynced, and
 * only then the manifest is replaced (the commit point). A crash before leaves generation G
 * untouched (recovery deletes the unnamed new files); after, G+1 is complete and the old files
 * are deleted right away (disk is what compaction is for). `connectivity` rebuilds the graphs with
 * another HNSW M (a KB that grew past LARGE_KB_ROWS by adds keeps the M it was created with until
 * then); the new manifest records it.
 */
export async function compactFolder(
  dir: string,
  base: FileKbManifest,
  from: { tombstones: ReadonlySet<number>; meta: MetaStore; vectors: Record<Modality, VectorFile> },
  indexThreads: number,
  connectivity?: number,
): Promise<FileKbManifest> {
  const m: FileKbManifest = connectivity === undefined ? base : { ...base, folder: { ...base.folder, index: { ...base.folder.index, connectivity } } };
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
      writeAll(fds.image, from.vectors.image.readRaw(rows), s * rowBytes, join(dir, files.imageVectors));
      writeAll(fds.text, from.vectors.text.readRaw(rows), s * rowBytes, join(dir, files.textVectors));
      const lines = rows.map((r) => from.meta.rawLine(r));
      const ends = new DataView(new ArrayBuffer(rows.length * 8)); // [chunk] u64 end offsets
      let end = metaBytes;
      lines.forEach((l, i) => {
        end += l.byteLength;
        ends.setBigUint64(i * 8, BigInt(end), true);
      });
      writeAll(fds.meta, Buffer.concat(lines), metaBytes, join(dir, files.meta));
      writeAll(fds.metaIndex, new Uint8Array(ends.buffer), s * 8, join(dir, files.metaIndex));
      metaBytes = end;
    }
    for (const fd of Object.values(fds)) fsyncSync(fd);
  } finally {
    for (const fd of Object.values(fds)) closeSync(fd);
  }
  crashPoint('compact:after-data');

  // Nothing removed and the same M: every row keeps its number, so the committed graphs already
  // index exactly these rows under the same keys; copy them instead of inserting every row again
  // (a compaction that only lays the indexes out: 33 s at 1M, where rebuilding both graphs takes ~28 min).
  const keepGraphs = live.length === base.folder.rows && m.folder.index.connectivity === base.folder.index.connectivity;
  let laidOut = true;
  for (const modality of ['image', 'text'] as const) {
    const path = join(dir, modality === 'image' ? files.imageIndex : files.textIndex);
    if (keepGraphs) {
      copyFileSync(join(dir, modality === 'image' ? base.folder.files.imageIndex : base.folder.files.textIndex), path);
      fsyncPath(path);
    } else {
      buildIndex(path, m, live, from.vectors[modality], indexThreads);
      await collectDroppedIndexes(); // one index in memory at a time
    }
    laidOut = layOutIndexFile(path).reason === undefined && laidOut;
  }
  fsyncPath(dir);
  crashPoint('compact:before-manifest');

  const next: FileKbManifest = {
    ...m,
    formatVersion: 2,
    generation,
    count: live.length,
    updatedAt: new Date().toISOString(),
    folder: { ...m.folder, rows: live.length, removed: 0, metaBytes, index: { ...m.folder.index, layout: laidOut ? 'locality' : undefined }, files, checks: {}, previous: [] },
  };
  next.folder.checks = fileChecks(dir, next);
  writeManifestSwap(dir, base, next, { keepPrevious: false });
  crashPoint('compact:after-manifest');
  // Compaction is for reclaiming disk, so the old files go now. Readers that hold them open keep
  // reading them; one that read the old manifest but had not opened them yet re-reads the manifest.
  deleteOlderGenerations(dir, { ...m, folder: { ...m.folder, previous: [...m.folder.previous, ...namedFiles(m)] } }, next);
  return next;
}

/** An index over the `live` rows of a vector file, keyed 0..live.length-1, saved at `path` (referenced only inside this call). */
function buildIndex(path: string, m: FileKbManifest, live: readonly number[], vectors: VectorFile, indexThreads: number): void {
  const index = newHnswIndex(m.dim, m.folder.index, m.dtype);
  for (let s = 0; s < live.length; s += CHUNK_ROWS) {
    const rows = live.slice(s, s + CHUNK_ROWS);
    const chunk = decodeVectors(vectors.readRaw(rows), m.dtype, m.dim); // [chunk, dim]
    const keys = new BigUint64Array(rows.length);
    for (let i = 0; i < rows.length; i++) keys[i] = BigInt(s + i);
    index.add(keys, chunk, indexThreads);
  }
  saveIndex(index, path);
}
