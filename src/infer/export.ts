import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { usesLabels, usesRetrieval, usesSims } from '../model/config.ts';
import { buildRetformerGraph } from '../model/onnx/retformer-graph.ts';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { readRun } from './predictor.ts';

/**
 * A trained run's inference graph as one standalone ONNX file (`retformer export`): the weights
 * baked in, static shapes for `batch` queries, and the run's classes, encoder and k in the model's
 * metadata_props, so that a head can be deployed in any ONNX runtime (Python, C++, the browser).
 *
 * Inputs (float32; rows L2-normalised by the run's encoder, as `retformer` embeds them):
 *   query            [batch, D]     the query image embeddings
 *   neighbourImages  [batch, k, D]  image vectors of each query's k nearest KB pairs (image index), best first
 *   neighbourTexts   [batch, k, D]  the text vectors of the same pairs, same order
 *   neighbourLabels  [batch, k, C]  label-memory runs only: each pair's label one-hot over the
 *                                   run's classes (metadata retformer.classes), all zero for none
 *   neighbourSims    [batch, k]     similarity-bias runs only: each pair's cosine similarity to the query
 * (mlp-only runs take `query` only). A query with fewer than k neighbours leaves the missing rows zero.
 * Outputs:
 *   logits           [batch, C]     fused logits (softmax gives the class probabilities)
 *   attention        [batch, k]     attention per neighbour (mean over layers, heads, directions; sums to 1)
 *   imageLogits      [batch, C]     L_I, the MLP branch          retrievalLogits [batch, C]  L_R
 *   gate             [batch, 1]     adaptive runs only: the retrieval branch's weight
 */
export interface ExportInfo {
  out: string;
  bytes: number;
  inputs: Array<{ name: string; dims: number[] }>;
  outputs: string[];
  metadata: Record<string, string>;
}

export function exportRun(runDir: string, out: string, options: { batch?: number; force?: boolean } = {}): ExportInfo {
  const dir = resolve(runDir);
  const target = resolve(out);
  if (existsSync(target)) {
    if (statSync(target).isDirectory()) throw new RetformerError(`${target}: is a folder (--out names a file)`);
    if (!options.force) throw new RetformerError(`${target}: exists; use --force to replace it`);
  }
  const { config, kbInfo, classes, model, dims, values } = readRun(dir);
  const batch = options.batch ?? 1;
  const D = dims.inputDim;
  const metadata: Record<string, string> = {
    'retformer.classes': JSON.stringify(classes),
    'retformer.encoder': kbInfo.encoderId,
    'retformer.k': String(model.k),
    'retformer.dim': String(D),
    'retformer.variant': `${config.variant}${config.adaptive ? ' (adaptive)' : ''}${usesLabels(model) ? ` (label memory: ${model.labelMemory})` : ''}${usesSims(model) ? ' (similarity bias)' : ''}`,
    'retformer.run': dir,
  };
  const built = buildRetformerGraph(model, dims, batch, { kind: 'infer', weights: values, inputs: 'neighbours', metadata });
  writeFileAtomic(target, built.bytes);
  const inputs = [{ name: 'query', dims: [batch, D] }];
  if (usesRetrieval(model)) inputs.push({ name: 'neighbourImages', dims: [batch, model.k, D] }, { name: 'neighbourTexts', dims: [batch, model.k, D] });
  if (usesLabels(model)) inputs.push({ name: 'neighbourLabels', dims: [batch, model.k, dims.classes] });
  if (usesSims(model)) inputs.push({ name: 'neighbourSims', dims: [batch, model.k] });
  return { out: target, bytes: built.bytes.length, inputs, outputs: built.outputs, metadata };
}
