import { execFileSync } from 'node:child_process';
import { statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Small tmpfs mounts for fault injection (a full disk, a read-only folder). Mounting needs root
 * (chmod does not stop root, so a read-only mount is the only honest read-only folder for it);
 * `tmpfsUnavailable` says why a test must skip where it cannot mount.
 */
let unavailable: string | false | undefined;

export function tmpfsUnavailable(probeDir: string): string | false {
  if (unavailable !== undefined) return unavailable;
  if (process.platform !== 'linux') unavailable = 'tmpfs mounts need Linux';
  else if (process.getuid?.() !== 0) unavailable = 'mounting a tmpfs needs root';
  else {
    try {
      mountTmpfs(probeDir, 64 * 1024);
      unmount(probeDir);
      unavailable = false;
    } catch (err) {
      unavailable = `mount -t tmpfs is not permitted here (${(err as Error).message.split('\n')[0]})`;
    }
  }
  return unavailable;
}

export function mountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 1024)}k`, 'tmpfs', dir], { stdio: 'pipe' });
}

export function remountReadOnly(dir: string): void {
  execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' });
}

/** Unmount (lazily, so a test that failed with a file still open cannot leave the mount behind). */
export function unmount(dir: string): void {
  execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
}

/** Fill the file system of `dir` with a filler file until about `leave` bytes are free; returns the filler's path. */
export function fillLeaving(dir: string, leave: number): string {
  const st = statfsSync(dir);
  const free = st.bavail * st.bsize;
  const filler = join(dir, 'filler');
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - leave)));
  return filler;
}
