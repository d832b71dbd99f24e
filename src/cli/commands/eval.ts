import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { edgesFromFlags, positiveIntFlag, probabilityFlag } from '../flag-values.ts';
import { LIFT_BUCKETS } from '../../eval/types.ts';
import { RetformerError } from '../../util/errors.ts';

interface EvalFlags {
  run: string;
  test: string;
  kb?: string;
  many?: string;
  few?: string;
  cache?: string;
  batchSize: string;
  abstainBelow?: string;
  json?: boolean;
  quiet?: boolean;
}

/** `retformer eval`: long-tail metrics of a trained run on a test split. */
export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .summary('Long-tail metrics of a trained run on a test split (Many/Medium/Few/Overall, macro-F1, per class)')
    .description(
      'Evaluate a trained run on a test split: top-1 accuracy (%) overall and per long-tail bucket (Many/Medium/Few, ' +
        'mean of per-class accuracies, buckets from the TRAINING counts as LIFT does), macro-F1, worst class, per-class accuracy.',
    )
    .requiredOption('--run <dir>', 'run folder written by `retformer train`')
    .requiredOption('--test <file>', 'test split: CSV manifest (path,label[,text]), image folder root/<label>/*, or LIFT .txt split')
    .option('--kb <dir>', "the run's KB at another path (default: the path recorded in RUN/kb.json)")
    .option('--many <n>', `Many bucket: classes with more than n training images (default ${LIFT_BUCKETS.many})`)
    .option('--few <n>', `Few bucket: classes with fewer than n training images (default ${LIFT_BUCKETS.few})`)
    .option('--cache <dir>', 'embedding cache folder (default $RETFORMER_CACHE or ./.cache/retformer/embeddings)')
    .option('--batch-size <n>', 'queries per prediction batch', '256')
    .option('--abstain-below <p>', 'also report coverage and accuracy when pictures whose top probability is below p (0..1) abstain, overall and per bucket')
    .option('--json', 'print the metrics as JSON (keys overall, many, medium, few, balanced, ece, macroF1, worstClass, perClass, buckets, n; abstention with --abstain-below)')
    .option('--quiet', 'no progress bars')
    .action(async (flags: EvalFlags) => {
      const edges = edgesFromFlags(flags.many, flags.few, LIFT_BUCKETS);
      const batchSize = positiveIntFlag('--batch-size', flags.batchSize);
      const abstainBelow = flags.abstainBelow === undefined ? undefined : probabilityFlag('--abstain-below', flags.abstainBelow);
      const runDir = resolve(flags.run);
      if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
      const testFile = resolve(flags.test);
      if (!existsSync(testFile)) throw new RetformerError(`${testFile}: test split not found (--test)`);
      const quiet = Boolean(flags.quiet || flags.json);
      const { readDataset } = await import('../../data/index.ts');
      const test = readDataset(testFile);
      const { Predictor } = await import('../../infer/predictor.ts');
      const { evaluateRun } = await import('../../eval/evaluate.ts');
      const run = await Predictor.fromRun(runDir, { kb: flags.kb });
      try {
        const { metrics, abstention } = await evaluateRun(run, test, { edges, cacheDir: flags.cache, batchSize, quiet, abstainBelow });
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(abstention ? { ...metrics, abstention } : metrics, null, 2)}\n`);
        } else {
          const { formatEvalText } = await import('../../eval/format.ts');
          const name = `${run.config.variant}${run.config.adaptive === true ? ' (adaptive)' : ''}`;
          process.stdout.write(formatEvalText(name, metrics, run.classes, run.trainCounts));
          if (abstention) {
            const { formatAbstention } = await import('../../eval/calibration.ts');
            process.stdout.write(`\n${formatAbstention(abstention)}\n`);
          }
        }
      } finally {
        await run.close();
      }
    });
}
