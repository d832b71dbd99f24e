import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { trainRun } from '../src/train/index.ts';
import { Predictor } from '../src/infer/predictor.ts';
import type { HistoryLine } from '../src/train/run-files.ts';
import { RetformerError } from '../src/util/errors.ts';
import { makeClusteredProblem, makeTmp } from './helpers/train-fixtures.ts';

const tmp = makeTmp();
after(() => tmp.cleanup());

const problemOptions = { dim: 16, trainCounts: [12, 8, 3], testPerClass: 4, kbPerClass: 6, imageNoise: 1, textNoise: 0.3, seed: 5 };
const problem = makeClusteredProblem(problemOptions);
const base = { variant: 'full', epochs: 2, batchSize: 8, microBatch: 4, width: 8, heads: 2, layers: 2, hidden: 16, k: 4, seed: 9 };

function run(outDir: string, config: Record<string, unknown>, extra: { resume?: boolean; force?: boolean; onEpoch?: (line: HistoryLine) => void } = {}) {
  return trainRun({ dataset: problem.train, kb: problem.kb, encoder: problem.encoder, embeddings: problem.trainEmbeddings, outDir: join(tmp.dir, outDir), quiet: true, config, ...extra });
}

const weights = (dir: string) => readFileSync(join(tmp.dir, dir, 'model', 'weights.bin'));
const historyEpochs = (dir: string) =>
  readFileSync(join(tmp.dir, dir, 'history.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).epoch);

/** Emulate "stopped after epoch 1 of 2": train 1 epoch, then rewrite the saved config to 2 epochs. */
async function interruptedAfterEpoch1(dir: string) {
  await run(dir, { ...base, epochs: 1 });
  const cfgFile = join(tmp.dir, dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, epochs: 2 }));
  assert.equal(JSON.parse(readFileSync(join(tmp.dir, dir, 'checkpoint', 'state.json'), 'utf8')).epoch, 1);
}

test('a run writes its config, KB id, classes, counts, history, checkpoint and model', async () => {
  const r = await run('a', base);
  assert.ok(r.samplesPerSecond > 0);
  const dir = join(tmp.dir, 'a');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.equal(config.variant, 'full');
  assert.equal(config.k, 4);
  assert.equal(config.seed, 9);
  assert.equal(config.lr, 5e-4); // paper default kept
  const kb = JSON.parse(readFileSync(join(dir, 'kb.json'), 'utf8'));
  assert.equal(kb.encoderId, problem.encoder.id);
  assert.equal(readFileSync(join(dir, 'classes.txt'), 'utf8'), 'c0\nc1\nc2\n');
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'train-counts.json'), 'utf8')), [12, 8, 3]);
  const history = readFileSync(join(dir, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(
    history.map((h) => h.epoch),
    [1, 2],
  );
  assert.ok(history.every((h) => Number.isFinite(h.loss) && h.samplesPerSecond > 0));
  assert.equal(JSON.parse(readFileSync(join(dir, 'checkpoint', 'state.json'), 'utf8')).epoch, 2);
  assert.ok(existsSync(join(dir, 'model', 'weights.bin')));
});

test('same seed gives identical weights; another seed does not', async () => {
  await run('b', base);
  assert.deepEqual(weights('a'), weights('b'));
  await run('c', { ...base, seed: 10 });
  assert.notDeepEqual(weights('a'), weights('c'));
});

test('resume continues from the checkpoint to the same weights as an uninterrupted run', async () => {
  await run('r', { ...base, epochs: 1 });
  await assert.rejects(run('r', { ...base, epochs: 1 }), /--resume .*--force/);
  // a resumed run keeps its saved config: a differing flag is refused
  await assert.rejects(run('r', { ...base, epochs: 2 }, { resume: true }), RetformerError);
  // emulate "stopped after epoch 1 of 2": rewrite config with epochs 2, then resume
  const cfgFile = join(tmp.dir, 'r', 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, epochs: 2 }));
  const trained: number[] = [];
  await run('r', {}, { resume: true, onEpoch: (l) => trained.push(l.epoch) });
  assert.deepEqual(trained, [2], 'the resume trains only the remaining epoch');
  assert.deepEqual(historyEpochs('r'), [1, 2]);
  assert.deepEqual(weights('r'), weights('a'));
  // resuming a finished run trains nothing and leaves history and weights alone
  const done: number[] = [];
  await run('r', {}, { resume: true, onEpoch: (l) => done.push(l.epoch) });
  assert.deepEqual(done, []);
  assert.deepEqual(historyEpochs('r'), [1, 2]);
  assert.deepEqual(weights('r'), weights('a'));
  await run('r', base, { force: true });
  assert.deepEqual(weights('r'), weights('a'));
});

test('resume really starts from the checkpoint on disk: perturbed checkpoint weights change the result', async () => {
  await interruptedAfterEpoch1('rp');
  // scale every saved weight of the epoch-1 checkpoint by 1.01
  const binFile = join(tmp.dir, 'rp', 'checkpoint', 'epoch-1', 'weights.bin');
  const bytes = readFileSync(binFile);
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  for (let i = 0; i < values.length; i++) values[i] *= 1.01;
  writeFileSync(binFile, new Uint8Array(values.buffer));
  const trained: number[] = [];
  await run('rp', {}, { resume: true, onEpoch: (l) => trained.push(l.epoch) });
  assert.deepEqual(trained, [2]);
  assert.deepEqual(historyEpochs('rp'), [1, 2]);
  assert.notDeepEqual(weights('rp'), weights('a'), 'a resume that ignores the checkpoint would equal the uninterrupted run');
});

test('Predictor.fromRun classifies with attention over the neighbours; adaptive runs report a gate', async () => {
  await run('ad', { ...base, adaptive: true });
  for (const dir of ['a', 'ad']) {
    const loaded = await Predictor.fromRun(join(tmp.dir, dir), { kbInstance: problem.kb, encoder: problem.encoder });
    const preds = await loaded.classifyEmbeddings(problem.testEmbeddings);
    await loaded.close();
    assert.equal(preds.length, problem.test.samples.length);
    for (const p of preds) {
      assert.equal(p.neighbours.length, 4);
      assert.equal(p.attention.length, 4);
      assert.ok(Math.abs(p.attention.reduce((a, b) => a + b, 0) - 1) < 1e-4);
      assert.ok(Math.abs(p.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4);
      assert.equal(p.label, p.probs.indexOf(Math.max(...p.probs)));
      assert.equal(p.className, `c${p.label}`);
      assert.equal(p.probability, p.probs[p.label]);
      assert.deepEqual(
        p.top.map((t) => t.label),
        Array.from(p.probs, (q, c) => ({ q, c }))
          .sort((x, y) => y.q - x.q || x.c - y.c)
          .map((t) => t.c),
      );
      assert.ok(Number.isFinite(p.branches.image) && Number.isFinite(p.branches.retrieval));
      if (dir === 'ad') assert.ok(p.gate !== undefined && p.gate > 0 && p.gate < 1);
      else assert.equal(p.gate, undefined);
    }
  }
});

test('single-query predictions equal batched predictions (one graph per row count)', async () => {
  for (const dir of ['a', 'ad']) {
    const batched = await Predictor.fromRun(join(tmp.dir, dir), { kbInstance: problem.kb, encoder: problem.encoder });
    const single = await Predictor.fromRun(join(tmp.dir, dir), { kbInstance: problem.kb, encoder: problem.encoder, batchSize: 1 });
    const all = await batched.classifyEmbeddings(problem.testEmbeddings);
    for (let i = 0; i < all.length; i++) {
      const [one] = await single.classifyEmbeddings(problem.testEmbeddings.subarray(i * problem.dim, (i + 1) * problem.dim));
      assert.equal(one.label, all[i].label);
      assert.deepEqual(
        one.neighbours.map((nb) => nb.id),
        all[i].neighbours.map((nb) => nb.id),
      );
      for (const [c, p] of one.probs.entries()) assert.ok(Math.abs(p - all[i].probs[c]) < 1e-4);
      for (const [j, a] of one.attention.entries()) assert.ok(Math.abs(a - all[i].attention[j]) < 1e-4);
      if (dir === 'ad') assert.ok(Math.abs(one.gate! - all[i].gate!) < 1e-4);
    }
    await batched.close();
    await single.close();
  }
});

test('every variant, plain and adaptive, trains and predicts', async () => {
  for (const variant of ['full', 'no-text', 'no-image', 'image-only', 'mlp-only']) {
    for (const adaptive of variant === 'mlp-only' ? [false] : [false, true]) {
      const dir = `v-${variant}-${adaptive}`;
      await run(dir, { ...base, epochs: 1, variant, adaptive });
      const loaded = await Predictor.fromRun(join(tmp.dir, dir), { kbInstance: problem.kb, encoder: problem.encoder });
      const preds = await loaded.classifyEmbeddings(problem.testEmbeddings.subarray(0, 2 * problem.dim));
      await loaded.close();
      assert.equal(preds.length, 2);
      assert.equal(preds[0].neighbours.length, variant === 'mlp-only' ? 0 : 4);
      assert.equal(preds[0].gate !== undefined, adaptive);
    }
  }
});

test('user errors are one-line RetformerErrors', async () => {
  await assert.rejects(run('bad', { ...base, width: 10, heads: 3 }), (e: unknown) => e instanceof RetformerError && /width must be a multiple of heads/.test(e.message));
  await assert.rejects(run('bad2', { ...base, variant: 'nope' }), (e: unknown) => e instanceof RetformerError && /variant/.test(e.message));
  await assert.rejects(
    trainRun({ dataset: problem.train, kbDir: join(tmp.dir, 'no-such-kb'), outDir: join(tmp.dir, 'x'), quiet: true }),
    (e: unknown) => e instanceof RetformerError && /knowledge base not found/.test(e.message),
  );
  const other = { ...problem.encoder, id: 'another-encoder' } as unknown as typeof problem.encoder;
  await assert.rejects(
    trainRun({ dataset: problem.train, kb: problem.kb, encoder: other, embeddings: problem.trainEmbeddings, outDir: join(tmp.dir, 'y'), quiet: true }),
    (e: unknown) => e instanceof RetformerError && /does not match the KB's encoder/.test(e.message),
  );
});

test('the KB changes under a trained run without retraining: added pairs are retrieved and move the prediction; removing them restores it exactly', async () => {
  const p = makeClusteredProblem(problemOptions); // its own copy: this test edits the KB
  await trainRun({ dataset: p.train, kb: p.kb, encoder: p.encoder, embeddings: p.trainEmbeddings, outDir: join(tmp.dir, 'live'), quiet: true, config: base });
  const weightsBefore = weights('live');
  const loaded = await Predictor.fromRun(join(tmp.dir, 'live'), { kbInstance: p.kb, encoder: p.encoder });
  try {
    const D = problemOptions.dim;
    const q = p.testEmbeddings.subarray(0, D); // a class-0 test picture
    const [before] = await loaded.classifyEmbeddings(q);
    const generation = p.kb.manifest.generation;
    // k new pairs whose image is the query itself and whose text is that of the KB pair nearest a class-2 test picture
    const classTwoPicture = p.testEmbeddings.subarray(8 * D, 9 * D); // test rows are 4 per class
    const [[nearest]] = await p.kb.search(classTwoPicture, { k: 1, queryEncoderId: p.encoder.id });
    const classTwoText = (await p.kb.vectors([nearest.row], 'text')).slice();
    const added = Array.from({ length: base.k }, (_, j) => ({ meta: { id: `live-${j}`, text: 'a c2', source: `/fake/live/${j}.png`, label: 'c2' }, imageVector: q.slice(), textVector: classTwoText }));
    p.kb.add(added);
    assert.ok(p.kb.manifest.generation > generation, 'the add is a new KB generation');
    const [after] = await loaded.classifyEmbeddings(q);
    assert.deepEqual(
      after.neighbours.map((n) => n.id).sort(),
      added.map((a) => a.meta.id).sort(),
      'the new pairs are the nearest neighbours now',
    );
    assert.ok(after.neighbours.every((n) => n.similarity > 0.999));
    assert.ok(
      after.probs.some((x, c) => Math.abs(x - before.probs[c]) > 1e-4),
      'the retrieval branch sees the new neighbours',
    );
    p.kb.remove(added.map((a) => a.meta.id));
    const [restored] = await loaded.classifyEmbeddings(q);
    assert.deepEqual(
      restored.neighbours.map((n) => n.id),
      before.neighbours.map((n) => n.id),
    );
    assert.deepEqual([...restored.probs], [...before.probs]);
  } finally {
    await loaded.close();
  }
  assert.deepEqual(weights('live'), weightsBefore, 'no weight was touched');
});
