import { rmSync, readSync, writeSync } from 'node:fs';
import { RetformerError, toUserError } from '../util/errors.ts';
import { fsyncPath, nativeWriteError } from '../util/fs.ts';
import type { HnswIndex } from './hnsw.ts';

/** Read exactly `buf.byteLength` bytes at `position` (positional read; no shared file offset). */
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

/**
 * Save an HNSW index to `path` and fsync it. usearch reports a failed save without an error code
 * or a path, so the file system is asked what went wrong (full disk, read-only) and the partial
 * file is removed.
 */
export function saveIndex(index: HnswIndex, path: string): void {
  try {
    index.save(path);
  } catch (err) {
    const mapped = nativeWriteError(path, 'usearch', err); // asks the file system before the partial file goes
    rmSync(path, { force: true });
    throw mapped;
  }
  fsyncPath(path);
}
