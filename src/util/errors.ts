import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * A user-facing failure: bad input, a missing file, a refused operation, a full or read-only disk.
 * The CLI prints `retformer: <message>` on one line and exits with `exitCode`;
 * anything that is neither a RetformerError nor a system error (`toUserError`) is a bug and prints its stack.
 */
export class RetformerError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetformerError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/**
 * `file:line: message` — the one-line form every input error uses. `line` is the line number an
 * editor shows (1-based, the header of a CSV is line 1, a record with a quoted newline starts on
 * its first line); `undefined` names only the file.
 */
export function inputError(file: string, line: number | undefined, message: string): RetformerError {
  return new RetformerError(line === undefined ? `${file}: ${message}` : `${file}:${line}: ${message}`);
}

/** What the operating system's error codes mean to a user, in the words `strerror` uses. */
const SYSTEM_ERRORS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory, expected a file',
  ENOTDIR: 'not a directory',
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  ENOTEMPTY: 'directory not empty',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EBUSY: 'device or resource busy',
  EXDEV: 'cross-device link not permitted',
  EIO: 'input/output error',
  EPIPE: 'broken pipe (the reader of the output went away)',
  ENOMEM: 'out of memory',
};

/** A Node.js system error: `code` is an errno name (ENOSPC, EROFS, ...), `path` the file when the call had one. */
export interface SystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
}

export function isSystemError(err: unknown): err is SystemError {
  if (!(err instanceof Error)) return false;
  const { code, syscall } = err as Partial<SystemError>;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && (typeof syscall === 'string' || code in SYSTEM_ERRORS);
}

/**
 * One line for a system error: `PATH: no space left on device (ENOSPC, write)`. `path` names the
 * file the caller was writing when the error itself has none (a write on an open descriptor does
 * not say which file it was).
 */
export function systemErrorMessage(error: SystemError, path?: string): string {
  const err = recursiveMkdirCause(error);
  const where = path ?? err.path;
  const what = SYSTEM_ERRORS[err.code] ?? firstLine(err.message).replace(/^E[A-Z0-9]+: /, '').replace(/, \w+( '.*')?$/, '');
  const detail = err.syscall ? `${err.code}, ${err.syscall}` : err.code;
  return `${where === undefined ? '' : `${where}: `}${what} (${detail})`;
}

/** A RetformerError for a system error (one line naming `path`, or the error's own path); the original is the cause. */
export function systemError(err: SystemError, path?: string): RetformerError {
  return new RetformerError(systemErrorMessage(err, path), { cause: err });
}

/**
 * `mkdirSync(dir, { recursive: true })` reports ENOENT when the real cause is a read-only or
 * unwritable parent (Node 20 on Linux): ask the nearest existing ancestor for the real reason.
 */
function recursiveMkdirCause(err: SystemError): SystemError {
  if (err.code !== 'ENOENT' || err.syscall !== 'mkdir' || err.path === undefined) return err;
  let dir = resolve(err.path);
  while (!existsSync(dir)) {
    const parent = dirname(dir);
    if (parent === dir) return err;
    dir = parent;
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (accessErr) {
    if (isSystemError(accessErr)) return Object.assign(accessErr, { syscall: 'mkdir', path: err.path });
  }
  return err;
}

/**
 * The user-facing form of a failure, or undefined when it is a bug: a RetformerError as it is, a
 * system error (full disk, read-only folder, a directory where a file should be, ...) as one line.
 * The CLI's top-level handler and every writer that knows the file it was writing map through here.
 */
export function toUserError(err: unknown, path?: string): RetformerError | undefined {
  if (err instanceof RetformerError) return err;
  if (isSystemError(err)) return systemError(err, path);
  return undefined;
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}
