import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readDataset } from '../src/data/index.ts';
import { openKbEncoder, openKnowledgeBase } from '../src/kb/index.ts';
import { buildKbWithEncoderOf, concatPairsCsv, deriveKb, DEFAULT_TEXT_TEMPLATE, downstreamPairs, fillTemplate, manifestIds, writeDownstreamPairs } from '../src/kb/sources.ts';
import { evaluateRun } from '../src/eval/evaluate.ts';
import { trainRun } from '../src/train/index.ts';
import { Predictor } from '../src/infer/predictor.ts';
import { readRetrievalCache, retrieveNeighbours } from '../src/train/retrieval.ts';
import { RetformerError } from '../src/util/errors.ts';
import { type TinyDataset, writeTinyDataset } from './helpers/eval-dataset.ts';

const BIN = fileURLToPath(new URL('../bin/retformer.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'retformer-kb-sources-'));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [BIN, ...args], { cwd: work }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

describe('downstream pairs from a training manifest', () => {
  it('uses the text column, else the template filled with the label; ids from the id column, else train:<line>', () => {
    const file = join(work, 'pairs.csv');
    writeFileSync(file, 'path,label,text,id\na.png,red_fox,a fox in snow,fox-1\nb.png,owl,,\n');
    const data = readDataset(file);
    const pairs = downstreamPairs(data, { ids: manifestIds(join(work, 'pairs.csv'), data) });
    assert.deepEqual(
      pairs.map((p) => [p.text, p.id, p.label]),
      [
        ['a fox in snow', 'fox-1', 'red_fox'],
        ['a photo of owl', 'train:3', 'owl'],
      ],
    );
    assert.equal(pairs[0].path, resolve(work, 'a.png'));
    assert.equal(downstreamPairs(data, { textTemplate: 'an emoji of {label}' })[1].text, 'an emoji of owl');
    assert.equal(fillTemplate(DEFAULT_TEXT_TEMPLATE, 'red_fox'), 'a photo of red fox');
    assert.throws(() => downstreamPairs(data, { textTemplate: 'no placeholder' }), /\{label\}/);
    assert.throws(() => downstreamPairs(data, { ids: ['same', 'same'] }), (e: Error) => e instanceof RetformerError && /pairs\.csv:3: duplicate id "same" \(first used on line 2\)/.test(e.message));
  });
});

describe('a downstream KB and the leakage guard', () => {
  let data: TinyDataset;
  const kbDir = join(work, 'kb-down');
  before(async () => {
    data = await writeTinyDataset(join(work, 'data'), { trainCounts: [10, 6, 3, 2] });
    const r = await cli(['kb', 'build', '--from-train', data.train, '--out', kbDir, '--encoder', 'pixels', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('kb build --from-train stores every training image with its text, label and its own path as source', async () => {
    const kb = await openKnowledgeBase(kbDir);
    try {
      assert.equal(kb.size, 21);
      const meta = await kb.meta([0, 20]);
      const train = readDataset(data.train);
      assert.equal(meta[0].source, train.samples[0].path);
      assert.equal(meta[0].text, train.samples[0].text);
      assert.equal(meta[0].label, train.samples[0].label);
      assert.equal(meta[1].id, 'train:22');
    } finally {
      await kb.close();
    }
  });

  it('a training image never retrieves its own pair (training, as trainRun caches it), though unguarded search finds it first', async () => {
    const train = readDataset(data.train);
    const kb = await openKnowledgeBase(kbDir);
    const encoder = await openKbEncoder(kbDir);
    try {
      const queries = await encoder.embedImages(train.samples.map((s) => s.path)); // [21, D]
      const raw = await kb.search(queries, { k: 1, queryEncoderId: encoder.id });
      for (const [i, list] of raw.entries()) assert.equal(list[0].source, train.samples[i].path, 'without the guard the own pair is the top hit');
      const guarded = await retrieveNeighbours(kb, queries, { k: 5, extra: 2, queryEncoderId: encoder.id, sources: train.samples.map((s) => s.path), quiet: true });
      const rows = [...new Set(Array.from(guarded.rows).filter((r) => r >= 0))];
      const meta = await kb.meta(rows);
      const sourceOf = new Map(rows.map((r, i) => [r, meta[i].source]));
      for (let q = 0; q < guarded.n; q++) {
        for (let j = 0; j < guarded.k; j++) {
          const row = guarded.rows[q * guarded.k + j];
          assert.ok(row >= 0, 'k neighbours remain after the guard');
          assert.notEqual(sourceOf.get(row), train.samples[q].path, `query ${q} retrieved its own pair`);
        }
      }
    } finally {
      await encoder.close();
      await kb.close();
    }

    // what training itself retrieved (its cache in RUN_DIR/retrieval)
    const runDir = join(work, 'run');
    await trainRun({ trainCsv: data.train, kbDir, outDir: runDir, config: { epochs: 1, k: 4, width: 16, heads: 2, layers: 1, hidden: 16, batchSize: 8 }, cacheDir: join(work, 'cache'), quiet: true });
    const cacheDir = join(runDir, 'retrieval');
    const key = readdirSync(cacheDir).find((f) => f.endsWith('.bin'))!.replace(/\.bin$/, '');
    const cached = readRetrievalCache(cacheDir, key)!;
    const kb2 = await openKnowledgeBase(kbDir);
    try {
      for (let q = 0; q < cached.n; q++) {
        const rows = Array.from(cached.rows.subarray(q * cached.k, (q + 1) * cached.k));
        const sources = (await kb2.meta(rows)).map((m) => m.source);
        assert.ok(!sources.includes(train.samples[q].path), `training query ${q} retrieved its own pair`);
      }
    } finally {
      await kb2.close();
    }

    // ... and evaluating on the training images (validation carved from them, audit) guards the same way
    const run = await Predictor.fromRun(runDir);
    try {
      const r = await evaluateRun(run, train, { cacheDir: join(work, 'cache'), quiet: true });
      r.details.outputs.forEach((p, q) => {
        assert.equal(p.neighbours.length, 4);
        assert.ok(!p.neighbours.some((nb) => nb.source === train.samples[q].path), `evaluated query ${q} saw its own pair`);
      });
    } finally {
      await run.close();
    }
  });

  it('an "all" KB is downstream + external; the same encoder builds a second KB in the same space', async () => {
    const allDir = join(work, 'kb-all');
    const r = await cli(['kb', 'build', '--from-train', data.train, '--pairs', data.kbCsv, '--out', allDir, '--encoder', 'pixels', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const all = await openKnowledgeBase(allDir);
    assert.equal(all.size, 21 + 20);
    await all.close();

    const extDir = join(work, 'kb-ext-shared');
    await buildKbWithEncoderOf(allDir, data.kbCsv, extDir, { quiet: true });
    const ext = await openKnowledgeBase(extDir);
    const allAgain = await openKnowledgeBase(allDir);
    try {
      assert.equal(ext.size, 20);
      assert.equal(ext.encoderId, allAgain.encoderId);
      // the external pairs have the same vectors in both KBs
      assert.deepEqual(await ext.vectors([0], 'image'), await allAgain.vectors([21], 'image'));
    } finally {
      await ext.close();
      await allAgain.close();
    }
    await assert.rejects(buildKbWithEncoderOf(allDir, data.kbCsv, extDir), /already exists/);

    // a derived KB: the downstream rows of "all" relabelled, nothing embedded again
    const derivedDir = join(work, 'kb-derived');
    const kept = await deriveKb(allDir, derivedDir, (meta) => (meta.id.startsWith('train:') ? { ...meta, label: 'relabelled' } : undefined));
    assert.equal(kept, 21);
    const derived = await openKnowledgeBase(derivedDir);
    const allThird = await openKnowledgeBase(allDir);
    try {
      assert.equal(derived.size, 21);
      assert.equal(derived.encoderId, allThird.encoderId);
      assert.deepEqual(await derived.vectors([3], 'text'), await allThird.vectors([3], 'text'));
      assert.deepEqual((await derived.meta([0]))[0], { ...(await allThird.meta([0]))[0], label: 'relabelled' });
      const q = await derived.vectors([5], 'image');
      assert.equal((await derived.search(q, { k: 1, queryEncoderId: derived.encoderId }))[0][0].row, 5);
    } finally {
      await derived.close();
      await allThird.close();
    }
  });

  it('refuses a bad combination of flags, and an id used in both sources, in one line', async () => {
    const none = await cli(['kb', 'build', '--out', join(work, 'x')]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr.trim(), /^retformer: kb build: give --pairs CSV, --from-train CSV, or both$/);
    const tmpl = await cli(['kb', 'build', '--pairs', data.kbCsv, '--text-template', 'a {label}', '--out', join(work, 'y')]);
    assert.match(tmpl.stderr, /--text-template applies only with --from-train/);
    const down = join(work, 'down.csv');
    writeDownstreamPairs(data.train, down);
    assert.throws(() => concatPairsCsv([down, down], join(work, 'both.csv')), /id "train:2" is also used in/);
    assert.ok(readFileSync(down, 'utf8').startsWith('path,text,id,label\n'));
  });
});
