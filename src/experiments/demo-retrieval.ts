import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readDataset } from '../data/index.ts';
import { writeManifest } from '../data/manifest.ts';
import { addLabelNoise } from '../data/noise.ts';
import type { EvalMetrics } from '../eval/types.ts';
import type { CompareResults, ReportSection } from '../eval/results.ts';
import type { SelectionResult } from '../eval/select.ts';
import type { AuditSummary } from '../eval/audit.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { METHODS } from './methods.ts';

/**
 * The demo's retrieval experiments beyond one comparison (issue 16): the paper's three KB sources
 * with one shared encoder, settings chosen on a validation split carved from the training data,
 * the noisy-label run and the label audit; and the report sections and summary tables for them.
 */

/** The source the demo's headline table uses (why: README "What the demo measures"). */
export const HEADLINE_SOURCE = 'all';
/** The noisy-label run: symmetric noise at this rate on the training labels. */
export const NOISE_RATE = 0.3;

export interface SourceKbs {
  /** Pairs CSVs and KB folders per source. */
  pairs: Record<'external' | 'downstream' | 'all', string>;
  kbs: Record<'external' | 'downstream' | 'all', string>;
}

function digest(...files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex').slice(0, 16);
}

/** Reuse `dir` when its stamp matches, else run `build` into it (removing what was there) and stamp it. */
async function stamped(dir: string, stamp: Record<string, unknown>, build: () => Promise<void>, say: (line: string) => void, what: string): Promise<void> {
  const stampFile = `${dir}.stamp.json`;
  if (existsSync(join(dir, 'manifest.json')) && existsSync(stampFile) && JSON.stringify(JSON.parse(readFileSync(stampFile, 'utf8'))) === JSON.stringify(stamp)) {
    say(`    reusing ${what} (${dir})`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(stampFile, { force: true });
  await build();
  writeJsonAtomic(stampFile, stamp);
}

/**
 * The three KB sources of the paper's KB ablation, in one embedding space: the encoder is fitted once
 * on the `all` pairs (training pictures with their texts + the external pairs; never a test picture)
 * and the downstream and external KBs are built with that same encoder, so their results differ only
 * by the pairs they hold (and MLP only, which does not retrieve, is the same for all three).
 */
export async function ensureSourceKbs(out: string, files: { train: string; kb: string }, seed: number, quiet: boolean, say: (line: string) => void): Promise<SourceKbs> {
  const { concatPairsCsv, writeDownstreamPairs, deriveKb } = await import('../kb/sources.ts');
  const { buildKnowledgeBase, readPairsCsv } = await import('../kb/index.ts');
  const pairs = { external: files.kb, downstream: join(out, 'kb-pairs', 'downstream.csv'), all: join(out, 'kb-pairs', 'all.csv') };
  writeDownstreamPairs(files.train, pairs.downstream);
  concatPairsCsv([pairs.downstream, pairs.external], pairs.all);
  const kbs = { external: join(out, 'kb-external'), downstream: join(out, 'kb-downstream'), all: join(out, 'kb-all') };
  const allStamp = { pairs: digest(pairs.all), encoder: 'embedded', seed };
  await stamped(kbs.all, allStamp, async () => {
    say('    fitting the embedded encoder on the "all" pairs (training pictures + external) and building the "all" KB');
    await buildKnowledgeBase({ pairsCsv: pairs.all, out: kbs.all, encoderSpec: 'embedded', seed, quiet });
  }, say, 'the "all" KB');
  for (const source of ['downstream', 'external'] as const) {
    await stamped(kbs[source], { ...allStamp, own: digest(pairs[source]) }, async () => {
      say(`    the "${source}" KB: its rows of the "all" KB (same encoder and vectors, nothing embedded again)`);
      const ids = new Set(readPairsCsv(pairs[source]).map((r) => r.id));
      await deriveKb(kbs.all, kbs[source], (meta) => (ids.has(meta.id) ? meta : undefined));
    }, say, `the "${source}" KB`);
  }
  return { pairs, kbs };
}

/** The noisy training split (symmetric noise, clean labels kept in clean_label) and an "all" KB whose downstream pairs carry the noisy labels. */
export async function ensureNoisySplit(out: string, sources: SourceKbs, train: string, seed: number, say: (line: string) => void): Promise<{ train: string; kb: string }> {
  const { deriveKb, downstreamPairs, manifestIds } = await import('../kb/sources.ts');
  const noisyCsv = join(out, 'data', `train-noisy${Math.round(NOISE_RATE * 100)}.csv`);
  const { dataset, flipped } = addLabelNoise(readDataset(train), { rate: NOISE_RATE, mode: 'sym', seed });
  writeManifest(noisyCsv, dataset.samples);
  say(`    ${flipped} of ${dataset.samples.length} training labels flipped (${NOISE_RATE * 100}% symmetric noise, seed ${seed}): ${noisyCsv}`);
  const kb = join(out, 'kb-all-noisy');
  // the downstream pairs' ids (as ensureSourceKbs made them) with their noisy labels
  const noisyLabel = new Map(downstreamPairs(dataset, { ids: manifestIds(train, dataset) }).map((p) => [p.id, p.label]));
  await stamped(kb, { noisy: digest(noisyCsv), all: digest(join(sources.kbs.all, 'manifest.json')) }, async () => {
    say('    the "all" KB with the noisy labels (same encoder and vectors; only the downstream labels differ)');
    await deriveKb(sources.kbs.all, kb, (meta) => (noisyLabel.has(meta.id) ? { ...meta, label: noisyLabel.get(meta.id) } : meta));
  }, say, 'the noisy "all" KB');
  return { train: noisyCsv, kb };
}

/**
 * Embed the test pictures once with the KBs' shared encoder, into the embedding cache, so that the
 * comparisons running side by side find them there instead of each embedding them again.
 */
export async function warmTestEmbeddings(kb: string, testCsv: string, quiet: boolean): Promise<void> {
  const { openKbEncoder, normalizeKbSpec } = await import('../kb/index.ts');
  const { embedTestImages } = await import('../eval/evaluate.ts');
  const encoder = await openKbEncoder(normalizeKbSpec(kb));
  try {
    await embedTestImages(encoder, readDataset(testCsv), { quiet });
  } finally {
    await encoder.close();
  }
}

const f1 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(1));
const metricCells = (m: EvalMetrics) => [f1(m.many), f1(m.medium), f1(m.few), f1(m.overall), f1(m.balanced)];

/** Per KB source: the retrieval methods' rows (MLP only once, it does not retrieve). */
export function sourcesSection(bySource: Record<string, CompareResults>, headline: string): ReportSection {
  const rows: string[][] = [];
  const mlp = bySource[headline]?.methods.find((m) => m.key === 'mlp-only');
  if (mlp) rows.push(['(none)', mlp.name, ...metricCells(mlp.metrics)]);
  for (const [source, results] of Object.entries(bySource)) {
    for (const m of results.methods) {
      if (m.key === 'mlp-only' || m.key === 'zero-shot') continue;
      if (source === headline && !['knn-vote', 'image-only', 'full'].includes(m.key)) continue;
      rows.push([source + (source === headline ? ' (headline)' : ''), m.name, ...metricCells(m.metrics)]);
    }
  }
  return {
    id: 'kb-sources',
    title: 'Knowledge-base sources',
    notes: [
      'The paper\'s KB ablation: downstream = the training pictures paired with their own texts and labels (a query never retrieves its own pair); external = the twitter pictures with their texts; all = both. One encoder, fitted on the "all" pairs, embeds every KB, so MLP only (which does not retrieve) is the same for all three.',
    ],
    header: ['KB source', 'method', 'Many', 'Medium', 'Few', 'Overall', 'Balanced'],
    rows,
  };
}

const methodName = (key: string) => METHODS.find((m) => m.key === key)?.name ?? key;

/** The validation candidates of every method whose k was chosen, the chosen one marked. */
export function selectionSection(selections: readonly SelectionResult[]): ReportSection {
  const first = selections[0];
  const rows = selections.flatMap((s) =>
    s.candidates.map((c, i) => {
      const se = s.standardErrors[i];
      return [methodName(s.method), String(c.k), f1(c.many), f1(c.medium), f1(c.few), f1(c.overall), f1(c.balanced), se === null ? '-' : se === 0 ? 'best' : se.toFixed(1), c.k === s.chosen.k && c.tau === s.chosen.tau ? 'chosen' : ''];
    }),
  );
  return {
    id: 'selection',
    title: 'Settings chosen on validation',
    notes: [
      `k for each retrieval method was chosen on a validation split carved from the training data (${first.validationSize} of ${first.trainSize + first.validationSize} training pictures, stratified, seed ${first.seed}; never a test picture): the trained methods with each candidate trained on the rest, the kNN vote with no training; criterion: ${first.criterion}. "SE" is that paired standard error of the gap to the best candidate. The RetFormer ablations use RetFormer full's k. Chosen: ${selections.map((s) => `${methodName(s.method)} k = ${s.chosen.k}`).join(', ')}.`,
    ],
    header: ['method', 'k', 'Many', 'Medium', 'Few', 'Overall', 'Balanced', 'SE', ''],
    rows,
  };
}

export interface NoiseOutcome {
  /** MLP only clean / noisy, RetFormer clean / noisy (Overall and Few). */
  mlpClean: EvalMetrics;
  mlpNoisy: EvalMetrics;
  fullClean: EvalMetrics;
  fullNoisy: EvalMetrics;
  /** (RetFormer noisy - MLP noisy) / (MLP clean - MLP noisy), Overall: the share of what the noise costs MLP only that retrieval recovers. */
  recovered: number | null;
}

export function noiseOutcome(clean: CompareResults, noisy: CompareResults): NoiseOutcome | null {
  const get = (r: CompareResults, key: string) => r.methods.find((m) => m.key === key)?.metrics;
  const mlpClean = get(clean, 'mlp-only');
  const fullClean = get(clean, 'full');
  const mlpNoisy = get(noisy, 'mlp-only');
  const fullNoisy = get(noisy, 'full');
  if (!mlpClean || !fullClean || !mlpNoisy || !fullNoisy) return null;
  const cost = mlpClean.overall - mlpNoisy.overall;
  return { mlpClean, mlpNoisy, fullClean, fullNoisy, recovered: cost > 0 ? (fullNoisy.overall - mlpNoisy.overall) / cost : null };
}

export function noiseSection(n: NoiseOutcome, audit: AuditSummary | undefined): ReportSection {
  const notes = [
    `Training labels with ${NOISE_RATE * 100}% symmetric noise (data noise), the same KB pairs (their downstream labels noisy too) and recipe; test labels clean. The noise costs MLP only ${(n.mlpClean.overall - n.mlpNoisy.overall).toFixed(1)} points Overall; RetFormer full under noise scores ${(n.fullNoisy.overall - n.mlpNoisy.overall).toFixed(1)} points above MLP only under noise, i.e. it recovers ${n.recovered === null ? '-' : `${(100 * n.recovered).toFixed(0)}%`} of that cost.`,
  ];
  if (audit) {
    const pct = (v: number | undefined) => (v === undefined ? '-' : `${(100 * v).toFixed(1)}%`);
    notes.push(
      `Label audit of the noisy training split (retformer audit, k = ${audit.k}, own pair excluded): ${audit.flagged} of ${audit.checked} rows flagged; against the clean labels (${audit.noisy} noisy rows) precision ${pct(audit.precision)}, recall ${pct(audit.recall)}; the suggested label is the clean one for ${pct(audit.suggestedClean)} of the flagged noisy rows. Ranked rows with their contradicting neighbours: audit.csv beside this report.`,
    );
  }
  return {
    id: 'noise',
    title: 'Noisy labels',
    notes,
    header: ['method', 'labels', 'Many', 'Medium', 'Few', 'Overall', 'Balanced'],
    rows: [
      ['MLP only', 'clean', ...metricCells(n.mlpClean)],
      ['MLP only', `${NOISE_RATE * 100}% noise`, ...metricCells(n.mlpNoisy)],
      ['RetFormer full', 'clean', ...metricCells(n.fullClean)],
      ['RetFormer full', `${NOISE_RATE * 100}% noise`, ...metricCells(n.fullNoisy)],
    ],
  };
}

/** A section as a Markdown table for the terminal summary. */
export function sectionMarkdown(s: ReportSection): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [`${s.title}:`, '', line(s.header), line(s.header.map((_, i) => (i === 0 ? '---' : '---:'))), ...s.rows.map(line), '', ...s.notes.flatMap((n) => [n, '']), ''].join('\n');
}
