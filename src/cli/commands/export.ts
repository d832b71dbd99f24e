import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { RetformerError } from '../../util/errors.ts';
import { positiveIntFlag } from '../flag-values.ts';

interface ExportFlags {
  run: string;
  out: string;
  batch: string;
  force?: boolean;
  json?: boolean;
}

/** `retformer export`: a trained run's inference graph as a standalone ONNX file (src/infer/export.ts). */
export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .summary('Write a trained run as a standalone ONNX model (embeddings and neighbour vectors in, logits and attention out)')
    .description(
      'Export the inference graph of a trained run, weights included, as one ONNX file for any ONNX runtime. Inputs (float32): ' +
        'query [batch, D], neighbourImages [batch, k, D], neighbourTexts [batch, k, D] (the k nearest KB pairs by image, best first; ' +
        'label-memory runs also neighbourLabels [batch, k, C], each pair\'s label one-hot over the run\'s classes; similarity-bias runs neighbourSims [batch, k], each pair\'s cosine similarity to the query; mlp-only runs take query only). Outputs: logits [batch, C], attention [batch, k], imageLogits and retrievalLogits [batch, C] ' +
        '(the MLP and retrieval branches), gate [batch, 1] for adaptive runs. The classes, encoder id, k and dim are in the ' +
        "model's metadata_props (retformer.classes, ...). See docs/api.md.",
    )
    .requiredOption('--run <dir>', 'run folder written by `retformer train`')
    .requiredOption('--out <file>', 'the ONNX file to write, e.g. model.onnx')
    .option('--batch <n>', 'queries per call (the graph has static shapes)', '1')
    .option('--force', 'replace an existing --out file')
    .option('--json', 'print what was written as JSON')
    .action(async (flags: ExportFlags) => {
      const batch = positiveIntFlag('--batch', flags.batch);
      const runDir = resolve(flags.run);
      if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
      const { exportRun } = await import('../../infer/export.ts');
      const info = exportRun(runDir, flags.out, { batch, force: flags.force });
      if (flags.json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else {
        const inputs = info.inputs.map((i) => `${i.name} [${i.dims.join(', ')}]`).join(', ');
        process.stdout.write(`wrote ${info.out} (${(info.bytes / 1024).toFixed(0)} KiB): inputs ${inputs}; outputs ${info.outputs.join(', ')}\n`);
      }
    });
}
