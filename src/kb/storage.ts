import { closeSync, existsSync, fstatSync, ftruncateSync, fsyncSync, openSync, readdirSync, readSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError, toUserError } from '../util/errors.ts';
import { fsyncPath } from '../util/fs.ts';
import { type FileKbManifest, isGenerationFile, KB_FILES } from './format.ts';
import type { Modality, PairMeta } from './types.ts';

/** Read exactly `length` bytes at `position` (positional read; no shared file offset). */
export function preadExact(fd: number, buf: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) throw new RetformerError(`${what}: file ends before committed data (corrupt knowledge base)`);
    done += n;
  }
}

/** Write all of `buf` at `position`; a system error (full disk, ...) becomes one line naming `file`, the path behind `fd`. */
export function writeAll(fd: number, buf: Uint8Array, position: number, file?: string): void {
  let done = 0;
  try {
    while (done < buf.byteLength) done += writeSync(fd, buf, done, buf.byteLength - done, position + done);
  } catch (err) {
    throw toUserError(err, file) ?? err;
  }
}

export function vectorFileName(modality: Modality): string {
  return modality === 'image' ? KB_FILES.imageVectors : KB_FILES.textVectors;
}

/** Row-major float32 matrix file [rows, dim], read by row with positional reads. */
export class VectorFile {
  private readonly fd: number;
  private readonly rowBytes: number;
  constructor(
    readonly path: string,
    readonly dim: number,
  ) {
    this.fd = openSync(path, 'r');
    this.rowBytes = dim * 4;
  }
  /** Rows in `rows` order: [rows.length, dim]. Adjacent ascending rows are read in one call. */
  read(rows: readonly number[]): Float32Array {
    const out = new Float32Array(rows.length * this.dim);
    const bytes = new Uint8Array(out.buffer);
    let i = 0;
    while (i < rows.length) {
      let j = i + 1;
      while (j < rows.length && rows[j] === rows[j - 1] + 1) j++;
      preadExact(this.fd, bytes.subarray(i * this.rowBytes, j * this.rowBytes), rows[i] * this.rowBytes, this.path);
      i = j;
    }
    return out;
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** Up to this many bytes of meta.jsonl are held in memory; larger files are read row by row. */
const META_IN_MEMORY_BYTES = 64 * 1024 * 1024;
const META_CACHE_ROWS = 200_000;

/** Append-only metadata lines with an offset index: row r spans [end[r-1], end[r]). */
export class MetaStore {
  private readonly fd: number;
  private readonly ends: Float64Array; // [rows]
  private readonly whole?: Buffer;
  /** Parsed rows: a dense array when the whole file is in memory, a bounded map otherwise. */
  private readonly parsed?: (PairMeta | undefined)[];
  private readonly cache = new Map<number, PairMeta>();
  constructor(
    private readonly dir: string,
    readonly rows: number,
    metaBytes: number,
  ) {
    const idxPath = join(dir, KB_FILES.metaIndex);
    const idxBytes = new Uint8Array(rows * 8);
    const idxFd = openSync(idxPath, 'r');
    try {
      preadExact(idxFd, idxBytes, 0, idxPath);
    } finally {
      closeSync(idxFd);
    }
    const view = new DataView(idxBytes.buffer);
    this.ends = new Float64Array(rows);
    for (let r = 0; r < rows; r++) this.ends[r] = Number(view.getBigUint64(r * 8, true));
    this.fd = openSync(join(dir, KB_FILES.meta), 'r');
    if (metaBytes <= META_IN_MEMORY_BYTES) {
      this.whole = Buffer.alloc(metaBytes);
      preadExact(this.fd, this.whole, 0, join(dir, KB_FILES.meta));
      this.parsed = new Array(rows);
    }
  }
  get(row: number): PairMeta {
    const hit = this.parsed ? this.parsed[row] : this.cache.get(row);
    if (hit) return hit;
    if (!Number.isInteger(row) || row < 0 || row >= this.rows) throw new RetformerError(`${this.dir}: row ${row} out of range (0..${this.rows - 1})`);
    const start = row === 0 ? 0 : this.ends[row - 1];
    const end = this.ends[row];
    let text: string;
    if (this.whole) text = this.whole.toString('utf8', start, end);
    else {
      const buf = Buffer.alloc(end - start);
      preadExact(this.fd, buf, start, join(this.dir, KB_FILES.meta));
      text = buf.toString('utf8');
    }
    const meta = JSON.parse(text) as PairMeta;
    if (this.parsed) this.parsed[row] = meta;
    else {
      if (this.cache.size >= META_CACHE_ROWS) this.cache.clear();
      this.cache.set(row, meta);
    }
    return meta;
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** Is a process with this pid alive? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid holding the KB's write lock, if that process still runs. */
export function liveWriter(dir: string): number | undefined {
  const path = join(dir, KB_FILES.lock);
  if (!existsSync(path)) return undefined;
  let pid = Number.NaN;
  try {
    pid = Number(readFileSyncSafe(path).trim());
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid) ? pid : undefined;
}

function readFileSyncSafe(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, 64, 0);
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}

/** Take the single-writer lock (a `lock` file holding our pid); a lock left by a dead process is taken over. */
export function acquireWriteLock(dir: string): () => void {
  const path = join(dir, KB_FILES.lock);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, `${process.pid}\n`);
      fsyncSync(fd);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = liveWriter(dir);
      if (pid !== undefined) throw new RetformerError(`${dir}: another process (pid ${pid}) is writing this knowledge base; try again when it ends`);
      unlinkSync(path);
    }
  }
  throw new RetformerError(`${dir}: cannot take the write lock`);
}

function truncateTo(path: string, length: number): void {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size < length) throw new RetformerError(`${path}: ${size} bytes but the manifest commits ${length} (corrupt knowledge base)`);
    if (size > length) {
      ftruncateSync(fd, length);
      fsyncSync(fd);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Bring the folder back to exactly the committed state the manifest names: cut uncommitted tails
 * off the append-only files, delete index/tombstone/temp files of generations that never
 * committed or were superseded. Call only while holding the write lock.
 */
export function recoverToManifest(dir: string, manifest: FileKbManifest): void {
  const vecBytes = manifest.rows * manifest.dim * 4;
  truncateTo(join(dir, KB_FILES.imageVectors), vecBytes);
  truncateTo(join(dir, KB_FILES.textVectors), vecBytes);
  truncateTo(join(dir, KB_FILES.meta), manifest.metaBytes);
  truncateTo(join(dir, KB_FILES.metaIndex), manifest.rows * 8);
  const live = new Set([manifest.files.imageIndex, manifest.files.textIndex, manifest.files.tombstones]);
  let removedAny = false;
  for (const name of readdirSync(dir)) {
    if (isGenerationFile(name) && !live.has(name)) {
      unlinkSync(join(dir, name));
      removedAny = true;
    }
  }
  if (removedAny) fsyncPath(dir);
}
