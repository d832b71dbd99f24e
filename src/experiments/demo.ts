import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompareResults } from '../eval/results.ts';
import { writeJsonAtomic } from '../util/fs.ts';

/** What the demo runs; `--quick` is the smoke-check preset. */
export interface DemoPlan {
  out: string;
  report: string;
  seed: number;
  jobs: number;
  epochs?: number;
  variants?: string[];
  quiet: boolean;
}

/** The training recipe every method of the demo uses (see configs/README.md for why it differs from the paper's). */
export const DEMO_CONFIG = fileURLToPath(new URL('../../configs/emoji-demo.json', import.meta.url));

function say(plan: DemoPlan, line: string): void {
  if (!plan.quiet) process.stderr.write(`demo: ${line}\n`);
}

/**
 * Reuse the KB of an earlier demo run when it was built from the same pairs with the same encoder
 * and seed (the stamp beside it says so); otherwise build it afresh.
 */
async function ensureKb(plan: DemoPlan, pairsCsv: string): Promise<string> {
  const { buildKnowledgeBase, openKnowledgeBase } = await import('../kb/index.ts');
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

/** What a demo run produced: the comparison, where the report went, how long it took. */
export interface DemoResult {
  results: CompareResults;
  /** Test vendors, e.g. ['google']. */
  testVendors: string[];
  edges: { many: number; few: number };
  minutes: number;
}

/** The main job: the emoji long-tail benchmark end to end (data, KB, training, evaluation, report). */
export async function runDemo(plan: DemoPlan): Promise<DemoResult> {
  const t0 = performance.now();
  const { buildEmojiBenchmark } = await import('../data/emoji.ts');
  const { runComparison } = await import('./compare.ts');
  const { renderReport } = await import('../eval/report/index.ts');

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

  return { results, testVendors: bench.vendors.test, edges: bench.edges, minutes: (performance.now() - t0) / 60000 };
}

/** The demo's closing summary on stdout: what was measured, the table, where the report is. */
export function formatDemoSummary(plan: DemoPlan, demo: DemoResult, table: string): string {
  const { results, edges } = demo;
  return (
    `\nEmoji long-tail benchmark: top-1 % on ${results.test.length} ${demo.testVendors.join('+')} pictures, ` +
    `${results.classes.length} classes (Many > ${edges.many}, Medium ${edges.few}-${edges.many}, Few < ${edges.few} training pictures)\n\n` +
    table +
    `\nreport: ${join(plan.report, 'index.html')} (and report.md); results: ${join(plan.out, 'compare', 'results.json')}\n` +
    `finished in ${demo.minutes.toFixed(1)} min\n`
  );
}
