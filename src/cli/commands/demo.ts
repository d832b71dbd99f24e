import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { nonNegativeIntFlag, positiveIntFlag } from '../../eval/cli-args.ts';
import { RetformerError } from '../../util/errors.ts';
import { writeJsonAtomic } from '../../util/fs.ts';

/** What the demo runs; `--quick` is the smoke-check preset. */
interface DemoPlan {
  out: string;
  report: string;
  seed: number;
  jobs: number;
  epochs?: number;
  variants?: string[];
  quiet: boolean;
}

/** --quick: the cheapest run that still exercises every stage (data, encoder fit, KB, training, eval, report). */
const QUICK = { epochs: 1, variants: ['mlp-only', 'knn-vote', 'zero-shot', 'full'] };

/** The training recipe every method of the demo uses (see configs/README.md for why it differs from the paper's). */
export const DEMO_CONFIG = fileURLToPath(new URL('../../../configs/emoji-demo.json', import.meta.url));

interface DemoFlags {
  out: string;
  report: string;
  seed: string;
  jobs: string;
  epochs?: string;
  quick?: boolean;
  quiet?: boolean;
}

function say(plan: DemoPlan, line: string): void {
  if (!plan.quiet) process.stderr.write(`demo: ${line}\n`);
}

/**
 * Reuse the KB of an earlier demo run when it was built from the same pairs with the same encoder
 * and seed (the stamp beside it says so); otherwise build it afresh.
 */
async function ensureKb(plan: DemoPlan, pairsCsv: string): Promise<string> {
  const { buildKnowledgeBase, openKnowledgeBase } = await import('../../kb/index.ts');
  const kbDir = join(plan.out, 'kb');
  const stampFile = join(plan.out, 'kb.stamp.json');
  const stamp = { pairs: readFileSync(pairsCsv, 'utf8').length, pairsCsv, encoder: 'embedded', seed: plan.seed };
  if (existsSync(kbDir) && existsSync(stampFile)) {
    const old = JSON.parse(readFileSync(stampFile, 'utf8')) as typeof stamp;
    if (JSON.stringify(old) === JSON.stringify(stamp)) {
      try {
        const kb = await openKnowledgeBase(kbDir);
        const size = kb.size;
        await kb.close();
        say(plan, `reusing the knowledge base in ${kbDir} (${size} pairs)`);
        return kbDir;
      } catch {
        // unreadable: rebuild below
      }
    }
  }
  rmSync(kbDir, { recursive: true, force: true });
  rmSync(stampFile, { force: true });
  say(plan, 'fitting the embedded encoder on the KB pairs and building the knowledge base');
  await buildKnowledgeBase({ pairsCsv, out: kbDir, encoderSpec: 'embedded', seed: plan.seed, quiet: plan.quiet });
  writeJsonAtomic(stampFile, stamp);
  return kbDir;
}

/** The main job: the emoji long-tail benchmark end to end, with a table and a report. */
export async function runDemo(plan: DemoPlan): Promise<void> {
  const t0 = performance.now();
  const { buildEmojiBenchmark } = await import('../../data/emoji.ts');
  const { runComparison } = await import('../../eval/compare.ts');
  const { formatMetricsTable } = await import('../../eval/metrics.ts');
  const { renderReport } = await import('../../eval/report/index.ts');

  say(plan, `1/4 building the emoji benchmark in ${join(plan.out, 'data')}`);
  const bench = await buildEmojiBenchmark(join(plan.out, 'data'), { quiet: plan.quiet });
  say(
    plan,
    `    train ${bench.counts.train} (${bench.vendors.train.join('+')}), test ${bench.counts.test} (${bench.vendors.test.join('+')}), ` +
      `KB ${bench.counts.kb} (${bench.vendors.kb.join('+')}), ${bench.counts.classes} classes`,
  );

  say(plan, '2/4 knowledge base');
  const kbDir = await ensureKb(plan, bench.files.kb);

  say(plan, `3/4 training and evaluating every method (${plan.jobs} processes at a time)`);
  const results = await runComparison({
    train: bench.files.train,
    test: bench.files.test,
    kb: kbDir,
    out: join(plan.out, 'compare'),
    config: DEMO_CONFIG,
    epochs: plan.epochs,
    jobs: plan.jobs,
    edges: bench.edges,
    seed: plan.seed,
    quiet: plan.quiet,
    ...(plan.variants ? { variants: plan.variants } : {}),
  });

  say(plan, `4/4 writing the report to ${plan.report}`);
  await renderReport(results, plan.report);

  const minutes = (performance.now() - t0) / 60000;
  process.stdout.write(
    `\nEmoji long-tail benchmark: top-1 % on ${results.test.length} ${bench.vendors.test.join('+')} pictures, ` +
      `${results.classes.length} classes (Many > ${bench.edges.many}, Medium ${bench.edges.few}-${bench.edges.many}, Few < ${bench.edges.few} training pictures)\n\n`,
  );
  process.stdout.write(formatMetricsTable(results.methods.map((m) => ({ name: m.name, metrics: m.metrics }))));
  process.stdout.write(`\nreport: ${join(plan.report, 'index.html')} (and report.md); results: ${join(plan.out, 'compare', 'results.json')}\n`);
  process.stdout.write(`finished in ${minutes.toFixed(1)} min\n`);
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .summary('Run the emoji long-tail benchmark end to end and write a report')
    .description(
      'The main job: builds the emoji benchmark from the installed emoji-datasource packages (train: apple+facebook, ' +
        'test: google, KB: twitter pictures with their texts), fits the embedded encoder and builds the KB, trains ' +
        'RetFormer (full, no-text, no-image, adaptive) and the baselines (MLP only, kNN vote, image-only retrieval, ' +
        'zero-shot), evaluates everything on the test vendor, prints one table and writes report/index.html and ' +
        'report/report.md. A second run reuses the KB, embeddings and trained runs.',
    )
    .option('--out <dir>', 'working folder (data, KB, runs, results)', 'out/demo')
    .option('--report <dir>', 'report folder', 'report')
    .option('--seed <n>', 'seed for everything', '0')
    .option('--jobs <n>', 'training processes at a time (3 time-share the 2 cores, so the fifth retrieval variant does not leave a core idle)', '3')
    .option('--epochs <n>', 'training epochs (default: 25, from configs/emoji-demo.json)')
    .option('--quick', `smoke check: ${QUICK.epochs} epochs, methods ${QUICK.variants.join(', ')}`)
    .option('--quiet', 'no progress output')
    .action(async (flags: DemoFlags) => {
      const plan: DemoPlan = {
        out: resolve(flags.out),
        report: resolve(flags.report),
        seed: nonNegativeIntFlag('--seed', flags.seed),
        jobs: positiveIntFlag('--jobs', flags.jobs),
        epochs: flags.epochs === undefined ? (flags.quick ? QUICK.epochs : undefined) : positiveIntFlag('--epochs', flags.epochs),
        variants: flags.quick ? QUICK.variants : undefined,
        quiet: Boolean(flags.quiet),
      };
      if (flags.quick && flags.out === 'out/demo') plan.out = resolve('out/demo-quick');
      if (flags.quick && flags.report === 'report') plan.report = resolve('report/quick');
      if (plan.out === plan.report) throw new RetformerError('--out and --report must be different folders');
      await runDemo(plan);
    });
}
