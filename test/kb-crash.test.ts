import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import type { Encoder } from '../src/encoders/types.ts';
import { CRASH_POINTS, type CrashPoint } from '../src/kb/crash-point.ts';
import { isGenerationFile, namedFiles as filesOf } from '../src/kb/format.ts';
import { DTYPE_BYTES } from '../src/kb/format.ts';
import { buildKnowledgeBase, DEFAULT_KB_DTYPE, type FileKbManifest, FileKnowledgeBase, KB_FILES, openKbEncoder, readManifest } from '../src/kb/index.ts';
import { toCsv } from '../src/util/csv.ts';
import { Rng } from '../src/util/rng.ts';
import { type FixturePair, removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');
/** Pairs per added CSV; with ADD_BATCH per appended batch an add writes several batches. */
const BATCH = 60;
const ADD_BATCH = 8;
const RANDOM_KILLS = 6;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function startCli(args: string[], crashAt?: CrashPoint): { child: ChildProcess; done: Promise<Exit> } {
  const env: NodeJS.ProcessEnv = { ...process.env, RETFORMER_QUIET: '1' };
  delete env.RETFORMER_TEST_CRASH_AT;
  if (crashAt) env.RETFORMER_TEST_CRASH_AT = crashAt;
  const child = spawn('node', [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<Exit>((res) => child.on('close', (code, signal) => res({ code, signal, stderr })));
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolve when the writer has taken the KB lock (it is past start-up and about to write), or has exited. */
async function writerStarted(kbDir: string, exited: () => boolean): Promise<void> {
  while (!existsSync(join(kbDir, KB_FILES.lock)) && !exited()) await sleep(2);
}

/** Generation files in the folder; a temp file's pid and time become '*'. */
const generationFiles = (kbDir: string) =>
  readdirSync(kbDir)
    .filter(isGenerationFile)
    .map((n) => n.replace(/\.tmp-\d+-\d+$/, '.tmp-*'))
    .sort();
/** The committed generation's files and the previous generation's (kept for readers that still open it). */
const namedFiles = (m: FileKbManifest) => [...filesOf(m), ...m.folder.previous].sort();
const size = (kbDir: string, name: string) => statSync(join(kbDir, name)).size;

/** A KB built from BATCH pairs, and a fixture for adding/removing batches of copies of them. */
async function fixture() {
  const dir = tempDir();
  const { csv, pairs } = await writePairsFixture(dir, { n: BATCH, seed: 9 });
  const kbDir = join(dir, 'kb');
  await buildKnowledgeBase({ pairsCsv: csv, out: kbDir, encoderSpec: 'pixels', quiet: true });
  const encoder = await openKbEncoder(kbDir);
  const probe = await encoder.embedImages([join(dir, pairs[7].path)]); // [1, dim]
  let nextBatch = 1;
  return {
    dir,
    kbDir,
    pairs,
    encoder,
    probe,
    /** Write the next batch CSV (copies of the fixture pairs with ids "b<N>-..."); returns its file and ids. */
    nextBatchCsv(): { file: string; ids: string[] } {
      const b = nextBatch++;
      const file = join(dir, `batch-${b}.csv`);
      writeFileSync(file, toCsv(['id', 'path', 'text', 'label'], pairs.map((p) => ({ ...p, id: `b${b}-${p.id}` }))));
      return { file, ids: pairs.map((p) => `b${b}-${p.id}`) };
    },
    idsFile(ids: string[], name: string): string {
      const file = join(dir, name);
      writeFileSync(file, `${ids.join('\n')}\n`);
      return file;
    },
  };
}

/**
 * Reopen the KB (which repairs a crashed writer's leftovers) and check that it is exactly the
 * committed state `expected`: the live ids, the append-only files cut to the committed lengths,
 * only the live generation's files on disk, and a search that finds the probe image.
 */
async function assertCommittedState(kbDir: string, expected: Set<string>, probe: Float32Array, encoder: Encoder, probePair: FixturePair, what: string): Promise<FileKbManifest> {
  const kb = await FileKnowledgeBase.open(kbDir);
  try {
    const ids = (await kb.meta(kb.liveRows())).map((m) => m.id);
    assert.equal(ids.length, new Set(ids).size, `${what}: duplicate live ids`);
    assert.deepEqual([...ids].sort(), [...expected].sort(), `${what}: live ids`);
    assert.equal(kb.size, expected.size, `${what}: manifest count`);
    const m = kb.manifest;
    const f = m.folder.files;
    assert.equal(size(kbDir, f.imageVectors), m.folder.rows * m.dim * DTYPE_BYTES[m.dtype], `${what}: image vectors cut to the committed rows`);
    assert.equal(size(kbDir, f.textVectors), m.folder.rows * m.dim * DTYPE_BYTES[m.dtype], `${what}: text vectors cut to the committed rows`);
    assert.equal(size(kbDir, f.meta), m.folder.metaBytes, `${what}: metadata cut to the committed bytes`);
    assert.equal(size(kbDir, f.metaIndex), m.folder.rows * 8, `${what}: metadata index cut to the committed rows`);
    assert.deepEqual(generationFiles(kbDir), namedFiles(m), `${what}: only the live and the previous generation's files remain`);
    // searching works and finds the probe image (or one of its copies in the added batches)
    const [top] = await kb.search(probe, { k: 3, queryEncoderId: encoder.id });
    assert.match(top[0].id, new RegExp(`^(b\\d+-)?${probePair.id}$`), `${what}: search`);
    assert.ok(top[0].similarity > 0.999, `${what}: search similarity ${top[0].similarity}`);
    return m;
  } finally {
    await kb.close();
  }
}

interface Scenario {
  point: CrashPoint;
  /** true: the crash is past the commit point and the KB must reopen at the new state. */
  commits: boolean;
  /** Rows past the committed length left in the vector files by the crash. */
  tailRows: number;
  /** Generation files on disk the (on-disk) manifest does not name, left by the crash. */
  strays: (old: FileKbManifest, next: number) => string[];
  op: 'add' | 'remove' | 'compact';
}

const pad = (g: number) => String(g).padStart(6, '0');
/** Files of generations before the previous one, which a commit deletes right after the manifest rename. */
const older = (old: FileKbManifest) => old.folder.previous;
const compactFiles = (g: number) => [`image-${pad(g)}.${DEFAULT_KB_DTYPE}`, `text-${pad(g)}.${DEFAULT_KB_DTYPE}`, `meta-${pad(g)}.jsonl`, `meta-${pad(g)}.idx`];
// In this order on one KB: the second remove:after-manifest supersedes an existing tombstone file.
const SCENARIOS: Scenario[] = [
  { point: 'add:after-first-batch', op: 'add', commits: false, tailRows: ADD_BATCH, strays: () => [] },
  { point: 'add:before-index-save', op: 'add', commits: false, tailRows: BATCH, strays: () => [] },
  { point: 'layout:before-rename', op: 'add', commits: false, tailRows: BATCH, strays: (_, g) => [`image-${pad(g)}.usearch`, `image-${pad(g)}.usearch.tmp-*`] },
  { point: 'add:before-manifest', op: 'add', commits: false, tailRows: BATCH, strays: (_, g) => [`image-${pad(g)}.usearch`, `text-${pad(g)}.usearch`] },
  { point: 'add:after-manifest', op: 'add', commits: true, tailRows: 0, strays: older },
  { point: 'remove:after-manifest', op: 'remove', commits: true, tailRows: 0, strays: older },
  { point: 'remove:before-manifest', op: 'remove', commits: false, tailRows: 0, strays: (_, g) => [`tombstones-${pad(g)}.json`] },
  { point: 'remove:after-manifest', op: 'remove', commits: true, tailRows: 0, strays: older },
  { point: 'compact:after-data', op: 'compact', commits: false, tailRows: 0, strays: (_, g) => compactFiles(g) },
  { point: 'compact:before-manifest', op: 'compact', commits: false, tailRows: 0, strays: (_, g) => [...compactFiles(g), `image-${pad(g)}.usearch`, `text-${pad(g)}.usearch`] },
  { point: 'compact:after-manifest', op: 'compact', commits: true, tailRows: 0, strays: (old) => [...older(old), ...filesOf(old)] },
];

test('kill -9 of kb add / kb remove / kb compact at each named stage of the write: the KB reopens at exactly the expected committed state', { timeout: 120_000 }, async (t) => {
  assert.deepEqual(new Set(SCENARIOS.map((s) => s.point)), new Set(CRASH_POINTS), 'every crash point is exercised');
  const f = await fixture();
  let committed = new Set(f.pairs.map((p) => p.id));
  let removals = 0;
  for (const s of SCENARIOS) {
    const old = readManifest(f.kbDir);
    let args: string[];
    let next: Set<string>;
    if (s.op === 'add') {
      const batch = f.nextBatchCsv();
      assert.ok(BATCH > ADD_BATCH * 2, 'the add is written in several batches');
      args = ['kb', 'add', '--kb', f.kbDir, '--pairs', batch.file, '--batch-size', String(ADD_BATCH)];
      next = new Set([...committed, ...batch.ids]);
    } else if (s.op === 'compact') {
      assert.ok(old.folder.removed > 0, 'there are removed rows to compact away');
      args = ['kb', 'compact', '--kb', f.kbDir];
      next = committed; // the same pairs, renumbered
    } else {
      const victims = [...committed].filter((id) => id.startsWith('b')).slice(0, 5);
      args = ['kb', 'remove', '--kb', f.kbDir, '--ids-file', f.idsFile(victims, `remove-${removals++}.txt`)];
      next = new Set([...committed].filter((id) => !victims.includes(id)));
    }
    const started = performance.now();
    const exit = await startCli(args, s.point).done;
    assert.equal(exit.signal, 'SIGKILL', `${s.point}: the CLI died by SIGKILL (exit ${exit.code}, stderr: ${exit.stderr.slice(0, 500)})`);

    // what the crash left on disk, before anything reopens the KB
    const onDisk = readManifest(f.kbDir);
    assert.equal(onDisk.generation, s.commits ? old.generation + 1 : old.generation, `${s.point}: manifest generation on disk`);
    assert.ok(existsSync(join(f.kbDir, KB_FILES.lock)), `${s.point}: the dead writer's lock is left behind`);
    assert.equal(size(f.kbDir, onDisk.folder.files.imageVectors), (onDisk.folder.rows + s.tailRows) * onDisk.dim * DTYPE_BYTES[onDisk.dtype], `${s.point}: uncommitted vector rows on disk`);
    const strays = s.strays(old, old.generation + 1);
    assert.deepEqual(generationFiles(f.kbDir), [...namedFiles(onDisk), ...strays].sort(), `${s.point}: generation files on disk`);

    const m = await assertCommittedState(f.kbDir, s.commits ? next : committed, f.probe, f.encoder, f.pairs[7], s.point);
    assert.equal(m.generation, onDisk.generation);
    if (s.op === 'compact' && s.commits) assert.deepEqual([m.folder.rows, m.folder.removed, m.folder.files.tombstones], [m.count, 0, null], `${s.point}: no removed rows left`);
    if (s.commits) committed = next;
    t.diagnostic(`${s.point}: killed after ${Math.round(performance.now() - started)} ms, ${s.tailRows} uncommitted rows, ${strays.length} stray files; reopened at generation ${m.generation} with ${m.count} pairs`);
  }

  // the repaired KB still takes a normal add and remove
  const batch = f.nextBatchCsv();
  const added = await startCli(['kb', 'add', '--kb', f.kbDir, '--pairs', batch.file, '--batch-size', String(ADD_BATCH)]).done;
  assert.equal(added.code, 0, added.stderr);
  committed = new Set([...committed, ...batch.ids]);
  const victims = batch.ids.slice(0, 3);
  const removed = await startCli(['kb', 'remove', '--kb', f.kbDir, '--ids-file', f.idsFile(victims, 'remove-last.txt')]).done;
  assert.equal(removed.code, 0, removed.stderr);
  committed = new Set([...committed].filter((id) => !victims.includes(id)));
  await assertCommittedState(f.kbDir, committed, f.probe, f.encoder, f.pairs[7], 'after the crashes');
  await f.encoder.close();
});

test('kill -9 of kb add / kb remove at seeded random moments: the KB always reopens at one of the two committed states', { timeout: 120_000 }, async (t) => {
  // Where the kills land depends on machine load, so only the outcome of each is asserted,
  // never how many landed on which side of the commit (the test above covers each side).
  const rng = new Rng(2024);
  const f = await fixture();
  let committed = new Set(f.pairs.map((p) => p.id));

  // an uninterrupted add sets the time scale for the kills: from taking the lock to exiting
  const first = f.nextBatchCsv();
  const run0 = startCli(['kb', 'add', '--kb', f.kbDir, '--pairs', first.file, '--batch-size', String(ADD_BATCH)]);
  let exited0 = false;
  run0.done.then(() => {
    exited0 = true;
  });
  await writerStarted(f.kbDir, () => exited0);
  const t0 = performance.now();
  const exit0 = await run0.done;
  assert.equal(exit0.code, 0, exit0.stderr);
  const writeMs = Math.max(20, performance.now() - t0);
  committed = new Set([...committed, ...first.ids]);

  const outcomes = { unchanged: 0, committed: 0 };
  for (let it = 0; it < RANDOM_KILLS; it++) {
    const removing = it % 3 === 2;
    let args: string[];
    let next: Set<string>;
    if (removing) {
      const victims = [...committed].filter((id) => id.startsWith('b')).slice(0, 5);
      args = ['kb', 'remove', '--kb', f.kbDir, '--ids-file', f.idsFile(victims, `remove-${it}.txt`)];
      next = new Set([...committed].filter((id) => !victims.includes(id)));
    } else {
      const batch = f.nextBatchCsv();
      args = ['kb', 'add', '--kb', f.kbDir, '--pairs', batch.file, '--batch-size', String(ADD_BATCH)];
      next = new Set([...committed, ...batch.ids]);
    }
    const run = startCli(args);
    let exited = false;
    run.done.then(() => {
      exited = true;
    });
    await writerStarted(f.kbDir, () => exited);
    await sleep(writeMs * 1.2 * rng.next());
    run.child.kill('SIGKILL');
    await run.done;

    const kb = await FileKnowledgeBase.open(f.kbDir);
    const ids = new Set((await kb.meta(kb.liveRows())).map((m) => m.id));
    await kb.close();
    const same = (s: Set<string>) => s.size === ids.size && [...s].every((id) => ids.has(id));
    assert.ok(same(committed) || same(next), `kill ${it}: ${ids.size} live ids match neither committed state (${committed.size} or ${next.size})`);
    const landed = same(next) ? 'committed' : 'unchanged';
    outcomes[landed]++;
    await assertCommittedState(f.kbDir, landed === 'committed' ? next : committed, f.probe, f.encoder, f.pairs[7], `kill ${it}`);
    if (landed === 'committed') committed = next;
  }
  t.diagnostic(`outcomes over ${RANDOM_KILLS} kills: ${JSON.stringify(outcomes)}`);
  await f.encoder.close();
});

test('kill -9 of kb build mid-write leaves no KB; the next build clears the dead temp folder and succeeds', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const { csv, pairs } = await writePairsFixture(dir, { n: BATCH, seed: 4 });
  const kbDir = join(dir, 'kb');
  const args = ['kb', 'build', '--pairs', csv, '--out', kbDir, '--encoder', 'pixels', '--batch-size', String(ADD_BATCH)];
  const crashed = await startCli(args, 'add:after-first-batch').done;
  assert.equal(crashed.signal, 'SIGKILL', `the build died by SIGKILL (exit ${crashed.code}, stderr: ${crashed.stderr.slice(0, 500)})`);
  assert.ok(!existsSync(kbDir), 'no KB folder after a killed build');
  const leftovers = readdirSync(dir).filter((f) => f.startsWith('.kb.building-'));
  assert.equal(leftovers.length, 1, 'the killed build left its temp folder');
  assert.ok(existsSync(join(dir, leftovers[0], `image.${DEFAULT_KB_DTYPE}`)), 'with the rows it had appended');

  const rebuilt = await startCli(args).done;
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('.kb.building-')),
    [],
    'the dead build’s temp folder is gone',
  );
  const kb = await FileKnowledgeBase.open(kbDir);
  try {
    assert.equal(kb.size, pairs.length);
  } finally {
    await kb.close();
  }
});
