import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RetformerError } from '../../util/errors.ts';
import { writeFileAtomic } from '../../util/fs.ts';
import type { CompareResults } from '../results.ts';
import { renderCharts } from './charts.ts';
import { renderHtml } from './html.ts';
import { readCompareResults } from './load.ts';
import { renderMarkdown } from './markdown.ts';
import { type ReportOptions, resolveReportOptions } from './options.ts';
import { writeThumbnails } from './thumbnails.ts';

export { CompareResultsSchema, readCompareResults } from './load.ts';
export { type ReportOptions, ReportOptionsSchema, resolveReportOptions } from './options.ts';

/** Files a report folder holds (besides img/ and the chart SVGs). */
export const REPORT_HTML = 'index.html';
export const REPORT_MARKDOWN = 'report.md';

/**
 * Render a comparison into `outDir`: index.html (self-contained: inline CSS and SVG, no script),
 * report.md, one SVG per chart (chart-buckets.svg, chart-per-class.svg, chart-purity.svg) and the
 * gallery thumbnails as 64 px PNGs under img/. Returns the HTML and Markdown text written.
 */
export async function renderReport(
  results: CompareResults,
  outDir: string,
  options: Partial<ReportOptions> = {},
): Promise<{ html: string; markdown: string }> {
  const resolved = resolveReportOptions(options);
  if (!Array.isArray(results.methods) || !Array.isArray(results.classes)) {
    throw new RetformerError(`${outDir}: cannot render a report: the results have no methods or classes`);
  }
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (err) {
    throw new RetformerError(`${outDir}: cannot create the report folder: ${(err as Error).message}`, { cause: err });
  }

  const { charts, skipped } = await renderCharts(results);
  for (const chart of charts) writeFileAtomic(join(outDir, chart.file), chart.svg);
  // a chart this run could not draw must not survive from an earlier render into the same folder
  for (const s of skipped) rmSync(join(outDir, `chart-${s.id}.svg`), { force: true });

  const items = results.gallery.slice(0, resolved.galleryItems);
  const sources = items.flatMap((it) => [it.testPath, ...it.neighbours.slice(0, resolved.galleryNeighbours).map((n) => n.source)]);
  const thumbs = await writeThumbnails(sources, outDir, resolved.thumbSize);

  const inputs = { results, charts, skipped, thumbs, options: resolved };
  const html = renderHtml(inputs);
  const markdown = renderMarkdown(inputs);
  writeFileAtomic(join(outDir, REPORT_HTML), html);
  writeFileAtomic(join(outDir, REPORT_MARKDOWN), markdown);
  return { html, markdown };
}

/** Render the report of a results.json file (checked against the schema first) into `outDir`. */
export async function renderReportFromFile(resultsFile: string, outDir: string, options: Partial<ReportOptions> = {}): Promise<{ html: string; markdown: string }> {
  return renderReport(readCompareResults(resultsFile), outDir, options);
}
