import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildKnowledgeBase } from '../src/kb/index.ts';
import { openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import type { KbManifest } from '../src/kb/types.ts';
import { ReadWriteGate } from '../src/serve/gate.ts';
import { checkImage } from '../src/serve/images.ts';
import { KbService } from '../src/serve/kb-service.ts';
import { type KbWriteRunner, ProcessWrites } from '../src/serve/kb-writes.ts';
import { RetformerError } from '../src/util/errors.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';
import { makeServeFixture } from './helpers/serve-fixtures.ts';

after(() => removeTempDirs());

describe('KB writes of the service', () => {
  it('commits additions that wait together as one transaction, and isolates a bad one', async () => {
    const fx = await makeServeFixture({ n: 5 });
    const calls: string[][] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    // a runner over the fake KB whose first commit waits until the test lets it go
    const runner: KbWriteRunner = {
      add: async (pairs, options) => {
        calls.push(pairs.map((p) => p.meta.id));
        if (calls.length === 1) await held;
        const w = await fx.deps.kb.beginWrite(options);
        try {
          await w.append(pairs);
        } catch (err) {
          await w.abort();
          throw err;
        }
        return (await w.commit()) as KbManifest;
      },
      remove: async () => fx.deps.kb.manifest,
      close: async () => {},
    };
    const service = new KbService({ kb: fx.deps.kb, encoder: fx.deps.predictor.encoder, gate: new ReadWriteGate(), uploadsDir: join(fx.dir, 'up'), maxPixels: 1e6, writes: runner });
    const image = await checkImage(await fx.png('red'), { maxUploadBytes: 1e6, maxPixels: 1e6 });
    const first = service.add({ image, text: 'first', label: 'red', id: 'a0' });
    while (calls.length === 0) await new Promise((r) => setTimeout(r, 2));
    const rest = ['a1', 'a2', 'a1', 'a3'].map((id, i) => service.add({ image, text: `t${i}`, label: 'red', id }).then((r) => r.id, (e: Error) => `error: ${e.message}`));
    await new Promise((r) => setTimeout(r, 50)); // let them all embed and queue
    release();
    assert.equal((await first).id, 'a0');
    const results = await Promise.all(rest);
    // the two requests for id a1: one lands, the other is refused as a duplicate; a2 and a3 land
    assert.deepEqual([results[1], results[3]], ['a2', 'a3']);
    assert.deepEqual([results[0], results[2]].map((r) => (r === 'a1' ? 'a1' : /duplicate id "a1"/.test(r) ? 'dup' : r)).sort(), ['a1', 'dup']);
    // the first alone; the four that waited as one group (refused: a duplicate inside); then each alone
    const sorted = (ids: string[]) => [...ids].sort();
    assert.deepEqual(calls[0], ['a0']);
    assert.deepEqual(sorted(calls[1]), ['a1', 'a1', 'a2', 'a3']);
    assert.deepEqual(calls.slice(2).map((c) => c.length), [1, 1, 1, 1]);
    assert.deepEqual(sorted(calls.slice(2).flat()), ['a1', 'a1', 'a2', 'a3']);
    assert.equal(fx.deps.kb.size, 5 + 4);
  });

  it('commits through a writer process on the KB spec; the served KB refreshes to it', async () => {
    const dir = tempDir('retformer-serve-writes-');
    const { csv, pairs } = await writePairsFixture(dir, { n: 6, seed: 2 });
    const spec = join(dir, 'kb');
    await buildKnowledgeBase({ pairsCsv: csv, out: spec, encoderSpec: 'pixels', quiet: true });
    const served = await openKnowledgeBaseSpec(spec);
    const writes = new ProcessWrites(served.spec);
    try {
      const vectors = await served.vectors([0], 'image');
      const texts = await served.vectors([0], 'text');
      const manifest = await writes.add([{ meta: { id: 'new-1', text: 'new', source: join(dir, pairs[0].path), label: pairs[0].label }, imageVector: vectors, textVector: texts }], {});
      assert.equal(manifest.generation, 2);
      assert.equal(served.size, 6, 'the served handle keeps its generation until it refreshes');
      await served.refresh();
      assert.equal(served.size, 7);
      await assert.rejects(writes.remove(['no-such-id']), (err: Error) => err instanceof RetformerError && /unknown id "no-such-id"/.test(err.message));
      await assert.rejects(writes.add([{ meta: { id: 'x', text: 'x', source: '/x', label: 'not-a-label' }, imageVector: vectors, textVector: texts }], {}), /unknown label/);
      await writes.remove(['new-1']);
      await served.refresh();
      assert.equal(served.size, 6);
    } finally {
      await writes.close();
      await served.close();
    }
    await assert.rejects(writes.add([], {}), /shutting down|stopped/);
  });
});
