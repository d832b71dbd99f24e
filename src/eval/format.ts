import { formatMetricsTable } from './metrics.ts';
import type { EvalMetrics } from './types.ts';

/** Human-readable output of `retformer eval` (the --json form is the plain object); predictions: src/infer/report.ts. */

function pct(v: number | null): string {
  return v === null ? '–' : `${v.toFixed(1)}%`;
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
