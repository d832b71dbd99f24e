import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { removeTempDirs, tempDir } from './helpers/kb-fixtures.ts';
import { type ChildResult, runTsxChild } from './helpers/tsx-child.ts';

after(removeTempDirs);

const WORKERS = 4;
const HOLDS = 150;

const worker = (args: string[]): Promise<ChildResult> => runTsxChild('test/helpers/kb-lock-worker.ts', args);

/**
 * Issue 17 (6): a lock file that existed but did not yet hold a pid was judged abandoned, so a
 * three-process race took the lock from its holder. Here several processes take and release the
 * lock in a tight loop, while others die holding it (abandoned locks to break): never are two
 * inside at once, and the lock file always names its holder.
 */
test('the write lock under a race of several processes: never shared, never stolen; abandoned locks are broken', { timeout: 180_000 }, async (t) => {
  const dir = tempDir();
  const crashed = await worker(['crash', dir]);
  assert.equal(crashed.signal, 'SIGKILL', crashed.err);
  assert.ok(existsSync(join(dir, 'lock')), 'an abandoned lock to start with');
  const runs = Array.from({ length: WORKERS }, () => worker(['hold', dir, String(HOLDS)]));
  // more writers die holding the lock while the others run
  const crashes = [worker(['crash', dir]), worker(['crash', dir])];
  const results = await Promise.all([...runs, ...crashes]);
  let total = 0;
  for (const r of results.slice(0, WORKERS)) {
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out) as { holds: number; overlaps: number; stolen: number };
    assert.deepEqual([s.overlaps, s.stolen], [0, 0], `a lock was shared or stolen: ${r.out}`);
    total += s.holds;
  }
  for (const r of results.slice(WORKERS)) assert.equal(r.signal, 'SIGKILL', r.err);
  assert.equal(total, WORKERS * HOLDS);
  t.diagnostic(`${total} holds by ${WORKERS} processes, 3 abandoned locks; no overlap, no theft`);
  const left = readdirSync(dir).filter((n) => n !== 'lock'); // the last crasher may have died holding it
  assert.deepEqual(left, [], 'no pending or breaker files left behind');
});
