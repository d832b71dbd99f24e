import { accessSync, closeSync, constants, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { RetformerError, isSystemError, systemError, toUserError } from './errors.ts';

/** fsync a file or a directory (a directory, so that a rename inside it survives a crash). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Write a file so that readers see either the old content or the new, never a torn one:
 * write a temp file beside it, fsync, rename over, fsync the directory. On failure the temp file
 * is removed, the old content stays, and a system error (full disk, read-only folder, `path` is a
 * directory) comes back as a one-line RetformerError naming `path`.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw toUserError(err, path) ?? err;
  }
  try {
    fsyncPath(dirname(path));
  } catch (err) {
    throw toUserError(err, dirname(path)) ?? err;
  }
}

/** Write JSON atomically, pretty-printed. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Refuse an output file path before any work: a folder (a file is expected), or an existing file
 * unless `force` (then it is replaced atomically when the output is written). `flag` names the option
 * the path came from, for the message.
 */
export function checkOutputFile(path: string, force: boolean, flag = '--out'): void {
  if (!existsSync(path)) return;
  if (statSync(path).isDirectory()) throw new RetformerError(`${path}: is a directory; ${flag} names the output file`);
  if (!force) throw new RetformerError(`${path}: exists; use --force to overwrite it`);
}

/**
 * A one-line error for a write that a native library (the HNSW index) failed without an errno:
 * such libraries report "failed to serialize" and the like, never which file or why. The file
 * system is asked instead: no free space left means the disk filled, an unwritable folder means
 * read-only or no permission; otherwise the library's own words, naming the file.
 */
export function nativeWriteError(path: string, library: string, err: unknown): RetformerError {
  if (err instanceof RetformerError) return err;
  if (isSystemError(err)) return systemError(err, path);
  const dir = dirname(path);
  try {
    const fsStats = statfsSync(dir);
    if (fsStats.bavail === 0) return new RetformerError(`${path}: no space left on device (${library} could not write it)`, { cause: err });
  } catch {
    // statfs unsupported: fall through to the access check
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (accessErr) {
    if (isSystemError(accessErr)) return systemError(accessErr, path);
  }
  const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new RetformerError(`${path}: could not write (${library}: ${reason})`, { cause: err });
}
