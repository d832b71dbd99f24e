import { formatMetricsTable } from '../eval/metrics.ts';
import type { CompareResults } from '../eval/results.ts';

/** How a comparison reads: the terminal table and results.md. */

function fmt(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

/** The comparison as Markdown: the paper-style table, a second table with macro-F1 and worst class, settings and timings. */
export function formatComparisonMarkdown(results: CompareResults): string {
  const lines: string[] = ['# RetFormer comparison', ''];
  lines.push(
    `Top-1 accuracy (%) on ${results.test.length} test pictures, ${results.classes.length} classes; buckets from training counts: ` +
      `Many > ${results.edges.many}, Medium ${results.edges.few}–${results.edges.many}, Few < ${results.edges.few}.`,
    '',
  );
  lines.push(formatMetricsTable(results.methods.map((m) => ({ name: m.name, metrics: m.metrics }))).trimEnd(), '');
  for (const s of results.skipped ?? []) lines.push(`Skipped ${s.name}: ${s.reason}`, '');
  lines.push('| method | macro-F1 | ECE (15 bins) | worst class | train s |', '|---|---:|---:|---|---:|');
  for (const m of results.methods) {
    lines.push(`| ${m.name} | ${fmt(m.metrics.macroF1)} | ${fmt(m.metrics.ece)} | ${m.metrics.worstClass.label} (${fmt(m.metrics.worstClass.accuracy)}) | ${fmt(m.trainSeconds)} |`);
  }
  const first = results.methods[0];
  if (first) {
    const b = first.metrics.buckets;
    lines.push('', `Classes per bucket (present in the test set): Many ${b.many}, Medium ${b.medium}, Few ${b.few}.`);
  }
  const known = results.purity.filter((p): p is number => p !== null);
  if (known.length > 0) {
    const mean = (100 * known.reduce((a, b) => a + b, 0)) / known.length;
    lines.push(`Retrieval purity (share of image neighbours with the query's class), mean over classes: ${mean.toFixed(1)}%.`);
  }
  lines.push(`Gallery: ${results.gallery.length} Few-class test pictures MLP-only got wrong and RetFormer full got right.`);
  lines.push('', '## Settings', '', '| setting | value |', '|---|---|');
  for (const [k, v] of Object.entries(results.settings)) lines.push(`| ${k} | ${String(v)} |`);
  lines.push('', '## Timings (s)', '', '| step | seconds |', '|---|---:|');
  for (const [k, v] of Object.entries(results.timings)) lines.push(`| ${k} | ${v.toFixed(1)} |`);
  return `${lines.join('\n')}\n`;
}

/** The metrics table a terminal shows, with one line per skipped method and why. */
export function formatComparisonTable(results: CompareResults): string {
  const table = formatMetricsTable(results.methods.map((m) => ({ name: m.name, metrics: m.metrics })));
  const skipped = (results.skipped ?? []).map((s) => `skipped ${s.name}: ${s.reason}\n`).join('');
  return skipped === '' ? table : `${table}\n${skipped}`;
}
