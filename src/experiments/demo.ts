import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompareResults, ReportSection } from '../eval/results.ts';
import { sectionMarkdown } from './demo-retrieval.ts';

/** What the demo runs; `--quick` is the smoke-check preset. */
export interface DemoPlan {
  out: string;
  report: string;
  seed: number;
  jobs: number;
  epochs?: number;
  variants?: string[];
  /** Methods run on the downstream and external KBs (default kNN vote, image-only retrieval, RetFormer full). */
  sourceVariants?: string[];
  /** Candidate k values chosen among on validation (default K_GRID). */
  kGrid?: number[];
  quiet: boolean;
}

/**
 * Beyond the paper, for the RetFormer rows (not the baselines) and the k selection: the neighbours'
 * labels as tied embeddings and the query-neighbour similarity as an attention bias, kept because
 * they helped on the validation split (docs/results.md, "Neighbour labels and similarity bias"). The
 * similarity bias's gain (simBiasGain 60) is in the recipe, configs/emoji-demo.json.
 */
export const DEMO_FUSION = { labelMemory: 'tied', simBias: true } as const;

/** The training recipe every method of the demo uses (see configs/README.md for why it differs from the paper's). */
export const DEMO_CONFIG = fileURLToPath(new URL('../../configs/emoji-demo.json', import.meta.url));

function say(plan: DemoPlan, line: string): void {
  if (!plan.quiet) process.stderr.write(`demo: ${line}\n`);
}

/** What a demo run produced: the comparison, where the report went, how long it took. */
export interface DemoResult {
  results: CompareResults;
  /** Test vendors, e.g. ['google']. */
  testVendors: string[];
  edges: { many: number; few: number };
  minutes: number;
  /** The KB-source, validation and noise sections (also in the report). */
  sections: ReportSection[];
  /** Wall-clock seconds per stage. */
  timings: Record<string, number>;
}

/** The main job: the emoji long-tail benchmark end to end (data, KBs, settings on validation, training, evaluation, noise, audit, report). */
export async function runDemo(plan: DemoPlan): Promise<DemoResult> {
  const t0 = performance.now();
  const { buildEmojiBenchmark } = await import('../data/emoji.ts');
  const { runComparison } = await import('./compare.ts');
  const { renderReport } = await import('../eval/report/index.ts');
  const { selectSettings, K_GRID } = await import('../eval/select.ts');
  const retrieval = await import('./demo-retrieval.ts');
  const log = (line: string) => say(plan, line);
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => {
    timings[name] = (performance.now() - since) / 1000;
    return performance.now();
  };
  let t = performance.now();

  say(plan, `1/7 building the emoji benchmark in ${join(plan.out, 'data')}`);
  const bench = await buildEmojiBenchmark(join(plan.out, 'data'), { quiet: plan.quiet });
  say(
    plan,
    `    train ${bench.counts.train} (${bench.vendors.train.join('+')}), test ${bench.counts.test} (${bench.vendors.test.join('+')}), ` +
      `external KB ${bench.counts.kb} (${bench.vendors.kb.join('+')}), ${bench.counts.classes} classes`,
  );
  t = lap('data', t);

  say(plan, '2/7 knowledge bases: downstream (the training pictures), external (twitter), all (both), one encoder');
  const sources = await retrieval.ensureSourceKbs(plan.out, bench.files, plan.seed, plan.quiet, log);
  t = lap('kbs', t);

  const kGrid = plan.kGrid ?? [...K_GRID];
  say(plan, `3/7 choosing k among ${kGrid.join(', ')} on a validation split carved from the training data (RetFormer full, "all" KB)`);
  const selection = await selectSettings({
    train: bench.files.train,
    kb: sources.kbs.all,
    out: join(plan.out, 'select'),
    config: DEMO_CONFIG,
    variant: 'full',
    ...DEMO_FUSION,
    grid: { k: kGrid },
    seed: plan.seed,
    epochs: plan.epochs,
    jobs: plan.jobs,
    onStep: (line) => log(`    ${line}`),
  });
  const k = selection.chosen.k;
  say(plan, `    chosen: k = ${k}`);
  t = lap('select', t);

  const common = { test: bench.files.test, config: DEMO_CONFIG, epochs: plan.epochs, jobs: plan.jobs, edges: bench.edges, seed: plan.seed, quiet: plan.quiet, k, fusion: DEMO_FUSION };
  say(plan, `4/7 every method on the "${retrieval.HEADLINE_SOURCE}" KB (${plan.jobs} training processes at a time)`);
  const results = await runComparison({ ...common, train: bench.files.train, kb: sources.kbs.all, out: join(plan.out, 'compare'), ...(plan.variants ? { variants: plan.variants } : {}) });
  t = lap('compare', t);

  say(plan, '5/7 the retrieval methods on the downstream and external KBs');
  const bySource: Record<string, CompareResults> = { [retrieval.HEADLINE_SOURCE]: results };
  for (const source of ['downstream', 'external'] as const) {
    bySource[source] = await runComparison({ ...common, train: bench.files.train, kb: sources.kbs[source], out: join(plan.out, `compare-${source}`), variants: plan.sourceVariants ?? ['knn-vote', 'image-only', 'full'] });
  }
  t = lap('sources', t);

  say(plan, `6/7 noisy labels: ${retrieval.NOISE_RATE * 100}% symmetric noise, MLP only against RetFormer full, then the label audit`);
  const noisy = await retrieval.ensureNoisySplit(plan.out, sources, bench.files.train, plan.seed, log);
  const noisyResults = await runComparison({ ...common, train: noisy.train, kb: noisy.kb, out: join(plan.out, 'compare-noisy'), variants: ['mlp-only', 'full'] });
  const { auditTrainingCsv, writeAudit } = await import('../eval/audit.ts');
  const { Predictor } = await import('../infer/predictor.ts');
  const noisyRun = await Predictor.fromRun(join(plan.out, 'compare-noisy', 'runs', 'full'));
  let audit: Awaited<ReturnType<typeof auditTrainingCsv>>;
  try {
    audit = await auditTrainingCsv(noisyRun, noisy.train, { quiet: plan.quiet });
  } finally {
    await noisyRun.close();
  }
  writeAudit(plan.report, audit);
  t = lap('noise', t);

  say(plan, `7/7 writing the report to ${plan.report}`);
  const outcome = retrieval.noiseOutcome(results, noisyResults);
  results.sections = [retrieval.selectionSection(selection), retrieval.sourcesSection(bySource, retrieval.HEADLINE_SOURCE), ...(outcome ? [retrieval.noiseSection(outcome, audit.summary)] : [])];
  results.settings.kbSource = retrieval.HEADLINE_SOURCE;
  results.settings.kChosenOnValidation = k;
  await renderReport(results, plan.report);
  lap('report', t);

  return { results, testVendors: bench.vendors.test, edges: bench.edges, minutes: (performance.now() - t0) / 60000, sections: results.sections, timings };
}

/** The demo's closing summary on stdout: what was measured, the table, where the report is. */
export function formatDemoSummary(plan: DemoPlan, demo: DemoResult, table: string): string {
  const { results, edges } = demo;
  return (
    `\nEmoji long-tail benchmark: top-1 % on ${results.test.length} ${demo.testVendors.join('+')} pictures, ` +
    `${results.classes.length} classes (Many > ${edges.many}, Medium ${edges.few}-${edges.many}, Few < ${edges.few} training pictures)\n\n` +
    table +
    `\n${demo.sections.map(sectionMarkdown).join('')}` +
    `stages (s): ${Object.entries(demo.timings)
      .map(([name, sec]) => `${name} ${sec.toFixed(0)}`)
      .join(', ')}\n` +
    `\nreport: ${join(plan.report, 'index.html')} (and report.md); results: ${join(plan.out, 'compare', 'results.json')}\n` +
    `finished in ${demo.minutes.toFixed(1)} min\n`
  );
}
