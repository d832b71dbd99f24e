/**
 * The real `Predictor` for latency benchmarks, without training: a run folder with randomly
 * initialised weights of the default shapes (d = 64, 4 heads, 4 layers, k = 32, `classes` classes;
 * latency does not depend on the weight values) over a KB the caller holds, opened with
 * `Predictor.fromRun`. Queries come as embeddings (`classifyEmbeddings`), so the encoder is a stub
 * that names the KB's encoder and embeds nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Encoder } from '../src/encoders/types.ts';
import { Predictor } from '../src/infer/predictor.ts';
import type { KnowledgeBase } from '../src/kb/types.ts';
import { modelConfigOf, TrainConfigSchema } from '../src/train/config.ts';
import { initParams, paramSpecs, saveParams } from '../src/model/params.ts';
import { RUN_FILES, type RunKbInfo } from '../src/train/run-files.ts';

export interface BenchPredictor {
  predictor: Predictor;
  /** Release the predictor (not the KB) and delete the run folder. */
  close(): Promise<void>;
}

export async function benchPredictor(kb: KnowledgeBase, options: { classes?: number; seed?: number } = {}): Promise<BenchPredictor> {
  const classes = options.classes ?? 1000;
  const runDir = mkdtempSync(join(tmpdir(), 'retformer-bench-run-'));
  const config = TrainConfigSchema.parse({ seed: options.seed ?? 0 });
  const dims = { inputDim: kb.dim, classes };
  writeFileSync(join(runDir, RUN_FILES.config), JSON.stringify(config));
  const kbInfo: RunKbInfo = { encoderId: kb.encoderId, generation: kb.manifest.generation, dim: kb.dim, size: kb.size };
  writeFileSync(join(runDir, RUN_FILES.kb), JSON.stringify(kbInfo));
  writeFileSync(join(runDir, RUN_FILES.classes), `${Array.from({ length: classes }, (_, c) => `c${c}`).join('\n')}\n`);
  writeFileSync(join(runDir, RUN_FILES.counts), JSON.stringify(new Array(classes).fill(1)));
  saveParams(join(runDir, RUN_FILES.model), initParams(paramSpecs(modelConfigOf(config), dims), config.seed));
  const encoder: Encoder = {
    id: kb.encoderId,
    dim: kb.dim,
    embedImages: () => Promise.reject(new Error('bench predictor: queries come as embeddings')),
    embedTexts: () => Promise.reject(new Error('bench predictor: queries come as embeddings')),
    save: () => Promise.reject(new Error('bench predictor: nothing to save')),
    close: () => Promise.resolve(),
  };
  const predictor = await Predictor.fromRun(runDir, { kbInstance: kb, encoder, threads: 1, batchSize: 1 });
  return {
    predictor,
    async close() {
      await predictor.close();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}
