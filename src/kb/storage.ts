import { closeSync, fstatSync, ftruncateSync, fsyncSync, openSync, read, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import { fsyncPath } from '../util/fs.ts';
import { decodeVectors } from './codec.ts';
import { appendOnlyFiles, committedBytes, DTYPE_BYTES, type FileKbManifest, isGenerationFile, KB_FILES, namedFiles, REBUILD_HINT } from './format.ts';
import { preadExact } from './io.ts';
import type { KbDtype, PairMeta } from './types.ts';

/** Row-major vector file [rows, dim] at a dtype, read by row with positional reads on an open descriptor. */
export class VectorFile {
  private readonly rowBytes: number;
  constructor(
    private readonly fd: number,
    readonly path: string,
    readonly dim: number,
    readonly dtype: KbDtype,
  ) {
    this.rowBytes = dim * DTYPE_BYTES[dtype];
  }
  /** Raw bytes of rows in `rows` order: [rows.length, rowBytes]. Adjacent ascending rows are read in one call. */
  readRaw(rows: readonly number[]): Uint8Array {
    const bytes = new Uint8Array(rows.length * this.rowBytes);
    let i = 0;
    while (i < rows.length) {
      let j = i + 1;
      while (j < rows.length && rows[j] === rows[j - 1] + 1) j++;
      preadExact(this.fd, bytes.subarray(i * this.rowBytes, j * this.rowBytes), rows[i] * this.rowBytes, this.path);
      i = j;
    }
    return bytes;
  }
  /** Rows in `rows` order as f32: [rows.length, dim]. */
  read(rows: readonly number[]): Float32Array {
    return decodeVectors(this.readRaw(rows), this.dtype, this.dim);
  }
}

/** Up to this many bytes of metadata are read at open and every parsed row is kept. */
const META_IN_MEMORY_BYTES = 64 * 1024 * 1024;
/**
 * Larger metadata files up to this size are read into memory in the background after open (a 1M
 * pair KB's 163 MiB: that much more RSS), so that a neighbour's metadata costs a JSON parse and no
 * system call: bench:predict measured 32 rows at 0.11 ms read row by row, 0.04 ms from memory.
 * Until the read lands, and for files beyond this size, rows are read one by one.
 */
const META_BACKGROUND_BYTES = 512 * 1024 * 1024;
/** Parsed rows kept when the file is not small (a bounded cache, cleared when full). */
const META_CACHE_ROWS = 200_000;
/** Bytes per read of the background load (reads are issued one after another, never on a closed store). */
const META_LOAD_CHUNK = 16 * 1024 * 1024;

export interface MetaStoreLimits {
  inMemoryBytes: number;
  backgroundBytes: number;
}

/** Append-only metadata lines with an offset index: row r spans [end[r-1], end[r]). */
export class MetaStore {
  private readonly ends: Float64Array; // [rows]
  /** The whole committed file, once read (at open when small, in the background when large). */
  private whole?: Buffer;
  /** Parsed rows: a dense array when the file is small, a bounded map otherwise. */
  private readonly parsed?: (PairMeta | undefined)[];
  private readonly cache = new Map<number, PairMeta>();
  private closed = false;
  /** Settles when the background read has landed, failed (rows are then read one by one) or was stopped by close(). */
  readonly loaded: Promise<void>;
  constructor(
    private readonly fd: number,
    private readonly path: string,
    idxFd: number,
    idxPath: string,
    readonly rows: number,
    metaBytes: number,
    limits: MetaStoreLimits = { inMemoryBytes: META_IN_MEMORY_BYTES, backgroundBytes: META_BACKGROUND_BYTES },
  ) {
    const idxBytes = new Uint8Array(rows * 8);
    preadExact(idxFd, idxBytes, 0, idxPath);
    const view = new DataView(idxBytes.buffer);
    this.ends = new Float64Array(rows);
    for (let r = 0; r < rows; r++) this.ends[r] = Number(view.getBigUint64(r * 8, true));
    if (metaBytes <= limits.inMemoryBytes) {
      const whole = Buffer.alloc(metaBytes);
      preadExact(this.fd, whole, 0, path);
      this.whole = whole;
      this.parsed = new Array(rows);
      this.loaded = Promise.resolve();
    } else if (metaBytes <= limits.backgroundBytes) this.loaded = this.loadInBackground(metaBytes);
    else this.loaded = Promise.resolve();
  }
  /** Read the committed bytes chunk by chunk without blocking; the store serves rows by pread meanwhile. */
  private async loadInBackground(bytes: number): Promise<void> {
    const buf = Buffer.allocUnsafe(bytes);
    try {
      for (let done = 0; done < bytes; ) {
        if (this.closed) return;
        const { bytesRead } = await readAt(this.fd, buf, done, Math.min(META_LOAD_CHUNK, bytes - done));
        if (this.closed) return; // the descriptor may have been closed (and its number reused) during the read
        if (bytesRead === 0) return; // a short file: the per-row reads report it
        done += bytesRead;
      }
    } catch {
      return; // rows keep being read one by one (and report any damage themselves)
    }
    this.whole = buf;
  }
  /** Stop the background read (call before closing the descriptors). */
  close(): void {
    this.closed = true;
  }
  /** Metadata line of a row (start offset, bytes). */
  span(row: number): [number, number] {
    const start = row === 0 ? 0 : this.ends[row - 1];
    return [start, this.ends[row] - start];
  }
  rawLine(row: number): Buffer {
    const [start, length] = this.span(row);
    if (this.whole) return this.whole.subarray(start, start + length);
    const buf = Buffer.alloc(length);
    preadExact(this.fd, buf, start, this.path);
    return buf;
  }
  get(row: number): PairMeta {
    const hit = this.parsed ? this.parsed[row] : this.cache.get(row);
    if (hit) return hit;
    if (!Number.isInteger(row) || row < 0 || row >= this.rows) throw new RetformerError(`${this.path}: row ${row} out of range (0..${this.rows - 1})`);
    let meta: PairMeta;
    try {
      meta = JSON.parse(this.rawLine(row).toString('utf8')) as PairMeta;
    } catch {
      throw new RetformerError(`${this.path}: row ${row}: unreadable metadata (damaged file); ${REBUILD_HINT}`);
    }
    if (this.parsed) this.parsed[row] = meta;
    else {
      if (this.cache.size >= META_CACHE_ROWS) this.cache.clear();
      this.cache.set(row, meta);
    }
    return meta;
  }
}

/** fs.read at a position, as a promise. */
function readAt(fd: number, buf: Buffer, offset: number, length: number): Promise<{ bytesRead: number }> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, length, offset, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead })));
  });
}

function truncateTo(path: string, length: number): void {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size < length) throw new RetformerError(`${path}: ${size} bytes, but ${KB_FILES.manifest} committed ${length} (truncated or damaged file); ${REBUILD_HINT}`);
    if (size > length) {
      ftruncateSync(fd, length);
      fsyncSync(fd);
    }
  } finally {
    closeSync(fd);
  }
}

/** Does the folder hold anything past its committed state (a crashed writer's leftovers)? */
export function needsRecovery(dir: string, m: FileKbManifest): boolean {
  for (const name of appendOnlyFiles(m)) {
    try {
      const fd = openSync(join(dir, name), 'r');
      try {
        if (fstatSync(fd).size > committedBytes(m, name)) return true; // a shorter file is damage, reported by the open
      } finally {
        closeSync(fd);
      }
    } catch {
      return false; // a missing file is for the reader to report, not for recovery to fix
    }
  }
  const keep = new Set([...namedFiles(m), ...m.folder.previous]);
  return readdirSync(dir).some((n) => isGenerationFile(n) && !keep.has(n));
}

/**
 * Bring the folder back to exactly the committed state the manifest names: cut uncommitted tails
 * off the append-only files, delete data/index/tombstone/temp files that neither the committed
 * generation nor the previous one (kept for readers) names. Call only while holding the write lock.
 */
export function recoverToManifest(dir: string, manifest: FileKbManifest): void {
  for (const name of appendOnlyFiles(manifest)) truncateTo(join(dir, name), committedBytes(manifest, name));
  const keep = new Set([...namedFiles(manifest), ...manifest.folder.previous]);
  let removedAny = false;
  for (const name of readdirSync(dir)) {
    if (isGenerationFile(name) && !keep.has(name)) {
      unlinkSync(join(dir, name));
      removedAny = true;
    }
  }
  if (removedAny) fsyncPath(dir);
}
