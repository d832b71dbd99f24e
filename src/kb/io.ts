import { readSync, writeSync } from 'node:fs';
import { RetformerError } from '../util/errors.ts';

/** Read exactly `buf.byteLength` bytes at `position` (positional read; no shared file offset). */
export function preadExact(fd: number, buf: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) throw new RetformerError(`${what}: file ends before committed data (corrupt knowledge base)`);
    done += n;
  }
}

export function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) done += writeSync(fd, buf, done, buf.byteLength - done, position + done);
}
