/**
 * Child process for test/kb-lock-race.test.ts. Modes:
 *   hold DIR N   take the KB write lock N times (retrying while another process holds it); inside,
 *                create DIR/inside exclusively, check the lock names this pid, hold ~1 ms, leave;
 *                prints {holds, overlaps, stolen} as JSON
 *   crash DIR    take the lock and die by SIGKILL while holding it (an abandoned lock)
 */
import { closeSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tryAcquireWriteLock } from '../../src/kb/lock.ts';

const [mode, dir, count] = process.argv.slice(2);
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function acquire(): () => void {
  for (;;) {
    const release = tryAcquireWriteLock(dir);
    if (release) return release;
    sleep(Math.random() < 0.5 ? 0 : 1);
  }
}

if (mode === 'crash') {
  acquire();
  process.kill(process.pid, 'SIGKILL');
}

let holds = 0;
let overlaps = 0;
let stolen = 0;
for (let i = 0; i < Number(count); i++) {
  const release = acquire();
  let inside = -1;
  try {
    inside = openSync(join(dir, 'inside'), 'wx');
  } catch {
    overlaps++; // another process is inside too: the lock was not exclusive
  }
  if (Number(readFileSync(join(dir, 'lock'), 'utf8').trim()) !== process.pid) stolen++;
  sleep(Math.random() < 0.5 ? 0 : 1);
  if (Number(readFileSync(join(dir, 'lock'), 'utf8').trim()) !== process.pid) stolen++;
  if (inside >= 0) {
    closeSync(inside);
    unlinkSync(join(dir, 'inside'));
  }
  holds++;
  release();
}
process.stdout.write(`${JSON.stringify({ holds, overlaps, stolen })}\n`);
