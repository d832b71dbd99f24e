import { closeSync, fsyncSync, linkSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import { KB_FILES } from './format.ts';

/**
 * The single-writer lock of a KB folder: a file `lock` holding the writer's pid.
 *
 * It is created atomically *with* its content: the pid is written to a private file
 * `lock.pending-PID-N`, fsynced, then hard-linked to `lock` (link fails if `lock` exists). So
 * every `lock` anyone can see already names its holder, and a holder is judged abandoned only
 * when that pid is gone. Removing an abandoned lock is serialised by a second lock, `lock.break`
 * (made the same way): under it the breaker re-reads `lock` and unlinks it only if its pid is
 * still dead. No one else can remove or replace `lock` meanwhile (its holder is dead, and a new
 * one cannot be linked over it), so a live holder's lock is never taken.
 */
const held = new Set<string>(); // folders this process holds the lock of
let counter = 0;

/** Is a process with this pid alive? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Link a new file holding our pid to `path`; false if `path` exists. */
function linkWithPid(dir: string, path: string): boolean {
  const pending = join(dir, `${KB_FILES.lock}.pending-${process.pid}-${counter++}`);
  const fd = openSync(pending, 'wx');
  try {
    writeFileSync(fd, `${process.pid}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(pending, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(pending);
  }
}

/** The pid in a lock file; undefined if the file is gone, NaN if unreadable. */
function readPid(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Is the lock's holder alive (another process, or this process while it holds it)? */
function holderAlive(dir: string, pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return held.has(dir);
  return processAlive(pid);
}

/** The pid of a live process holding the KB's write lock, if any. */
export function liveWriter(dir: string): number | undefined {
  const pid = readPid(join(dir, KB_FILES.lock));
  return pid !== undefined && holderAlive(dir, pid) ? pid : undefined;
}

/** Remove `lock` if its holder is dead, under `lock.break`. */
function breakAbandoned(dir: string): void {
  const lock = join(dir, KB_FILES.lock);
  const breaker = join(dir, `${KB_FILES.lock}.break`);
  if (!linkWithPid(dir, breaker)) {
    const pid = readPid(breaker);
    // a breaker that died mid-break (its pid gone) is removed; otherwise wait for it to finish
    if (pid !== undefined && !holderAlive(dir, pid)) {
      try {
        unlinkSync(breaker);
      } catch {
        // removed by another breaker
      }
    } else sleepSync(2);
    return;
  }
  try {
    const pid = readPid(lock);
    if (pid !== undefined && !holderAlive(dir, pid)) unlinkSync(lock);
  } finally {
    unlinkSync(breaker);
  }
}

/** Delete pending files of processes that died between writing and linking them. */
function removeDeadPending(dir: string): void {
  const prefix = `${KB_FILES.lock}.pending-`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (pid !== process.pid && !processAlive(pid)) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // gone already
      }
    }
  }
}

/** Take the lock or return undefined when a live process (or this one) holds it. */
export function tryAcquireWriteLock(dir: string): (() => void) | undefined {
  const lock = join(dir, KB_FILES.lock);
  if (held.has(dir)) return undefined;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (linkWithPid(dir, lock)) {
      held.add(dir);
      if (attempt > 0) removeDeadPending(dir);
      return () => {
        held.delete(dir);
        if (readPid(lock) === process.pid) unlinkSync(lock);
      };
    }
    const pid = readPid(lock);
    if (pid === undefined) continue; // released meanwhile
    if (holderAlive(dir, pid)) return undefined;
    breakAbandoned(dir);
  }
  throw new RetformerError(`${dir}: cannot take the write lock (${lock} keeps changing)`);
}

/** Take the single-writer lock; refused with a clear message while another writer holds it. */
export function acquireWriteLock(dir: string): () => void {
  const release = tryAcquireWriteLock(dir);
  if (release) return release;
  const pid = liveWriter(dir);
  if (pid === process.pid) throw new RetformerError(`${dir}: this process is already writing this knowledge base (one writer at a time: commit or abort the open one first)`);
  throw new RetformerError(`${dir}: another process (pid ${pid ?? '?'}) is writing this knowledge base; try again when it ends`);
}
