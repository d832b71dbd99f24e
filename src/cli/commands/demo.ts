import { resolve } from 'node:path';
import type { Command } from 'commander';
import { nonNegativeIntFlag, positiveIntFlag } from '../flag-values.ts';
import type { DemoPlan } from '../../experiments/demo.ts';
import { RetformerError } from '../../util/errors.ts';

/** --quick: the cheapest run that still exercises every stage (data, encoder fit, KB, training, eval, report). */
const QUICK = { epochs: 1, variants: ['mlp-only', 'knn-vote', 'zero-shot', 'full'], sourceVariants: ['full'], kGrid: [8, 32] };

interface DemoFlags {
  out: string;
  report: string;
  seed: string;
  jobs: string;
  epochs?: string;
  quick?: boolean;
  quiet?: boolean;
}

/** `retformer demo`: the emoji long-tail benchmark end to end (the pipeline is src/experiments/demo.ts). */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .summary('Run the emoji long-tail benchmark end to end and write a report')
    .description(
      'The main job: builds the emoji benchmark from the installed emoji-datasource packages (train: apple+facebook, ' +
        'test: google, external KB: twitter pictures with their texts), builds the three KB sources (downstream = the ' +
        'training pictures with their texts, external, all) with one encoder, chooses k on a validation split carved from ' +
        'the training data, trains RetFormer (full, no-text, no-image, adaptive) and the baselines (MLP only, kNN vote, ' +
        'image-only retrieval, zero-shot) on the "all" KB and the retrieval methods on the other two, runs MLP only and ' +
        'RetFormer with 30% symmetric label noise and audits the noisy labels, prints the tables and writes ' +
        'report/index.html, report/report.md and report/audit.csv. A second run reuses the KBs, embeddings and trained runs.',
    )
    .option('--out <dir>', 'working folder (data, KB, runs, results)', 'out/demo')
    .option('--report <dir>', 'report folder', 'report')
    .option('--seed <n>', 'seed for everything', '0')
    .option('--jobs <n>', 'training processes at a time (3 time-share the 2 cores, so the fifth retrieval variant does not leave a core idle)', '3')
    .option('--epochs <n>', 'training epochs (default: 25, from configs/emoji-demo.json)')
    .option('--quick', `smoke check: ${QUICK.epochs} epoch, methods ${QUICK.variants.join(', ')}, k among ${QUICK.kGrid.join(', ')}, only RetFormer full on the other KB sources`)
    .option('--quiet', 'no progress output')
    .action(async (flags: DemoFlags) => {
      const plan: DemoPlan = {
        out: resolve(flags.out),
        report: resolve(flags.report),
        seed: nonNegativeIntFlag('--seed', flags.seed),
        jobs: positiveIntFlag('--jobs', flags.jobs),
        epochs: flags.epochs === undefined ? (flags.quick ? QUICK.epochs : undefined) : positiveIntFlag('--epochs', flags.epochs),
        variants: flags.quick ? QUICK.variants : undefined,
        sourceVariants: flags.quick ? QUICK.sourceVariants : undefined,
        kGrid: flags.quick ? QUICK.kGrid : undefined,
        quiet: Boolean(flags.quiet),
      };
      if (flags.quick && flags.out === 'out/demo') plan.out = resolve('out/demo-quick');
      if (flags.quick && flags.report === 'report') plan.report = resolve('report/quick');
      if (plan.out === plan.report) throw new RetformerError('--out and --report must be different folders');
      const { formatComparisonTable } = await import('../../experiments/compare-format.ts');
      const { formatDemoSummary, runDemo } = await import('../../experiments/demo.ts');
      const demo = await runDemo(plan);
      process.stdout.write(formatDemoSummary(plan, demo, formatComparisonTable(demo.results)));
    });
}
