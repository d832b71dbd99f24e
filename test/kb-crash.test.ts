import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { buildKnowledgeBase, openKbEncoder, openKnowledgeBase } from '../src/kb/index.ts';
import { toCsv } from '../src/util/csv.ts';
import { Rng } from '../src/util/rng.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');
const ITERATIONS = 14;
const BATCH = 60;

function startCli(args: string[]): { child: ChildProcess; done: Promise<number | null> } {
  const child = spawn('node', [CLI, ...args], { stdio: 'ignore', env: { ...process.env, RETFORMER_QUIET: '1' } });
  const done = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolve when the writer has taken the KB lock (it is past start-up and about to write), or has exited. */
async function writerStarted(kbDir: string, exited: () => boolean): Promise<void> {
  while (!existsSync(join(kbDir, 'lock')) && !exited()) await sleep(2);
}

test('kill -9 during kb add / kb remove at random points: the KB always reopens at a committed state', { timeout: 120_000 }, async (t0) => {
  const rng = new Rng(2024);
  const dir = tempDir();
  const { csv, pairs } = await writePairsFixture(dir, { n: BATCH, seed: 9 });
  const kbDir = join(dir, 'kb');
  await buildKnowledgeBase({ pairsCsv: csv, out: kbDir, encoderSpec: 'pixels', quiet: true });
  const encoder = await openKbEncoder(kbDir);
  const probe = await encoder.embedImages([join(dir, pairs[7].path)]); // [1, dim]

  let committed = new Set(pairs.map((p) => p.id)); // the ids of the last committed state
  let nextBatch = 1;
  const batchCsv = (b: number) => {
    const file = join(dir, `batch-${b}.csv`);
    writeFileSync(file, toCsv(['id', 'path', 'text', 'label'], pairs.map((p) => ({ ...p, id: `b${b}-${p.id}` }))));
    return file;
  };

  // an uninterrupted add sets the time scale for the kills: from taking the lock to exiting
  const first = startCli(['kb', 'add', '--kb', kbDir, '--pairs', batchCsv(nextBatch), '--batch-size', '8']);
  let firstExited = false;
  first.done.then(() => {
    firstExited = true;
  });
  await writerStarted(kbDir, () => firstExited);
  const t = performance.now();
  assert.equal(await first.done, 0);
  const writeMs = Math.max(20, performance.now() - t);
  for (const p of pairs) committed.add(`b${nextBatch}-${p.id}`);
  nextBatch++;

  const outcomes = { unchanged: 0, committed: 0, midWrite: 0 };
  for (let it = 0; it < ITERATIONS; it++) {
    const removing = it % 4 === 3;
    const before = new Set(committed);
    let after: Set<string>;
    let args: string[];
    if (removing) {
      const victims = [...committed].filter((id) => id.startsWith('b')).slice(0, 5);
      const idsFile = join(dir, `remove-${it}.txt`);
      writeFileSync(idsFile, `${victims.join('\n')}\n`);
      args = ['kb', 'remove', '--kb', kbDir, '--ids-file', idsFile];
      after = new Set([...committed].filter((id) => !victims.includes(id)));
    } else {
      args = ['kb', 'add', '--kb', kbDir, '--pairs', batchCsv(nextBatch), '--batch-size', '8'];
      after = new Set([...committed, ...pairs.map((p) => `b${nextBatch}-${p.id}`)]);
    }
    const run = startCli(args);
    let exited = false;
    run.done.then(() => {
      exited = true;
    });
    await writerStarted(kbDir, () => exited);
    await sleep(writeMs * 1.2 * rng.next());
    run.child.kill('SIGKILL');
    await run.done;

    // did the kill land mid-write (uncommitted bytes or files on disk)?
    const onDisk = JSON.parse(readFileSync(join(kbDir, 'manifest.json'), 'utf8'));
    if (statSync(join(kbDir, 'image.f32')).size > onDisk.rows * onDisk.dim * 4 || existsSync(join(kbDir, 'lock'))) outcomes.midWrite++;
    const kb = await openKnowledgeBase(kbDir);
    const ids = new Set((await kb.meta(kb.liveRows())).map((m) => m.id));
    const same = (s: Set<string>) => s.size === ids.size && [...s].every((id) => ids.has(id));
    assert.ok(same(before) || same(after), `iteration ${it}: ${ids.size} live ids match neither committed state (${before.size} or ${after.size})`);
    assert.equal(kb.size, ids.size);
    if (same(after)) {
      outcomes.committed++;
      committed = after;
      if (!removing) nextBatch++;
    } else outcomes.unchanged++;
    // searching works and finds the probe image (or one of its copies in the added batches)
    const [top] = await kb.search(probe, { k: 3, queryEncoderId: encoder.id });
    assert.match(top[0].id, new RegExp(`^(b\\d+-)?${pairs[7].id}$`));
    assert.ok(top[0].similarity > 0.999);
    // only the committed generation's files remain
    const m = kb.manifest;
    const genFiles = readdirSync(kbDir).filter((f) => /^(image|text)-\d+\.usearch$|^tombstones-/.test(f));
    assert.deepEqual(genFiles.sort(), [m.files.imageIndex, m.files.textIndex, ...(m.files.tombstones ? [m.files.tombstones] : [])].sort());
    await kb.close();
  }
  t0.diagnostic(`outcomes over ${ITERATIONS} kills: ${JSON.stringify(outcomes)}`);
  // both sides of the commit point were hit
  assert.ok(outcomes.unchanged > 0 && outcomes.committed > 0, `kills landed on both sides of the commit: ${JSON.stringify(outcomes)}`);
  // and the KB still takes a normal add afterwards
  const last = startCli(['kb', 'add', '--kb', kbDir, '--pairs', batchCsv(nextBatch)]);
  assert.equal(await last.done, 0);
  const kb = await openKnowledgeBase(kbDir);
  assert.equal(kb.size, committed.size + BATCH);
  await kb.close();
  await encoder.close();
});
