import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs, { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join, resolve } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { describeFailure, INTERNAL_ERROR_EXIT } from '../src/cli/failure.ts';
import { EmbeddingCache } from '../src/encoders/cache.ts';
import { buildKnowledgeBase, openKnowledgeBase } from '../src/kb/index.ts';
import { toCsv } from '../src/util/csv.ts';
import { RetformerError, type SystemError, systemErrorMessage, toUserError } from '../src/util/errors.ts';
import { writeFileAtomic } from '../src/util/fs.ts';
import { runDataCli } from './helpers/data-fixtures.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';
import { FakeEncoder } from './helpers/train-fixtures.ts';
import { fillLeaving, mountTmpfs, remountReadOnly, tmpfsUnavailable, unmount } from './helpers/tmpfs.ts';

// Fault injection: a full disk, a read-only folder, a directory where a file belongs, an error
// thrown inside a library. Each must end in one line `retformer: PATH: ...` with nothing half-written.

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, RETFORMER_QUIET: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 and exactly one stderr line matching `re` (no stack, no library source). */
function assertOneLine(r: { code: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr.slice(0, 2000));
  assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, `one line, got ${r.stderr.length} chars:\n${r.stderr.slice(0, 2000)}`);
  assert.match(r.stderr, re);
}

/** Every file under dir (relative paths). */
function listAll(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}

function errnoError(code: string, syscall: string, path?: string): SystemError {
  return Object.assign(new Error(`${code}: simulated, ${syscall}${path ? ` '${path}'` : ''}`), { code, syscall, errno: -1, ...(path ? { path } : {}) });
}

describe('system errors map to one line', () => {
  it('names the file, says what happened in words and keeps the code', () => {
    assert.equal(systemErrorMessage(errnoError('ENOSPC', 'write'), '/data/kb/image.f32'), '/data/kb/image.f32: no space left on device (ENOSPC, write)');
    assert.equal(systemErrorMessage(errnoError('EROFS', 'open', '/ro/kb/lock')), '/ro/kb/lock: read-only file system (EROFS, open)');
    assert.equal(systemErrorMessage(errnoError('EACCES', 'open', '/x/y')), '/x/y: permission denied (EACCES, open)');
    assert.equal(systemErrorMessage(errnoError('EPERM', 'rename', '/x/y')), '/x/y: operation not permitted (EPERM, rename)');
    assert.equal(systemErrorMessage(errnoError('EISDIR', 'rename', '/x/y')), '/x/y: is a directory, expected a file (EISDIR, rename)');
    // a code the table lacks keeps Node's own words
    assert.equal(systemErrorMessage(errnoError('ESTALE', 'open', '/nfs/f')), '/nfs/f: simulated (ESTALE, open)');
  });

  it('the CLI handler: user and system errors are one line (exit 1), anything else a bug with its stack (exit 70)', () => {
    const user = describeFailure(new RetformerError('x.csv:3: empty label'));
    assert.deepEqual(user, { text: 'retformer: x.csv:3: empty label\n', exitCode: 1 });
    const disk = describeFailure(errnoError('ENOSPC', 'write', '/d/f'));
    assert.deepEqual(disk, { text: 'retformer: /d/f: no space left on device (ENOSPC, write)\n', exitCode: 1 });
    const bug = describeFailure(new TypeError('undefined is not a function'));
    assert.equal(bug.exitCode, INTERNAL_ERROR_EXIT);
    assert.match(bug.text, /^retformer: internal error .*\nTypeError: undefined is not a function\n {4}at /);
    assert.equal(toUserError(new Error('plain')), undefined);
  });
});

describe('writeFileAtomic under failing writes (fs mocked in-process: runs without root)', () => {
  let dir: string;
  before(() => {
    dir = tempDir('retformer-faults-');
  });

  /** Make `name` of node:fs throw `err` for the duration of fn (named imports see it through syncBuiltinESMExports). */
  function failing(name: 'writeFileSync' | 'openSync' | 'renameSync', err: Error, fn: () => void): void {
    const m = mock.method(fs, name, () => {
      throw err;
    });
    syncBuiltinESMExports();
    try {
      fn();
    } finally {
      m.mock.restore();
      syncBuiltinESMExports();
    }
  }

  for (const [name, err, words] of [
    ['writeFileSync', errnoError('ENOSPC', 'write'), 'no space left on device \\(ENOSPC, write\\)'],
    ['openSync', errnoError('EACCES', 'open'), 'permission denied \\(EACCES, open\\)'],
    ['renameSync', errnoError('EPERM', 'rename'), 'operation not permitted \\(EPERM, rename\\)'],
  ] as const) {
    it(`${err.code} in ${name}: one line naming the target, old content kept, no temp file`, () => {
      const target = join(dir, `${err.code}.csv`);
      writeFileSync(target, 'old\n');
      failing(name, err, () => {
        assert.throws(
          () => writeFileAtomic(target, 'new content\n'),
          (e: unknown) => e instanceof RetformerError && new RegExp(`^${target}: ${words}$`).test(e.message),
        );
      });
      assert.equal(readFileSync(target, 'utf8'), 'old\n');
      assert.deepEqual(
        readdirSync(dir).filter((n) => n.startsWith(`${err.code}.csv.tmp`)),
        [],
      );
    });
  }

  it('a directory in the way (EISDIR): one line, no temp file left beside it', () => {
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    assert.throws(
      () => writeFileAtomic(folder, 'x'),
      (e: unknown) => e instanceof RetformerError && e.message === `${folder}: is a directory, expected a file (EISDIR, rename)`,
    );
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes('.tmp-')),
      [],
    );
  });
});

describe('embedding cache under a full disk and a torn key file (fs mocked in-process)', () => {
  const dim = 4;
  let dir: string;
  let images: string[];
  let encoder: FakeEncoder;
  before(() => {
    dir = tempDir('retformer-faults-cache-');
    images = Array.from({ length: 6 }, (_, i) => join(dir, `img${i}.png`));
    for (const [i, p] of images.entries()) writeFileSync(p, `picture ${i}`);
    encoder = new FakeEncoder(dim, new Map(images.map((p, i) => [p, Float32Array.from({ length: dim }, (_, j) => 10 * i + j)])));
  });
  const vectorOf = (i: number) => Array.from({ length: dim }, (_, j) => 10 * i + j);
  const rowsOf = (m: Float32Array) => Array.from({ length: m.length / dim }, (_, r) => Array.from(m.subarray(r * dim, (r + 1) * dim)));

  it('two caches opened on the same folder (parallel runs) append after each other, never over each other', async () => {
    const root = join(dir, 'shared');
    const first = new EmbeddingCache(root, encoder);
    const second = new EmbeddingCache(root, encoder); // loaded before the first one writes: it saw 0 rows
    assert.deepEqual(rowsOf(await first.embedImages(encoder, images.slice(0, 3))), [0, 1, 2].map(vectorOf));
    assert.deepEqual(rowsOf(await second.embedImages(encoder, images.slice(3, 6))), [3, 4, 5].map(vectorOf));
    assert.deepEqual(rowsOf(await second.embedImages(encoder, [images[4], images[3]])), [4, 3].map(vectorOf), 'its own rows, from memory');
    const counting = new FakeEncoder(dim, new Map());
    assert.deepEqual(rowsOf(await new EmbeddingCache(root, encoder).embedImages(counting, images)), [0, 1, 2, 3, 4, 5].map(vectorOf));
  });

  it('a key line cut short (no newline) is not trusted: that image is embedded again', async () => {
    const root = join(dir, 'torn');
    await new EmbeddingCache(root, encoder).embedImages(encoder, images.slice(0, 3));
    const [sub] = readdirSync(root);
    const keys = join(root, sub, 'keys.tsv');
    const text = readFileSync(keys, 'utf8');
    writeFileSync(keys, text.slice(0, text.length - 2)); // "...img2.png|..|..\t" : its row number is gone (it read as row 0)
    const again = await new EmbeddingCache(root, encoder).embedImages(encoder, [images[2]]);
    assert.deepEqual(rowsOf(again), [vectorOf(2)]);
  });

  it('a batch cut short by ENOSPC: one line naming the file; the next batch and a reopened cache hold the right vectors', async () => {
    const root = join(dir, 'short');
    const cache = new EmbeddingCache(root, encoder);
    await cache.embedImages(encoder, images.slice(0, 2));
    const original = fs.writeSync;
    const m = mock.method(fs, 'writeSync', (fd: number, buf: Uint8Array, offset?: number, length?: number, position?: number | null) => {
      original(fd, buf, offset ?? 0, Math.min(length ?? buf.byteLength, 6), position ?? null); // six bytes land, then the disk is full
      throw errnoError('ENOSPC', 'write');
    });
    syncBuiltinESMExports();
    try {
      await assert.rejects(cache.embedImages(encoder, images.slice(2, 4)), (e: unknown) => e instanceof RetformerError && /\/vectors\.f32: no space left on device \(ENOSPC, write\)$/.test(e.message));
    } finally {
      m.mock.restore();
      syncBuiltinESMExports();
    }
    assert.deepEqual(rowsOf(await cache.embedImages(encoder, images.slice(3, 6))), [vectorOf(3), vectorOf(4), vectorOf(5)]);
    const reopened = new EmbeddingCache(root, encoder);
    const counting = new FakeEncoder(dim, new Map());
    assert.deepEqual(rowsOf(await reopened.embedImages(counting, [images[0], images[1], images[3], images[4], images[5]])), [0, 1, 3, 4, 5].map(vectorOf));
  });
});

describe('data longtail / data noise: outputs', () => {
  let dir: string;
  let manifest: string;
  before(() => {
    dir = tempDir('retformer-faults-data-');
    const rows = Array.from({ length: 30 }, (_, i) => ({ path: `img/${i}.png`, label: `c${i % 3}` }));
    manifest = join(dir, 'in.csv');
    writeFileSync(manifest, toCsv(['path', 'label'], rows));
  });

  for (const cmd of ['longtail', 'noise'] as const) {
    const args = (out: string, ...more: string[]) =>
      cmd === 'longtail' ? ['longtail', '--manifest', manifest, '--imbalance', '2', '--out', out, ...more] : ['noise', '--manifest', manifest, '--rate', '0.5', '--out', out, ...more];

    it(`${cmd}: --out an existing folder is one line and leaves no temp file`, async () => {
      const folder = join(dir, `${cmd}-folder`);
      mkdirSync(folder);
      const r = await runDataCli(args(folder));
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `retformer: ${folder}: is a directory; --out names the output file\n`);
      assert.deepEqual(readdirSync(folder), []);
      assert.deepEqual(
        readdirSync(dir).filter((n) => n.includes('.tmp-')),
        [],
      );
    });

    it(`${cmd}: refuses to overwrite an existing output unless --force`, async () => {
      const out = join(dir, `${cmd}-out.csv`);
      writeFileSync(out, 'precious\n');
      const refused = await runDataCli(args(out));
      assert.equal(refused.code, 1);
      assert.equal(refused.stderr, `retformer: ${out}: exists; use --force to overwrite it\n`);
      assert.equal(readFileSync(out, 'utf8'), 'precious\n');
      const forced = await runDataCli(args(out, '--force'));
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(readFileSync(out, 'utf8'), /^path,label/);
    });
  }
});

describe('an error thrown after the tfjs wasm backend started', () => {
  it('prints the stack once, not the minified library source, and exits 70', () => {
    // tfjs-backend-wasm installs an uncaughtException handler that rethrows: Node then printed its
    // whole minified source line (39 KB) and exited 7. The CLI's handlers run first.
    const script = resolve('test/helpers/uncaught-after-tfjs.ts');
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' });
    assert.equal(r.status, INTERNAL_ERROR_EXIT, r.stderr.slice(0, 500));
    assert.match(r.stderr, /^retformer: internal error .*\nError: thrown from a timer after tfjs started\n/);
    assert.ok(r.stderr.length < 4000, `stderr is ${r.stderr.length} chars`);
    assert.ok(!r.stderr.includes('WasmBackendModule'), 'no library source');
  });
});

// --- Real faults on a small tmpfs (root only; skipped with the reason elsewhere) -------------------

const work = tempDir('retformer-faults-fs-');
const probe = join(work, 'probe');
mkdirSync(probe);
const skip = tmpfsUnavailable(probe);

describe('a full disk (ENOSPC on a small tmpfs)', { skip }, () => {
  const mnt = join(work, 'full');
  let pairsCsv: string;
  let smallPairsCsv: string;
  let morePairsCsv: string;
  let kbDir: string;
  let trainCsv: string;
  let config: string;

  before(async () => {
    mkdirSync(mnt);
    const data = join(work, 'data');
    ({ csv: pairsCsv } = await writePairsFixture(data, { n: 40, seed: 1, csvName: 'pairs.csv' }));
    ({ csv: smallPairsCsv } = await writePairsFixture(data, { n: 10, seed: 4, prefix: 's', csvName: 'small.csv' }));
    const more = await writePairsFixture(data, { n: 40, seed: 2, prefix: 'q', csvName: 'more.csv' });
    morePairsCsv = more.csv;
    kbDir = join(work, 'kb');
    await buildKnowledgeBase({ pairsCsv, out: kbDir, encoderSpec: 'pixels', batchSize: 16, quiet: true });
    trainCsv = join(data, 'train.csv');
    writeFileSync(trainCsv, toCsv(['path', 'label'], more.pairs.map((p) => ({ path: p.path, label: p.label }))));
    config = join(data, 'cfg.json');
    writeFileSync(config, JSON.stringify({ width: 16, heads: 2, layers: 2, hidden: 16, batchSize: 8, microBatch: 8 }));
  });

  /** Run fn on a fresh tmpfs of `bytes`, unmounted afterwards. */
  async function onTmpfs(bytes: number, fn: () => void | Promise<void>): Promise<void> {
    mountTmpfs(mnt, bytes);
    try {
      await fn();
    } finally {
      unmount(mnt);
    }
  }

  it('kb build with the default encoder: one line (was 39 KB of minified tfjs source, exit 7), nothing left', async () => {
    await onTmpfs(64 * 1024, () => {
      const r = cli('kb', 'build', '--pairs', smallPairsCsv, '--out', join(mnt, 'kb'), '--quiet');
      assertOneLine(r, /^retformer: .*: no space left on device \(ENOSPC, write\)\n$/);
      assert.deepEqual(listAll(mnt), []);
    });
  });

  // 48 KiB: the index file fails inside usearch (no errno); 72 KiB: usearch's file fits, its laid-out copy
  // (src/kb/hnsw-layout.ts) does not. Margins measured with this fixture: 44-56 and 64-80 KiB.
  for (const [size, what, reason] of [
    [48 * 1024, 'failing inside usearch', 'usearch could not write it'],
    [72 * 1024, 'laid out for locality and failing', 'ENOSPC, write'],
  ] as const) {
    it(`kb build, the index file ${what}: one line naming the index file, nothing left`, async () => {
      await onTmpfs(size, () => {
        const r = cli('kb', 'build', '--pairs', pairsCsv, '--out', join(mnt, 'kb'), '--encoder', 'pixels', '--quiet');
        assertOneLine(r, new RegExp(`^retformer: .*/image-000001\\.usearch: no space left on device \\(${reason}\\)\\n$`));
        assert.deepEqual(listAll(mnt), []);
      });
    });
  }

  // 8 KiB: the vector append fails (a write with an errno); 40 KiB: the vectors fit, the new HNSW index file does not
  // (usearch fails without an errno); 76 KiB: usearch's file fits, its laid-out copy does not. Margins measured with
  // this fixture (40 + 40 pairs of dim 128): 32-52 and 60-88 KiB for the last two.
  for (const [leave, where] of [
    [8 * 1024, '\\S+: no space left on device \\(ENOSPC, write\\)'],
    [40 * 1024, 'image-000002\\.usearch: no space left on device \\(usearch could not write it\\)'],
    [76 * 1024, 'image-000002\\.usearch: no space left on device \\(ENOSPC, write\\)'],
  ] as const) {
    it(`kb add with ${leave / 1024} KiB free: one line, the KB keeps its pairs and takes the add once space is back`, async () => {
      await onTmpfs(1024 * 1024, async () => {
        const kb = join(mnt, 'kb');
        cpSync(kbDir, kb, { recursive: true });
        const filler = fillLeaving(mnt, leave);
        const r = cli('kb', 'add', '--kb', kb, '--pairs', morePairsCsv, '--quiet');
        assertOneLine(r, new RegExp(`^retformer: ${kb}/${where}\\n$`));
        rmSync(filler);
        const before = await openKnowledgeBase(kb);
        assert.equal(before.size, 40);
        await before.close();
        const again = cli('kb', 'add', '--kb', kb, '--pairs', morePairsCsv, '--quiet');
        assert.equal(again.code, 0, again.stderr);
        const after = await openKnowledgeBase(kb);
        assert.equal(after.size, 80);
        await after.close();
      });
    });
  }

  it('train: one line naming the checkpoint file, no incomplete checkpoint folder or temp file', async () => {
    await onTmpfs(64 * 1024, () => {
      const out = join(mnt, 'run');
      const r = cli('train', '--train', trainCsv, '--kb', kbDir, '--config', config, '--out', out, '--epochs', '1', '--k', '4', '--cache', join(work, 'cache'), '--quiet');
      assertOneLine(r, /^retformer: .*\/run\/checkpoint\/epoch-1\/\S+: no space left on device \(ENOSPC, write\)\n$/);
      const left = listAll(mnt);
      assert.ok(!left.some((f) => f.includes('.tmp-')), `temp files left: ${left}`);
      assert.ok(!left.some((f) => f.includes('epoch-1')), `incomplete checkpoint left: ${left}`);
    });
  });
});

describe('a read-only folder (a tmpfs remounted read-only)', { skip }, () => {
  const mnt = join(work, 'ro');
  let pairsCsv: string;
  let trainCsv: string;

  before(async () => {
    mkdirSync(mnt);
    const data = join(work, 'ro-data');
    const fixture = await writePairsFixture(data, { n: 12, seed: 3, csvName: 'pairs.csv' });
    pairsCsv = fixture.csv;
    trainCsv = join(data, 'train.csv');
    writeFileSync(trainCsv, toCsv(['path', 'label'], fixture.pairs.map((p) => ({ path: p.path, label: p.label }))));
    mountTmpfs(mnt, 1024 * 1024);
    await buildKnowledgeBase({ pairsCsv, out: join(mnt, 'kb'), encoderSpec: 'pixels', quiet: true });
    remountReadOnly(mnt);
  });
  after(() => {
    if (existsSync(mnt)) unmount(mnt);
  });

  it('kb add into it, kb build, train and data longtail into it: one line each', () => {
    const kb = join(mnt, 'kb');
    assertOneLine(cli('kb', 'add', '--kb', kb, '--pairs', pairsCsv, '--quiet'), new RegExp(`^retformer: ${kb}/\\S+: read-only file system \\(EROFS, open\\)\\n$`));
    assertOneLine(cli('kb', 'build', '--pairs', pairsCsv, '--out', join(mnt, 'kb2'), '--encoder', 'pixels', '--quiet'), /^retformer: .*: read-only file system \(EROFS, \w+\)\n$/);
    assertOneLine(cli('train', '--train', trainCsv, '--kb', kb, '--out', join(mnt, 'run'), '--epochs', '1', '--quiet'), /^retformer: .*\/run: read-only file system \(EROFS, mkdir\)\n$/);
    assertOneLine(cli('data', 'longtail', '--manifest', trainCsv, '--imbalance', '2', '--out', join(mnt, 'lt.csv')), /^retformer: .*lt\.csv: read-only file system \(EROFS, open\)\n$/);
  });
});
