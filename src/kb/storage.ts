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

/** Bytes of the file held in memory, contiguous from offset 0: chunk i covers [start, start + buf.length). */
interface MetaChunk {
  start: number;
  buf: Buffer;
}

/** Chunks beyond the first are merged into one when there are more than this (each refresh adds one). */
const META_MAX_CHUNKS = 8;

/**
 * Append-only metadata lines with an offset index: row r spans [end[r-1], end[r]).
 *
 * `previous`: the store of the same file (same name and inode) in the generation this one replaces.
 * Committed bytes of an append-only file never change, so its offsets, the bytes it holds in
 * memory and its parsed rows are taken over and only the rows appended since are read: a reader's
 * refresh after an add costs the add, not the KB (at 1M pairs, 8 MB of offsets and 163 MiB of
 * metadata are otherwise read again on every refresh).
 */
export class MetaStore {
  private readonly ends: Float64Array; // [rows]
  /** The file's first `loadedBytes` bytes in memory (at open when small, in the background when large). */
  private chunks: MetaChunk[] = [];
  private loadedBytes = 0;
  /** Parsed rows: a dense array when the file is small, a bounded map otherwise (shared with the previous store: its rows are the same). */
  private readonly parsed?: (PairMeta | undefined)[];
  private readonly cache: Map<number, PairMeta>;
  private closed = false;
  /** Bytes this store read from the offset index and the metadata file (tests and benches). */
  bytesRead = 0;
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
    previous?: MetaStore,
  ) {
    const from = previous && previous.rows <= rows ? previous.rows : 0; // rows [0, from) are the previous store's
    this.ends = new Float64Array(rows);
    if (from > 0) this.ends.set(previous!.ends);
    const idxBytes = new Uint8Array((rows - from) * 8);
    preadExact(idxFd, idxBytes, from * 8, idxPath);
    this.bytesRead += idxBytes.byteLength;
    const view = new DataView(idxBytes.buffer);
    for (let r = from; r < rows; r++) this.ends[r] = Number(view.getBigUint64((r - from) * 8, true));
    const fromBytes = from > 0 ? this.ends[from - 1] : 0;
    const carried = from > 0 && previous!.loadedBytes >= fromBytes ? previous!.chunks : []; // the previous bytes, if it had them all
    const heldBytes = carried.length > 0 ? fromBytes : 0;
    this.cache = from > 0 ? previous!.cache : new Map();
    if (metaBytes <= limits.inMemoryBytes) {
      this.parsed = from > 0 && previous!.parsed ? previous!.parsed : [];
      this.parsed.length = rows;
      this.keep(carried, heldBytes);
      const tail = Buffer.alloc(metaBytes - heldBytes);
      preadExact(this.fd, tail, heldBytes, path);
      this.bytesRead += tail.byteLength;
      this.append(tail);
      this.loaded = Promise.resolve();
    } else if (metaBytes <= limits.backgroundBytes) {
      this.keep(carried, heldBytes);
      this.loaded = this.loadInBackground(heldBytes, metaBytes);
    } else this.loaded = Promise.resolve();
  }
  /** Take over the previous store's chunks covering [0, bytes). */
  private keep(chunks: readonly MetaChunk[], bytes: number): void {
    if (bytes === 0) return;
    this.chunks = [...chunks];
    this.loadedBytes = bytes;
  }
  /** Add the next bytes of the file; keep the first (large) chunk and merge the later ones when they pile up. */
  private append(buf: Buffer): void {
    if (buf.byteLength === 0) return;
    this.chunks.push({ start: this.loadedBytes, buf });
    this.loadedBytes += buf.byteLength;
    if (this.chunks.length > META_MAX_CHUNKS) {
      const rest = this.chunks.splice(1);
      this.chunks.push({ start: rest[0].start, buf: Buffer.concat(rest.map((c) => c.buf)) });
    }
  }
  /** Read bytes [from, to) chunk by chunk without blocking; the store serves rows by pread meanwhile. */
  private async loadInBackground(from: number, to: number): Promise<void> {
    const buf = Buffer.allocUnsafe(to - from);
    try {
      for (let done = 0; done < buf.byteLength; ) {
        if (this.closed) return;
        const { bytesRead } = await readAt(this.fd, buf, done, Math.min(META_LOAD_CHUNK, buf.byteLength - done), from + done);
        if (this.closed) return; // the descriptor may have been closed (and its number reused) during the read
        if (bytesRead === 0) return; // a short file: the per-row reads report it
        done += bytesRead;
        this.bytesRead += bytesRead;
      }
    } catch {
      return; // rows keep being read one by one (and report any damage themselves)
    }
    this.append(buf);
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
    if (start + length <= this.loadedBytes) {
      // a line never spans two chunks: each chunk ends where a committed generation ended, at a row's end
      let i = this.chunks.length - 1;
      while (this.chunks[i].start > start) i--;
      const c = this.chunks[i];
      return c.buf.subarray(start - c.start, start - c.start + length);
    }
    const buf = Buffer.alloc(length);
    preadExact(this.fd, buf, start, this.path);
    this.bytesRead += length;
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

/** fs.read of `length` bytes at file `position` into `buf` at `offset`, as a promise. */
function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead })));
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
