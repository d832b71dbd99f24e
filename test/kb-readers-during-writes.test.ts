import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createEncoder } from '../src/encoders/registry.ts';
import { encoderState } from '../src/kb/build.ts';
import { createKnowledgeBase } from '../src/kb/registry.ts';
import { conformanceDir, conformancePairs, removeConformanceDirs } from './helpers/kb-conformance.ts';
import { runTsxChild } from './helpers/tsx-child.ts';

after(removeConformanceDirs);

const COMMITS = 40;

/**
 * Issue 17 (1): readers in another process opened the manifest, then a commit deleted the index
 * file it named ("cannot open index: No such file or directory"). Two reader processes loop (fresh
 * opens, and a long-lived handle that refresh()es) while this process commits adds, removes and
 * compactions as fast as it can; no read may fail.
 */
test('readers in other processes never fail while adds, removes and compactions commit', { timeout: 240_000 }, async (t) => {
  const dir = conformanceDir();
  const spec = join(dir, 'kb');
  const encoder = await createEncoder({ kind: 'pixels' });
  const state = await encoderState(encoder);
  await encoder.close();
  const kb = await createKnowledgeBase(spec, { encoder: state.descriptor, encoderChecksum: state.checksum, encoderFiles: state.files, dim: 128 });
  const first = await kb.beginWrite({ allowNewLabels: true });
  await first.append(conformancePairs(300, 1));
  await first.commit();

  const stop = join(dir, 'stop');
  const readers = [0, 1].map(() => runTsxChild('test/helpers/kb-reader-loop.ts', [spec, stop]));
  await new Promise((r) => setTimeout(r, 1500)); // readers started and reading

  let next = 0;
  try {
    for (let c = 0; c < COMMITS; c++) {
      if (c % 10 === 9) {
        await kb.compact();
        continue;
      }
      const w = await kb.beginWrite({ allowNewLabels: true });
      if (c % 3 === 2) await w.remove([`c${10 + c}`, `c${100 + c}`]);
      else await w.append(conformancePairs(6, 100 + c, `a${next++}-`));
      await w.commit();
    }
  } finally {
    writeFileSync(stop, '');
  }
  const results = await Promise.all(readers);
  await kb.close();
  for (const r of results) {
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out) as { rounds: number; refreshed: number; failures: string[]; failureCount: number };
    t.diagnostic(`reader: ${s.rounds} rounds, saw ${s.refreshed} new generations through refresh(), ${s.failureCount} failures`);
    assert.deepEqual(s.failures, [], 'no read failed');
    assert.ok(s.rounds >= 5, `the reader ran during the writes (${s.rounds} rounds)`);
    assert.ok(s.refreshed >= 2, `refresh() picked up new generations (${s.refreshed})`);
  }
});
