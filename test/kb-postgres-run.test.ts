/**
 * Every command that takes a KB takes a Postgres one: `kb build` into postgres://, `train` against
 * it, and `predict` / `eval` reopening the run from the spec it recorded (PGlite's socket server over
 * the wire; the CLI runs as child processes, so the calls are asynchronous: the server lives in
 * this process).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { startPgliteServer } from '../src/kb/postgres/pglite-server.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);
const CLI = resolve('bin/retformer.js');
const run = async (...args: string[]) => (await promisify(execFile)('node', [CLI, ...args], { encoding: 'utf8', env: { ...process.env, RETFORMER_QUIET: '1' } })).stdout;

test('train, predict and eval against a Postgres KB, the run reopening it from its recorded spec', async () => {
  const server = await startPgliteServer({ maxConnections: 16 });
  try {
    const work = tempDir();
    const { csv, pairs } = await writePairsFixture(work, { n: 24, seed: 5 });
    const spec = server.specFor('shapes_run');
    await run('kb', 'build', '--pairs', csv, '--out', spec, '--encoder', 'pixels');
    const runDir = join(work, 'run');
    await run('train', '--train', csv, '--kb', spec, '--out', runDir, '--epochs', '1', '--k', '4', '--quiet');
    const recorded = JSON.parse(readFileSync(join(runDir, 'kb.json'), 'utf8'));
    assert.equal(recorded.spec, spec, 'the run records the Postgres spec');
    assert.equal(recorded.dir, undefined, 'and no folder');

    const out = JSON.parse(await run('predict', '--run', runDir, '--image', join(work, pairs[3].path), '--json'));
    assert.equal(out.neighbours.length, 4, 'the k neighbours come from the Postgres KB');
    assert.ok(out.neighbours.every((n: { id: string }) => pairs.some((p) => p.id === n.id)));
    const metrics = JSON.parse(await run('eval', '--run', runDir, '--test', csv, '--json'));
    assert.equal(typeof metrics.overall, 'number');
  } finally {
    await server.stop();
  }
});

test('kb compact --hnsw-m is refused for a Postgres KB, with the reason, and the KB is left as it was', async () => {
  const server = await startPgliteServer({ maxConnections: 8 });
  try {
    const work = tempDir();
    const { csv } = await writePairsFixture(work, { n: 8, seed: 6 });
    const spec = server.specFor('shapes_compact_m');
    await run('kb', 'build', '--pairs', csv, '--out', spec, '--encoder', 'pixels');
    const before = JSON.parse(await run('kb', 'stats', '--kb', spec, '--json'));
    await assert.rejects(run('kb', 'compact', '--kb', spec, '--hnsw-m', '24'), /--hnsw-m applies to folder KBs/);
    const after = JSON.parse(await run('kb', 'stats', '--kb', spec, '--json'));
    assert.deepEqual([after.generation, after.count], [before.generation, before.count]);
  } finally {
    await server.stop();
  }
});
