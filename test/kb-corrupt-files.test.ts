import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, openSync, readFileSync, statSync, truncateSync, writeSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { buildKnowledgeBase, type FileKbManifest, readManifest } from '../src/kb/index.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

const CLI = resolve('bin/retformer.js');
let dir: string;
let kbDir: string;
let manifest: FileKbManifest;

before(async () => {
  dir = tempDir();
  await writePairsFixture(dir, { n: 40, seed: 3 });
  kbDir = join(dir, 'kb');
  await buildKnowledgeBase({ pairsCsv: join(dir, 'p-pairs.csv'), out: kbDir, encoderSpec: 'pixels', quiet: true });
  manifest = readManifest(kbDir);
});

/** A copy of the KB with one file damaged. */
function damagedCopy(name: string, damage: (path: string) => void): string {
  const copy = join(tempDir(), 'kb');
  cpSync(kbDir, copy, { recursive: true });
  damage(join(copy, name));
  return copy;
}

const truncateHalf = (path: string) => truncateSync(path, Math.floor(statSync(path).size / 2));
const flipBytes = (offset: (size: number) => number) => (path: string) => {
  const size = statSync(path).size;
  const at = offset(size);
  const old = readFileSync(path).subarray(at, at + 8);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(old.map((b) => b ^ 0xff)), 0, old.length, at);
  closeSync(fd);
};

function search(kb: string) {
  return spawnSync('node', [CLI, 'kb', 'search', '--kb', kb, '--image', join(dir, 'images/p3.png'), '-k', '3'], { encoding: 'utf8', env: { ...process.env, RETFORMER_QUIET: '1' } });
}

test('the undamaged KB searches (control)', () => {
  const r = search(kbDir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /p3/);
});

const CASES: Array<[string, (m: FileKbManifest) => string, (path: string) => void]> = [
  ['truncated image index', (m) => m.folder.files.imageIndex, truncateHalf],
  ['image index header bytes flipped', (m) => m.folder.files.imageIndex, flipBytes(() => 0)],
  ['image index middle bytes flipped', (m) => m.folder.files.imageIndex, flipBytes((s) => Math.floor(s / 2))],
  ['truncated text index', (m) => m.folder.files.textIndex, truncateHalf],
  ['truncated image vectors', (m) => m.folder.files.imageVectors, truncateHalf],
  ['image vector bytes flipped', (m) => m.folder.files.imageVectors, flipBytes((s) => Math.floor(s / 3))],
  ['metadata bytes flipped', (m) => m.folder.files.meta, flipBytes((s) => Math.floor(s / 2))],
  ['truncated metadata offsets', (m) => m.folder.files.metaIndex, truncateHalf],
];

for (const [what, file, damage] of CASES) {
  test(`${what}: one line naming the file and how to rebuild, no crash`, () => {
    const name = file(manifest);
    const r = search(damagedCopy(name, damage));
    assert.equal(r.signal, null, `killed by ${r.signal} (native crash)`);
    assert.equal(r.status, 1, `exit ${r.status}; stderr: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`^retformer: .*${name.replace('.', '\\.')}: .*(truncated|checksum|damaged).*rebuild it with retformer kb build`));
  });
}
