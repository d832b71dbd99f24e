import type { Command } from 'commander';
import { choiceFlag, edgesFromFlags, keyedIntsFlag, listFlag, nonNegativeIntFlag, positiveIntFlag } from '../flag-values.ts';
import { METHOD_KEYS } from '../../experiments/methods.ts';
import { LIFT_BUCKETS } from '../../eval/types.ts';
import { LABEL_MEMORY } from '../../model/config.ts';

interface CompareFlags {
  train: string;
  test: string;
  kb: string;
  out: string;
  config?: string;
  epochs?: string;
  k?: string;
  kMethod?: string;
  jobs: string;
  many?: string;
  few?: string;
  variants?: string;
  seed: string;
  cache?: string;
  json?: boolean;
  quiet?: boolean;
  labelMemory?: string;
  simBias?: boolean;
}

/** `retformer compare`: every variant and baseline on one split, one table. */
export function registerCompareCommand(program: Command): void {
  program
    .command('compare')
    .summary('Train and evaluate every variant and baseline on one split; print one table')
    .description(
      'Train (as child processes, --jobs at a time) and evaluate all methods on one split — MLP only, kNN vote, ' +
        'image-only retrieval (RAC-like), zero-shot, RetFormer no-text / no-image / full / adaptive — and print one ' +
        'table (Many / Medium / Few / Overall). Writes OUT/results.json, OUT/results.md, OUT/runs/<method>, OUT/logs/<method>.log; ' +
        'a run already trained with the same settings, training data and KB is reused. A method the KB cannot serve ' +
        '(e.g. kNN vote on a KB without labels) is skipped before any training, with the reason under the table.',
    )
    .requiredOption('--train <file>', 'training split (CSV manifest, image folder or LIFT .txt)')
    .requiredOption('--test <file>', 'test split')
    .requiredOption('--kb <dir>', 'knowledge base folder (retformer kb build)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--config <file>', 'training config JSON passed to every `retformer train`')
    .option('--epochs <n>', 'training epochs (default: the training config)')
    .option('--k <n>', 'neighbours retrieved (default: the training config; kNN vote uses the same)')
    .option('--k-method <list>', 'per-method k overriding --k, e.g. knn-vote=4,image-only=8 (the demo chooses each on validation)')
    .option('--jobs <n>', 'training processes at a time (2 uses both cores)', '2')
    .option('--many <n>', `Many bucket: classes with more than n training images (default ${LIFT_BUCKETS.many})`)
    .option('--few <n>', `Few bucket: classes with fewer than n training images (default ${LIFT_BUCKETS.few})`)
    .option('--variants <list>', `comma-separated methods to run (default all: ${METHOD_KEYS.join(',')})`)
    .option('--seed <n>', 'seed for every training run', '0')
    .option('--label-memory <mode>', `RetFormer rows only: neighbour-label embeddings (${LABEL_MEMORY.join(' | ')}; see retformer train)`)
    .option('--sim-bias', 'RetFormer rows only: the query-neighbour similarity as an attention bias (see retformer train)')
    .option('--cache <dir>', 'embedding cache folder')
    .option('--json', 'print a JSON summary (per method: key, name, metrics) instead of the table')
    .option('--quiet', 'no step lines or progress bars')
    .action(async (flags: CompareFlags) => {
      const options = {
        train: flags.train,
        test: flags.test,
        kb: flags.kb,
        out: flags.out,
        config: flags.config,
        epochs: flags.epochs === undefined ? undefined : positiveIntFlag('--epochs', flags.epochs),
        k: flags.k === undefined ? undefined : positiveIntFlag('--k', flags.k),
        kByMethod: flags.kMethod === undefined ? undefined : keyedIntsFlag('--k-method', flags.kMethod, METHOD_KEYS),
        jobs: positiveIntFlag('--jobs', flags.jobs),
        edges: edgesFromFlags(flags.many, flags.few, LIFT_BUCKETS),
        variants: flags.variants === undefined ? [...METHOD_KEYS] : listFlag('--variants', flags.variants, METHOD_KEYS),
        seed: nonNegativeIntFlag('--seed', flags.seed),
        quiet: Boolean(flags.quiet || flags.json),
        cacheDir: flags.cache,
        fusion: { labelMemory: flags.labelMemory === undefined ? undefined : choiceFlag('--label-memory', flags.labelMemory, LABEL_MEMORY), simBias: flags.simBias },
      };
      const { runComparison } = await import('../../experiments/compare.ts');
      const { formatComparisonTable } = await import('../../experiments/compare-format.ts');
      const results = await runComparison(options);
      if (flags.json) {
        const summary = {
          methods: results.methods.map((m) => ({ key: m.key, name: m.name, kind: m.kind, metrics: m.metrics, trainSeconds: m.trainSeconds })),
          ...(results.skipped ? { skipped: results.skipped } : {}),
          timings: results.timings,
          settings: results.settings,
          results: `${options.out}/results.json`,
        };
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else {
        process.stdout.write(formatComparisonTable(results));
        process.stdout.write(`\nresults: ${options.out}/results.json, ${options.out}/results.md\n`);
      }
    });
}
