import { closeSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import { fsyncPath, nativeWriteError, writeJsonAtomic } from '../util/fs.ts';
import { crashPoint } from './crash-point.ts';
import { type FileKbManifest, indexFileName, KB_FILES } from './format.ts';
import type { HnswIndex } from './hnsw.ts';
import { writeAll } from './storage.ts';
import type { EmbeddedPair } from './types.ts';

export interface AppendOptions {
  /** Accept labels the KB has not seen (default: refuse them as "unknown label"). */
  allowNewLabels?: boolean;
  /**
   * Threads for inserting into the HNSW indexes. 1 (default) builds the same graph on every run,
   * so searches (and everything downstream: training, kNN vote) reproduce; 0 uses every core,
   * faster for large KBs but the graph then depends on thread scheduling.
   */
  indexThreads?: number;
}

/** Says where pair i came from in error messages, e.g. "pairs.csv:12". */
export type Locate = (i: number) => string;

/**
 * Appends pairs to a KB folder as one uncommitted generation: vectors and metadata go past the
 * committed lengths, the (in-memory) indexes grow; nothing is visible until `commit()` writes the
 * new index files and atomically replaces the manifest. A crash before that leaves the old state.
 * Holds the caller's write lock for its lifetime.
 */
export class KbAppender {
  private rows: number;
  private metaBytes: number;
  private readonly labels: Set<string>;
  private readonly fds: { image: number; text: number; meta: number; metaIndex: number };
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly base: FileKbManifest,
    /** Live ids -> row, updated as pairs are appended. */
    private readonly liveIds: Map<string, number>,
    private readonly imageIndex: HnswIndex,
    private readonly textIndex: HnswIndex,
    private readonly options: AppendOptions = {},
  ) {
    this.rows = base.rows;
    this.metaBytes = base.metaBytes;
    this.labels = new Set(base.labels);
    this.fds = {
      image: openSync(join(dir, KB_FILES.imageVectors), 'r+'),
      text: openSync(join(dir, KB_FILES.textVectors), 'r+'),
      meta: openSync(join(dir, KB_FILES.meta), 'r+'),
      metaIndex: openSync(join(dir, KB_FILES.metaIndex), 'r+'),
    };
  }

  get appendedRows(): number {
    return this.rows - this.base.rows;
  }

  /** Validate a batch completely, then write it. Throws (writing nothing of the batch) on the first bad pair. */
  append(pairs: readonly EmbeddedPair[], locate: Locate = (i) => `pair ${i + 1}`): void {
    const dim = this.base.dim;
    const image = new Float32Array(pairs.length * dim); // [n, dim]
    const text = new Float32Array(pairs.length * dim); // [n, dim]
    const batchIds = new Set<string>();
    pairs.forEach((p, i) => {
      const where = locate(i);
      const { id, label } = p.meta;
      if (typeof id !== 'string' || id === '') throw new RetformerError(`${where}: empty id`);
      if (this.liveIds.has(id) || batchIds.has(id)) throw new RetformerError(`${where}: duplicate id "${id}" (ids must be unique in the knowledge base)`);
      batchIds.add(id);
      if (label !== undefined && !this.labels.has(label) && !this.options.allowNewLabels) {
        const known = this.labels.size === 0 ? 'the knowledge base has no labels' : `known: ${[...this.labels].slice(0, 8).join(', ')}${this.labels.size > 8 ? ', ...' : ''}`;
        throw new RetformerError(`${where}: unknown label "${label}" (${known}; pass --allow-new-labels to add it)`);
      }
      copyChecked(p.imageVector, image, i, dim, `${where}: image vector`);
      copyChecked(p.textVector, text, i, dim, `${where}: text vector`);
    });
    const n = pairs.length;
    if (n === 0) return;
    const rowBytes = dim * 4;
    writeAll(this.fds.image, new Uint8Array(image.buffer), this.rows * rowBytes, join(this.dir, KB_FILES.imageVectors));
    writeAll(this.fds.text, new Uint8Array(text.buffer), this.rows * rowBytes, join(this.dir, KB_FILES.textVectors));
    const lines = pairs.map((p) => Buffer.from(`${JSON.stringify(cleanMeta(p.meta))}\n`, 'utf8'));
    const ends = new DataView(new ArrayBuffer(n * 8)); // [n] u64 end offsets
    let end = this.metaBytes;
    lines.forEach((l, i) => {
      end += l.byteLength;
      ends.setBigUint64(i * 8, BigInt(end), true);
    });
    writeAll(this.fds.meta, Buffer.concat(lines), this.metaBytes, join(this.dir, KB_FILES.meta));
    writeAll(this.fds.metaIndex, new Uint8Array(ends.buffer), this.rows * 8, join(this.dir, KB_FILES.metaIndex));
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) keys[i] = BigInt(this.rows + i);
    const threads = this.options.indexThreads ?? 1;
    this.imageIndex.add(keys, image, threads);
    this.textIndex.add(keys, text, threads);
    pairs.forEach((p, i) => {
      this.liveIds.set(p.meta.id, this.rows + i);
      if (p.meta.label !== undefined) this.labels.add(p.meta.label);
    });
    const first = this.rows === this.base.rows;
    this.rows += n;
    this.metaBytes = end;
    if (first) crashPoint('add:after-first-batch');
  }

  /** Make the appended rows durable and visible: fsync data, write the new indexes, replace the manifest. */
  commit(): FileKbManifest {
    this.closeFds(true);
    crashPoint('add:before-index-save');
    const generation = this.base.generation + 1;
    const files = { ...this.base.files, imageIndex: indexFileName('image', generation), textIndex: indexFileName('text', generation) };
    for (const [index, name] of [
      [this.imageIndex, files.imageIndex],
      [this.textIndex, files.textIndex],
    ] as const) {
      const path = join(this.dir, name);
      try {
        index.save(path);
      } catch (err) {
        const mapped = nativeWriteError(path, 'usearch', err); // asks the file system before the partial file goes
        rmSync(path, { force: true });
        throw mapped;
      }
      fsyncPath(path);
    }
    crashPoint('add:before-manifest');
    const manifest: FileKbManifest = {
      ...this.base,
      generation,
      rows: this.rows,
      count: this.base.count + this.appendedRows,
      metaBytes: this.metaBytes,
      labels: [...this.labels].sort(),
      files,
      updatedAt: new Date().toISOString(),
    };
    writeJsonAtomic(join(this.dir, KB_FILES.manifest), manifest);
    crashPoint('add:after-manifest');
    return manifest;
  }

  /** Give up: the appended tail stays uncommitted (cut off on the next open). */
  abort(): void {
    this.closeFds(false);
  }

  private closeFds(sync: boolean): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of Object.values(this.fds)) {
      if (sync) fsyncSync(fd);
      closeSync(fd);
    }
  }
}

function cleanMeta(m: EmbeddedPair['meta']): EmbeddedPair['meta'] {
  return m.label === undefined ? { id: m.id, text: m.text, source: m.source } : { id: m.id, text: m.text, source: m.source, label: m.label };
}

/** Copy one vector into row i of out, refusing wrong length, NaN/Inf and zero vectors; re-normalises to unit length. */
function copyChecked(v: Float32Array, out: Float32Array, i: number, dim: number, what: string): void {
  if (!(v instanceof Float32Array) || v.length !== dim) throw new RetformerError(`${what} has ${v?.length ?? 0} values, expected ${dim} (wrong dimension)`);
  let s = 0;
  for (let j = 0; j < dim; j++) {
    const x = v[j];
    if (!Number.isFinite(x)) throw new RetformerError(`${what} contains ${x} at position ${j} (NaN or infinite value)`);
    s += x * x;
  }
  if (s === 0) throw new RetformerError(`${what} is all zeros (cannot be normalised)`);
  const inv = 1 / Math.sqrt(s);
  const off = i * dim;
  for (let j = 0; j < dim; j++) out[off + j] = v[j] * inv;
}
