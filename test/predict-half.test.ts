import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Predictor } from '../src/infer/predictor.ts';
import type { KnowledgeBase, Modality } from '../src/kb/types.ts';
import { trainRun } from '../src/train/index.ts';
import { floatToHalf, halfToFloat } from '../src/util/half.ts';
import { makeClusteredProblem, makeTmp } from './helpers/train-fixtures.ts';

/**
 * An f16 KB hands the Predictor its stored bits (KnowledgeBase.halfVectors), which the forward graph
 * casts itself; a KB without them goes through vectors(). Both must give the same predictions.
 */

const tmp = makeTmp('retformer-half-');
after(() => tmp.cleanup());

/** `kb` as an f16 KB would serve it: vectors() decodes the f16-rounded rows; halfVectors() (when `half`) gives their bits. */
function asF16(kb: KnowledgeBase, half: boolean): KnowledgeBase & { halfCalls: number } {
  const bits = async (rows: readonly number[], modality: Modality) => floatToHalf(await kb.vectors(rows, modality));
  const wrapped = {
    manifest: kb.manifest,
    dim: kb.dim,
    encoderId: kb.encoderId,
    size: kb.size,
    halfCalls: 0,
    search: kb.search.bind(kb),
    meta: kb.meta.bind(kb),
    close: async () => {},
    vectors: async (rows: readonly number[], modality: Modality) => halfToFloat(await bits(rows, modality)),
    ...(half
      ? {
          halfVectors: async (rows: readonly number[], modality: Modality) => {
            wrapped.halfCalls++;
            return bits(rows, modality);
          },
        }
      : {}),
  };
  return wrapped;
}

for (const [name, config] of [
  ['the paper\'s model', {}],
  ['label memory and similarity bias, adaptive', { labelMemory: 'tied', simBias: true, adaptive: true }],
] as const) {
  test(`predictions from f16 bits cast in the graph equal those from decoded vectors (${name})`, async () => {
    const p = makeClusteredProblem({ dim: 16, trainCounts: [8, 5, 3], testPerClass: 4, kbPerClass: 5, imageNoise: 1, textNoise: 0.3, seed: 7 });
    const outDir = join(tmp.dir, name.replace(/\W+/g, '-'));
    await trainRun({ dataset: p.train, kb: p.kb, encoder: p.encoder, embeddings: p.trainEmbeddings, outDir, quiet: true, config: { batchSize: 8, microBatch: 8, width: 8, heads: 2, layers: 2, hidden: 16, k: 4, seed: 2, epochs: 2, ...config } });
    const predict = async (kb: KnowledgeBase) => {
      const run = await Predictor.fromRun(outDir, { kbInstance: kb, encoder: p.encoder, batchSize: 5 }); // batches of 5: slots shared across queries
      try {
        return await run.classifyEmbeddings(p.testEmbeddings);
      } finally {
        await run.close();
      }
    };
    const halfKb = asF16(p.kb, true);
    const viaHalf = await predict(halfKb);
    const viaF32 = await predict(asF16(p.kb, false));
    assert.ok(halfKb.halfCalls > 0, 'the f16 path was taken');
    assert.equal(viaHalf.length, viaF32.length);
    viaHalf.forEach((h, i) => {
      const f = viaF32[i];
      assert.equal(h.label, f.label, `query ${i}: label`);
      assert.deepEqual(h.neighbours.map((nb) => nb.id), f.neighbours.map((nb) => nb.id));
      for (let c = 0; c < f.probs.length; c++) assert.ok(Math.abs(h.probs[c] - f.probs[c]) < 1e-6, `query ${i}: class ${c} probability`);
      for (let j = 0; j < f.attention.length; j++) assert.ok(Math.abs(h.attention[j] - f.attention[j]) < 1e-6, `query ${i}: attention ${j}`);
      assert.ok(Math.abs((h.gate ?? 0) - (f.gate ?? 0)) < 1e-6, 'gate');
    });
  });
}
