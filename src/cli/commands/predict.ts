import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { positiveIntFlag } from '../../eval/cli-args.ts';
import { RetformerError } from '../../util/errors.ts';

interface PredictFlags {
  run: string;
  image: string;
  kb?: string;
  top: string;
  json?: boolean;
}

/** `retformer predict`: classify one picture and show the neighbours behind the answer. */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .summary('Classify one image and show the neighbours behind the answer')
    .description(
      'Classify one image with a trained run: the label and its probability, the top classes, the two branches\' logits ' +
        'for that label, and the k KB neighbours with their text, similarity and attention weight in the fusion.',
    )
    .requiredOption('--run <dir>', 'run folder written by `retformer train`')
    .requiredOption('--image <file>', 'the picture to classify (PNG, JPEG, WebP, ...)')
    .option('--kb <dir>', "the run's KB at another path (default: the path recorded in RUN/kb.json)")
    .option('--top <n>', 'how many top classes to list', '5')
    .option('--json', 'print the prediction as JSON')
    .action(async (flags: PredictFlags) => {
      const top = positiveIntFlag('--top', flags.top);
      const runDir = resolve(flags.run);
      if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
      const image = resolve(flags.image);
      if (!existsSync(image)) throw new RetformerError(`${image}: image file not found (--image)`);
      if (statSync(image).isDirectory()) throw new RetformerError(`${image}: is a folder, expected an image file (--image)`);
      const { Predictor } = await import('../../infer/predictor.ts');
      const { formatPredictionText, predictionReport } = await import('../../eval/format.ts');
      const predictor = await Predictor.fromRun(runDir, { kb: flags.kb });
      try {
        const [prediction] = await predictor.classify([image], { top });
        const report = predictionReport(image, prediction, predictor.classes, top);
        process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatPredictionText(report));
      } finally {
        await predictor.close();
      }
    });
}
