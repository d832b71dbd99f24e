import type { Prediction } from '../train/types.ts';
import { formatMetricsTable } from './metrics.ts';
import type { EvalMetrics } from './types.ts';

/** Human-readable output of `retformer eval` and `retformer predict` (the --json forms are the plain objects). */

function pct(v: number | null): string {
  return v === null ? '–' : `${v.toFixed(1)}%`;
}

function clip(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

/** The metrics table, the summary figures and per-class accuracy (lowest first) with training counts. */
export function formatEvalText(name: string, metrics: EvalMetrics, classes: readonly string[], trainCounts: ArrayLike<number>): string {
  const lines = [formatMetricsTable([{ name, metrics }]).trimEnd(), ''];
  lines.push(`test pictures: ${metrics.n}`);
  lines.push(`macro-F1: ${pct(metrics.macroF1)}`);
  if (metrics.ece !== undefined) lines.push(`expected calibration error (15 bins): ${pct(metrics.ece)}`);
  lines.push(`worst class: ${metrics.worstClass.label} (${pct(metrics.worstClass.accuracy)})`);
  lines.push(`classes per bucket: Many ${metrics.buckets.many}, Medium ${metrics.buckets.medium}, Few ${metrics.buckets.few}`);
  const index = new Map(classes.map((c, i) => [c, i]));
  const rows = Object.entries(metrics.perClass).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  lines.push('', '| class | train | accuracy |', '|---|---:|---:|');
  for (const [label, acc] of rows) {
    const c = index.get(label);
    lines.push(`| ${label} | ${c === undefined ? '?' : trainCounts[c]} | ${acc.toFixed(1)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** The JSON form of one prediction: label, probability, top classes and the neighbours with their attention. */
export interface PredictionReport {
  image: string;
  label: string;
  probability: number;
  /** With `--abstain-below P`: P, and whether the top probability fell below it (then `label` is only the best guess). */
  abstainBelow?: number;
  abstained?: boolean;
  top: { label: string; probability: number }[];
  gate?: number;
  neighbours: { rank: number; id: string; text: string; label?: string; source: string; similarity: number; attention: number }[];
}

export function predictionReport(image: string, prediction: Prediction, classes: readonly string[], top = 5, abstainBelow?: number): PredictionReport {
  const order = Array.from(prediction.probs, (p, c) => ({ c, p })).sort((a, b) => b.p - a.p || a.c - b.c);
  const probability = prediction.probs[prediction.label];
  return {
    image,
    label: classes[prediction.label],
    probability,
    ...(abstainBelow === undefined ? {} : { abstainBelow, abstained: probability < abstainBelow }),
    top: order.slice(0, top).map(({ c, p }) => ({ label: classes[c], probability: p })),
    ...(prediction.gate === undefined ? {} : { gate: prediction.gate }),
    neighbours: prediction.neighbours.map((nb, r) => ({
      rank: r + 1,
      id: nb.id,
      text: nb.text,
      ...(nb.label === undefined ? {} : { label: nb.label }),
      source: nb.source,
      similarity: nb.similarity,
      attention: prediction.attention[r] ?? 0,
    })),
  };
}

export function formatPredictionText(report: PredictionReport): string {
  const lines = report.abstained
    ? [`${report.image}: abstains (top probability ${report.probability.toFixed(3)} < ${report.abstainBelow}; best guess ${report.label})`]
    : [`${report.image}: ${report.label} (p = ${report.probability.toFixed(3)})`];
  if (report.gate !== undefined) lines.push(`retrieval gate: ${report.gate.toFixed(3)}`);
  lines.push('', `top ${report.top.length}:`);
  report.top.forEach((t, i) => {
    lines.push(`  ${i + 1}. ${t.label}  ${t.probability.toFixed(3)}`);
  });
  if (report.neighbours.length === 0) {
    lines.push('', 'neighbours: none (this run does not retrieve)');
  } else {
    lines.push('', `neighbours (k = ${report.neighbours.length}, best first; attention = weight in the fusion):`);
    lines.push('| # | similarity | attention | label | text |', '|---:|---:|---:|---|---|');
    for (const nb of report.neighbours) {
      lines.push(`| ${nb.rank} | ${nb.similarity.toFixed(3)} | ${nb.attention.toFixed(3)} | ${nb.label ?? ''} | ${clip(nb.text, 60)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}
