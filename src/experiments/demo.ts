import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompareResults, ReportSection } from '../eval/results.ts';
import type { SelectArm } from '../eval/select.ts';
import { Slots } from '../util/concurrency.ts';
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
  const { K_GRID, prepareValidation, selectForArms, selectVoteK } = await import('../eval/select.ts');
  const { METHOD_KEYS } = await import('./methods.ts');
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
  const variants = plan.variants ?? [...METHOD_KEYS];
  const sourceVariants = plan.sourceVariants ?? ['knn-vote', 'image-only', 'full'];
  const runs = (key: string) => variants.includes(key) || sourceVariants.includes(key);
  say(plan, `3/7 choosing k among ${kGrid.join(', ')} for each retrieval method on a validation split carved from the training data ("all" KB)`);
  const split = prepareValidation(bench.files.train, join(plan.out, 'select'), { seed: plan.seed });
  say(plan, `    validation split: ${split.trainSize} training / ${split.validationSize} validation pictures (share ${split.share}, seed ${split.seed})`);
  const arms: SelectArm[] = [{ key: 'full', variant: 'full', ...DEMO_FUSION }, ...(runs('image-only') ? [{ key: 'image-only', variant: 'image-only' as const }] : [])];
  const selections = await selectForArms({
    train: bench.files.train,
    kb: sources.kbs.all,
    out: join(plan.out, 'select'),
    config: DEMO_CONFIG,
    arms,
    split,
    grid: { k: kGrid },
    epochs: plan.epochs,
    jobs: plan.jobs,
    onStep: (line) => log(`    ${line}`),
  });
  if (runs('knn-vote')) selections.push(await selectVoteK({ split, kb: sources.kbs.all, grid: kGrid }));
  const chosenK = Object.fromEntries(selections.map((sel) => [sel.method, sel.chosen.k]));
  const k = chosenK.full;
  // The RetFormer ablations share full's k; each baseline that retrieves has its own.
  const kByMethod: Record<string, number> = { ...chosenK, 'no-text': k, 'no-image': k, adaptive: k };
  say(plan, `    chosen: ${selections.map((sel) => `${sel.method} k = ${sel.chosen.k}`).join(', ')}`);
  t = lap('select', t);

  say(plan, `4/7 noisy labels: ${retrieval.NOISE_RATE * 100}% symmetric noise on the training labels, and the "all" KB with them`);
  const noisy = await retrieval.ensureNoisySplit(plan.out, sources, bench.files.train, plan.seed, log);
  await retrieval.warmTestEmbeddings(sources.kbs.all, bench.files.test, plan.quiet);

  // 5/7: every comparison at once, their training processes sharing plan.jobs slots (no stage waits on another's slowest run).
  say(plan, `5/7 every method on the "${retrieval.HEADLINE_SOURCE}" KB, the retrieval methods on the downstream and external KBs, MLP only and RetFormer full on the noisy labels (${plan.jobs} training processes at a time)`);
  const slots = new Slots(plan.jobs);
  const stepOf = (name: string) => (line: string) => log(`    ${name}: ${line}`);
  const common = { test: bench.files.test, config: DEMO_CONFIG, epochs: plan.epochs, jobs: plan.jobs, edges: bench.edges, seed: plan.seed, quiet: plan.quiet, k, kByMethod, fusion: DEMO_FUSION, slots };
  const [results, downstream, external, noisyResults] = await Promise.all([
    runComparison({ ...common, train: bench.files.train, kb: sources.kbs.all, out: join(plan.out, 'compare'), variants, onStep: stepOf('all') }),
    runComparison({ ...common, train: bench.files.train, kb: sources.kbs.downstream, out: join(plan.out, 'compare-downstream'), variants: sourceVariants, onStep: stepOf('downstream') }),
    runComparison({ ...common, train: bench.files.train, kb: sources.kbs.external, out: join(plan.out, 'compare-external'), variants: sourceVariants, onStep: stepOf('external') }),
    runComparison({ ...common, train: noisy.train, kb: noisy.kb, out: join(plan.out, 'compare-noisy'), variants: ['mlp-only', 'full'], onStep: stepOf('noisy') }),
  ]);
  const bySource: Record<string, CompareResults> = { [retrieval.HEADLINE_SOURCE]: results, downstream, external };
  t = lap('compare', t);

  say(plan, '6/7 the label audit of the noisy training split');
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
  t = lap('audit', t);

  say(plan, `7/7 writing the report to ${plan.report}`);
  const outcome = retrieval.noiseOutcome(results, noisyResults);
  results.sections = [retrieval.selectionSection(selections), retrieval.sourcesSection(bySource, retrieval.HEADLINE_SOURCE), ...(outcome ? [retrieval.noiseSection(outcome, audit.summary)] : [])];
  results.settings.kbSource = retrieval.HEADLINE_SOURCE;
  results.settings.kChosenOnValidation = selections.map((sel) => `${sel.method} ${sel.chosen.k}`).join(', ');
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
