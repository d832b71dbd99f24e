import { closeSync, fsyncSync, openSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import { fsyncPath, writeJsonAtomic } from '../util/fs.ts';
import { encodeVectors } from './codec.ts';
import { crashPoint } from './crash-point.ts';
import { appendOnlyFiles, committedBytes, DTYPE_BYTES, type FileCheck, type FileKbManifest, fileDigestAt, indexFileName, KB_FILES, namedFiles, tombstoneFileName } from './format.ts';
import { collectDroppedIndexes, type HnswIndex } from './hnsw.ts';
import { layOutIndexFile } from './hnsw-layout.ts';
import { saveIndex, writeAll } from './io.ts';
import { VectorFile } from './storage.ts';
import type { EmbeddedPair, KbManifest, KbWriter, Modality, WriteOptions } from './types.ts';
import { writeUnitChecked } from './vector-check.ts';

/** Rows read back from a vector file and added to an index at a time. */
const INDEX_CHUNK_ROWS = 8192;

/** Says where pair i came from in error messages, e.g. "pairs.csv:12". */
export type Locate = (i: number) => string;

/** What a folder writer needs from its KB: the committed state under the lock, and what to do when done. */
export interface WriterHost {
  readonly dir: string;
  readonly base: FileKbManifest;
  readonly tombstones: ReadonlySet<number>;
  /** Live ids -> row of the committed state (the writer updates its own copy). */
  readonly liveIds: Map<string, number>;
  /** The committed index of a modality, loaded (not viewed) so that it can grow; an empty one for a new KB. */
  loadIndex(modality: 'image' | 'text'): HnswIndex;
  /** After commit (next = the new manifest) or abort (undefined): release the lock, reload. */
  finish(next: FileKbManifest | undefined): Promise<void>;
}

/**
 * One write transaction on a KB folder: appended pairs are checked and written past the committed
 * lengths of the append-only files (no index is touched); removes collect rows to tombstone.
 * `commit()` then builds each modality's index in turn (load the committed one, add the rows of
 * this transaction read back from the vector file, save it under the new generation, free it), so
 * a writer holds at most one index in memory, and only while committing. Nothing is visible until
 * the manifest is replaced atomically; a crash (or `abort()`) before that leaves the old state.
 * Holds the write lock.
 */
export class FolderWriter implements KbWriter {
  private rows: number;
  private metaBytes: number;
  private readonly labels: Set<string>;
  private fds?: { image: number; text: number; meta: number; metaIndex: number };
  private readonly removedRows = new Set<number>();
  private done = false;
  readonly pending = { added: 0, removed: 0 };

  constructor(
    private readonly host: WriterHost,
    private readonly options: WriteOptions = {},
  ) {
    this.rows = host.base.folder.rows;
    this.metaBytes = host.base.folder.metaBytes;
    this.labels = new Set(host.base.labels);
  }

  private get base(): FileKbManifest {
    return this.host.base;
  }

  private checkOpen(): void {
    if (this.done) throw new RetformerError(`${this.host.dir}: this write was already committed or aborted`);
  }

  private openFds(): { image: number; text: number; meta: number; metaIndex: number } {
    if (!this.fds) {
      const f = this.base.folder.files;
      const open = (name: string) => openSync(join(this.host.dir, name), 'r+');
      this.fds = { image: open(f.imageVectors), text: open(f.textVectors), meta: open(f.meta), metaIndex: open(f.metaIndex) };
    }
    return this.fds;
  }

  /** Validate a batch completely, then write it. Throws (writing nothing of the batch) on the first bad pair. */
  async append(pairs: readonly EmbeddedPair[], locate: Locate = (i) => `pair ${i + 1}`): Promise<void> {
    this.checkOpen();
    const dim = this.base.dim;
    const image = new Float32Array(pairs.length * dim); // [n, dim]
    const text = new Float32Array(pairs.length * dim); // [n, dim]
    const batchIds = new Set<string>();
    const live = this.host.liveIds;
    pairs.forEach((p, i) => {
      const where = locate(i);
      const { id, label } = p.meta;
      if (typeof id !== 'string' || id === '') throw new RetformerError(`${where}: empty id`);
      if (live.has(id) || batchIds.has(id)) throw new RetformerError(`${where}: duplicate id "${id}" (ids must be unique in the knowledge base)`);
      batchIds.add(id);
      if (label !== undefined && !this.labels.has(label) && !this.options.allowNewLabels) {
        const known = this.labels.size === 0 ? 'the knowledge base has no labels' : `known: ${[...this.labels].slice(0, 8).join(', ')}${this.labels.size > 8 ? ', ...' : ''}`;
        throw new RetformerError(`${where}: unknown label "${label}" (${known}; pass --allow-new-labels to add it)`);
      }
      writeUnitChecked(p.imageVector, dim, `${where}: image vector`, image, i * dim);
      writeUnitChecked(p.textVector, dim, `${where}: text vector`, text, i * dim);
    });
    const n = pairs.length;
    if (n === 0) return;
    const fds = this.openFds();
    const rowBytes = dim * DTYPE_BYTES[this.base.dtype];
    writeAll(fds.image, encodeVectors(image, this.base.dtype, dim), this.rows * rowBytes, join(this.host.dir, this.base.folder.files.imageVectors));
    writeAll(fds.text, encodeVectors(text, this.base.dtype, dim), this.rows * rowBytes, join(this.host.dir, this.base.folder.files.textVectors));
    const lines = pairs.map((p) => Buffer.from(`${JSON.stringify(cleanMeta(p.meta))}\n`, 'utf8'));
    const ends = new DataView(new ArrayBuffer(n * 8)); // [n] u64 end offsets
    let end = this.metaBytes;
    lines.forEach((l, i) => {
      end += l.byteLength;
      ends.setBigUint64(i * 8, BigInt(end), true);
    });
    writeAll(fds.meta, Buffer.concat(lines), this.metaBytes, join(this.host.dir, this.base.folder.files.meta));
    writeAll(fds.metaIndex, new Uint8Array(ends.buffer), this.rows * 8, join(this.host.dir, this.base.folder.files.metaIndex));
    pairs.forEach((p, i) => {
      live.set(p.meta.id, this.rows + i);
      if (p.meta.label !== undefined) this.labels.add(p.meta.label);
    });
    const first = this.rows === this.base.folder.rows;
    this.rows += n;
    this.metaBytes = end;
    this.pending.added += n;
    if (first) crashPoint('add:after-first-batch');
  }

  async remove(ids: readonly string[]): Promise<void> {
    this.checkOpen();
    const rows: number[] = [];
    for (const id of ids) {
      const row = this.host.liveIds.get(id);
      if (row === undefined) throw new RetformerError(`${this.host.dir}: unknown id "${id}" (not in the knowledge base, or already removed)`);
      rows.push(row);
    }
    for (const [i, row] of rows.entries()) {
      this.host.liveIds.delete(ids[i]);
      this.removedRows.add(row);
    }
    this.pending.removed = this.removedRows.size;
  }

  /** Make the changes durable and visible: fsync data, write new index / tombstone files, replace the manifest. */
  async commit(): Promise<KbManifest> {
    this.checkOpen();
    this.done = true;
    let next: FileKbManifest | undefined;
    try {
      next = await this.writeGeneration();
    } catch (err) {
      this.closeFds(false);
      await this.host.finish(undefined);
      throw err;
    }
    await this.host.finish(next);
    return next;
  }

  private async writeGeneration(): Promise<FileKbManifest> {
    const base = this.base;
    const dir = this.host.dir;
    const appended = this.rows > base.folder.rows;
    const first = base.generation === 0;
    if (!appended && this.removedRows.size === 0 && !first) {
      this.closeFds(false);
      return base;
    }
    this.closeFds(true);
    const generation = base.generation + 1;
    const files = { ...base.folder.files };
    let index = base.folder.index;
    if (appended || first) {
      let laidOut = true;
      crashPoint('add:before-index-save');
      files.imageIndex = indexFileName('image', generation);
      files.textIndex = indexFileName('text', generation);
      for (const modality of ['image', 'text'] as const) {
        const path = join(dir, modality === 'image' ? files.imageIndex : files.textIndex);
        this.writeIndex(modality, path);
        await collectDroppedIndexes(); // the index just saved is unreferenced now: free it before the next one
        const phase = modality === 'image' ? 'laying out image' : 'laying out text';
        laidOut = layOutIndexFile(path, 'locality', (done, total) => this.options.onProgress?.({ phase, done, total })).reason === undefined && laidOut;
      }
      index = { ...index, layout: laidOut ? 'locality' : undefined };
      crashPoint('add:before-manifest');
    }
    let removed = base.folder.removed;
    if (this.removedRows.size > 0) {
      const all = [...new Set([...this.host.tombstones, ...this.removedRows])].sort((a, b) => a - b);
      removed = all.length;
      files.tombstones = tombstoneFileName(generation);
      writeJsonAtomic(join(dir, files.tombstones), all);
      crashPoint('remove:before-manifest');
    }
    const next: FileKbManifest = {
      ...base,
      formatVersion: 2,
      generation,
      count: this.rows - removed,
      labels: [...this.labels].sort(),
      updatedAt: new Date().toISOString(),
      folder: { ...base.folder, rows: this.rows, removed, metaBytes: this.metaBytes, index, files, checks: {}, previous: [] },
    };
    next.folder.checks = fileChecks(dir, next, base);
    writeManifestSwap(dir, base, next);
    crashPoint(appended || first ? 'add:after-manifest' : 'remove:after-manifest');
    deleteOlderGenerations(dir, base, next);
    return next;
  }

  /**
   * The committed index of `modality` plus this transaction's rows (read back from the fsynced
   * vector file in chunks: f16 and f32 rows decode exactly, i8 rows to their re-normalised
   * values), saved at `path`. The index is referenced only inside this call.
   */
  private writeIndex(modality: Modality, path: string): void {
    const base = this.base;
    const name = modality === 'image' ? base.folder.files.imageVectors : base.folder.files.textVectors;
    const phase = modality === 'image' ? 'indexing image' : 'indexing text';
    const from = base.folder.rows;
    const total = this.rows - from;
    const index: HnswIndex = this.host.loadIndex(modality);
    const fd = openSync(join(this.host.dir, name), 'r');
    try {
      const vectors = new VectorFile(fd, join(this.host.dir, name), base.dim, base.dtype);
      const threads = this.options.indexThreads ?? 1;
      this.options.onProgress?.({ phase, done: 0, total });
      for (let start = from; start < this.rows; start += INDEX_CHUNK_ROWS) {
        const count = Math.min(INDEX_CHUNK_ROWS, this.rows - start);
        const rows = Array.from({ length: count }, (_, i) => start + i);
        const keys = new BigUint64Array(count);
        for (let i = 0; i < count; i++) keys[i] = BigInt(start + i);
        index.add(keys, vectors.read(rows), threads); // [count, dim]
        this.options.onProgress?.({ phase, done: start + count - from, total });
      }
    } finally {
      closeSync(fd);
    }
    saveIndex(index, path);
  }

  /** Give up: the appended tail stays uncommitted (cut off by the next writer or open). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.closeFds(false);
    await this.host.finish(undefined);
  }

  private closeFds(sync: boolean): void {
    if (!this.fds) return;
    for (const fd of Object.values(this.fds)) {
      if (sync) fsyncSync(fd);
      closeSync(fd);
    }
    this.fds = undefined;
  }
}

/** Size and digest of each file `next` names; unchanged files keep the digest `base` recorded. */
export function fileChecks(dir: string, next: FileKbManifest, base?: FileKbManifest): Record<string, FileCheck> {
  const appendOnly = new Set(appendOnlyFiles(next));
  const checks: Record<string, FileCheck> = {};
  for (const name of namedFiles(next)) {
    const bytes = appendOnly.has(name) ? committedBytes(next, name) : undefined;
    const old = base?.folder.checks[name];
    if (old && base && namedFiles(base).includes(name) && (bytes === undefined || old.bytes === bytes)) {
      checks[name] = old;
      continue;
    }
    const path = join(dir, name);
    const length = bytes ?? statSync(path).size;
    checks[name] = { bytes: length, digest: fileDigestAt(path, length) };
  }
  return checks;
}


/** Keep the files of `base` that `next` no longer names (readers of the previous manifest may still open them). */
export function writeManifestSwap(dir: string, base: FileKbManifest, next: FileKbManifest, options: { keepPrevious?: boolean } = {}): void {
  const named = new Set(namedFiles(next));
  next.folder.previous = options.keepPrevious === false ? [] : namedFiles(base).filter((n) => !named.has(n));
  writeJsonAtomic(join(dir, KB_FILES.manifest), next);
}

/** After a commit: delete the files of generations before the previous one. */
export function deleteOlderGenerations(dir: string, base: FileKbManifest, next: FileKbManifest): void {
  const keep = new Set([...namedFiles(next), ...next.folder.previous]);
  let any = false;
  for (const f of base.folder.previous) {
    if (keep.has(f)) continue;
    try {
      unlinkSync(join(dir, f));
      any = true;
    } catch {
      // already gone
    }
  }
  if (any) fsyncPath(dir);
}

function cleanMeta(m: EmbeddedPair['meta']): EmbeddedPair['meta'] {
  const out: EmbeddedPair['meta'] = m.label === undefined ? { id: m.id, text: m.text, source: m.source } : { id: m.id, text: m.text, source: m.source, label: m.label };
  if (m.extra !== undefined) out.extra = m.extra; // imported metadata columns (kb import)
  return out;
}

