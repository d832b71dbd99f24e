import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exportRun } from '../src/infer/export.ts';
import { Predictor, softmaxRow } from '../src/infer/predictor.ts';
import { trainRun } from '../src/train/index.ts';
import { ort } from '../src/util/ort.ts';
import { runCli } from './helpers/cli.ts';
import { makeClusteredProblem, makeTmp } from './helpers/train-fixtures.ts';

/** `retformer export`: the standalone ONNX file, run by onnxruntime-node, matches the Predictor to 1e-5. */

const tmp = makeTmp();
after(() => tmp.cleanup());
const problem = makeClusteredProblem({ dim: 16, trainCounts: [12, 8, 3], testPerClass: 4, kbPerClass: 6, imageNoise: 1, textNoise: 0.3, seed: 5 });
const base = { epochs: 2, batchSize: 8, microBatch: 4, width: 8, heads: 2, layers: 2, hidden: 16, k: 4, seed: 9 };

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('export', () => {
  for (const variant of [
    { name: 'full', config: { variant: 'full' } },
    { name: 'adaptive', config: { variant: 'full', adaptive: true } },
    { name: 'mlp-only', config: { variant: 'mlp-only' } },
    { name: 'label memory', config: { variant: 'full', labelMemory: 'tied' } },
    { name: 'label memory + similarity bias', config: { variant: 'full', labelMemory: 'table', simBias: true } },
  ]) {
    it(`${variant.name}: the exported graph gives predict's probabilities, attention, branches and gate to 1e-5`, async () => {
      const runDir = join(tmp.dir, variant.name);
      await trainRun({ dataset: problem.train, kb: problem.kb, encoder: problem.encoder, embeddings: problem.trainEmbeddings, outDir: runDir, quiet: true, config: { ...base, ...variant.config } });
      const batch = 3;
      const file = join(tmp.dir, `${variant.name}.onnx`);
      const info = exportRun(runDir, file, { batch });
      const retrieval = variant.name !== 'mlp-only';
      const labelled = variant.name.startsWith('label memory');
      const biased = variant.name.endsWith('similarity bias');
      assert.deepEqual(
        info.inputs.map((i) => i.name),
        retrieval ? ['query', 'neighbourImages', 'neighbourTexts', ...(labelled ? ['neighbourLabels'] : []), ...(biased ? ['neighbourSims'] : [])] : ['query'],
      );
      const predictor = await Predictor.fromRun(runDir, { kbInstance: problem.kb, encoder: problem.encoder });
      const session = await ort.InferenceSession.create(file);
      try {
        const D = problem.dim;
        const k = base.k;
        const query = problem.testEmbeddings.slice(0, batch * D); // [batch, D]
        const expected = await predictor.classifyEmbeddings(query);
        const feeds: Record<string, ort.Tensor> = { query: new ort.Tensor('float32', query, [batch, D]) };
        if (retrieval) {
          // the neighbours as a user of the file would fetch them: k nearest by image, then their image and text vectors
          const found = await problem.kb.search(query, { k, queryEncoderId: problem.encoder.id, modality: 'image' });
          const rows = found.flatMap((l) => l.slice(0, k).map((n) => n.row));
          assert.equal(rows.length, batch * k);
          feeds.neighbourImages = new ort.Tensor('float32', await problem.kb.vectors(rows, 'image'), [batch, k, D]);
          feeds.neighbourTexts = new ort.Tensor('float32', await problem.kb.vectors(rows, 'text'), [batch, k, D]);
          if (labelled) {
            // each pair's label one-hot over the classes the file's metadata lists
            const classes = JSON.parse(info.metadata['retformer.classes']) as string[];
            const onehot = new Float32Array(batch * k * classes.length);
            (await problem.kb.meta(rows)).forEach((m, i) => {
              onehot[i * classes.length + classes.indexOf(m.label!)] = 1;
            });
            feeds.neighbourLabels = new ort.Tensor('float32', onehot, [batch, k, classes.length]);
          }
          if (biased) feeds.neighbourSims = new ort.Tensor('float32', Float32Array.from(found.flatMap((l) => l.slice(0, k).map((nb) => nb.similarity))), [batch, k]);
        }
        const out = await session.run(feeds);
        const C = problem.train.classes.length;
        const logits = out.logits.data as Float32Array;
        for (let b = 0; b < batch; b++) {
          const p = expected[b];
          const probs = softmaxRow(logits.subarray(b * C, (b + 1) * C));
          assert.ok(maxDiff(probs, p.probs) < 1e-5, `probabilities of query ${b}`);
          assert.ok(Math.abs((out.imageLogits.data as Float32Array)[b * C + p.label] - p.branches.image) < 1e-5, 'L_I');
          if (retrieval) {
            assert.ok(Math.abs((out.retrievalLogits.data as Float32Array)[b * C + p.label] - p.branches.retrieval!) < 1e-5, 'L_R');
            assert.ok(maxDiff((out.attention.data as Float32Array).subarray(b * k, (b + 1) * k), p.attention) < 1e-5, 'attention');
          } else {
            assert.equal(out.attention, undefined);
          }
          if (variant.name === 'adaptive') assert.ok(Math.abs((out.gate.data as Float32Array)[b] - p.gate!) < 1e-5, 'gate');
        }
        const meta = JSON.parse(info.metadata['retformer.classes']) as string[];
        assert.deepEqual(meta, problem.train.classes);
        assert.equal(info.metadata['retformer.k'], String(k));
      } finally {
        await session.release();
        await predictor.close();
      }
    });
  }

  it('the command writes the file, refuses to overwrite it without --force, and names the run when it is not one', async () => {
    const runDir = join(tmp.dir, 'full');
    const out = join(tmp.dir, 'cli.onnx');
    const first = await runCli(['export', '--run', runDir, '--out', out, '--batch', '2']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^wrote .*cli\.onnx \(\d+ KiB\): inputs query \[2, 16\], neighbourImages \[2, 4, 16\], neighbourTexts \[2, 4, 16\]; outputs logits, attention, imageLogits, retrievalLogits\n$/);
    assert.ok(existsSync(out));
    const again = await runCli(['export', '--run', runDir, '--out', out]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr.trim(), /^retformer: .*cli\.onnx: exists; use --force to replace it$/);
    assert.equal((await runCli(['export', '--run', runDir, '--out', out, '--force'])).code, 0);
    const notRun = await runCli(['export', '--run', tmp.dir, '--out', join(tmp.dir, 'x.onnx')]);
    assert.notEqual(notRun.code, 0);
    assert.equal(notRun.stderr.trim().split('\n').length, 1, notRun.stderr);
    assert.match(notRun.stderr, /config\.json: missing \(run config\)/);
  });
});
