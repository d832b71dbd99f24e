import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { positiveIntFlag, probabilityFlag } from '../../eval/cli-args.ts';
import { RetformerError } from '../../util/errors.ts';

interface PredictFlags {
  run: string;
  image: string;
  top: string;
  abstainBelow?: string;
  json?: boolean;
}

/** `retformer predict`: classify one picture and show the neighbours behind the answer. */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .summary('Classify one image and show the neighbours behind the answer')
    .description(
      'Classify one image with a trained run: the label and its probability, the top classes, and the k KB neighbours ' +
        'with their text, similarity and attention weight in the fusion.',
    )
    .requiredOption('--run <dir>', 'run folder written by `retformer train`')
    .requiredOption('--image <file>', 'the picture to classify (PNG, JPEG, WebP, ...)')
    .option('--top <n>', 'how many top classes to list', '5')
    .option('--abstain-below <p>', 'abstain (say so, with the best guess) when the top probability is below p (0..1)')
    .option('--json', 'print the prediction as JSON')
    .action(async (flags: PredictFlags) => {
      const top = positiveIntFlag('--top', flags.top);
      const abstainBelow = flags.abstainBelow === undefined ? undefined : probabilityFlag('--abstain-below', flags.abstainBelow);
      const runDir = resolve(flags.run);
      if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
      const image = resolve(flags.image);
      if (!existsSync(image)) throw new RetformerError(`${image}: image file not found (--image)`);
      if (statSync(image).isDirectory()) throw new RetformerError(`${image}: is a folder, expected an image file (--image)`);
      const { loadRun } = await import('../../train/run.ts');
      const { formatPredictionText, predictionReport } = await import('../../eval/format.ts');
      const run = await loadRun(runDir);
      try {
        const embedding = await run.encoder.embedImages([image]); // [1, dim]
        const [prediction] = await run.predict(embedding);
        const report = predictionReport(image, prediction, run.classes, top, abstainBelow);
        process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatPredictionText(report));
      } finally {
        await run.close();
      }
    });
}
