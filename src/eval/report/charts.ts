import * as vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import { compile } from 'vega-lite';
import type { CompareResults } from '../results.ts';
import { ECE_BINS } from '../calibration.ts';
import { coverageSpec, reliabilitySpec } from './calibration-charts.ts';
import { BUCKET_TITLES, bucketOf } from './format.ts';
import { BASELINE_KEY, FULL_KEY } from './model.ts';

/** One rendered chart: its file name in the report folder, a title, a caption and the SVG text. */
export interface RenderedChart {
  id: 'buckets' | 'per-class' | 'purity' | 'reliability' | 'coverage';
  file: string;
  title: string;
  caption: string;
  svg: string;
}

/** A chart that could not be drawn from these results (say why instead). */
export interface SkippedChart {
  id: RenderedChart['id'];
  title: string;
  reason: string;
}

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const MEASURE_COLOURS = ['#4c78a8', '#72b7b2', '#f58518', '#3b3b3b'];
const BUCKET_COLOURS = ['#4c78a8', '#72b7b2', '#f58518'];
const PAIR_COLOURS = ['#e45756', '#4c78a8'];

/** Shared look: quiet axes, light grid, no frame. */
const THEME = {
  font: FONT,
  background: 'white',
  view: { stroke: null },
  axis: {
    labelColor: '#444',
    titleColor: '#222',
    titleFontWeight: 600,
    titleFontSize: 12,
    labelFontSize: 11,
    gridColor: '#ececec',
    domainColor: '#999',
    tickColor: '#999',
  },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, labelColor: '#333', titleColor: '#222' },
  title: { fontSize: 14, fontWeight: 600, anchor: 'start', color: '#222' },
} as const;

/** Compile a vega-lite spec to vega and render it headless to SVG text (no browser, no canvas). */
export async function renderVegaLiteSvg(spec: TopLevelSpec): Promise<string> {
  const logger = vega.logger(vega.Error);
  const { spec: vgSpec } = compile(spec, { logger });
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Give every id in an SVG (clip paths, gradients) a prefix, with the references to them, so that
 * several SVGs can be inlined in one HTML page without their ids colliding.
 */
export function scopeSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}-${id}"`);
}

/** Grouped bars: for each method, Many / Medium / Few / Overall accuracy side by side (null buckets left out). */
export function bucketBarsSpec(results: CompareResults): TopLevelSpec | null {
  const measures = ['Many', 'Medium', 'Few', 'Overall'] as const;
  const values = results.methods.flatMap((m) => {
    const byMeasure: Record<(typeof measures)[number], number | null> = {
      Many: m.metrics.many,
      Medium: m.metrics.medium,
      Few: m.metrics.few,
      Overall: m.metrics.overall,
    };
    return measures
      .filter((s) => byMeasure[s] !== null && Number.isFinite(byMeasure[s]))
      .map((s) => ({ method: m.name, measure: s, accuracy: byMeasure[s] as number }));
  });
  if (values.length === 0) return null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: THEME,
    width: Math.max(360, 96 * results.methods.length),
    height: 280,
    data: { values },
    mark: { type: 'bar', cornerRadiusTopLeft: 2, cornerRadiusTopRight: 2 },
    encoding: {
      x: {
        field: 'method',
        type: 'nominal',
        sort: results.methods.map((m) => m.name),
        title: null,
        axis: { labelAngle: 0, labelExpr: "split(datum.label, ' ')", labelPadding: 6, ticks: false },
      },
      xOffset: { field: 'measure', type: 'nominal', sort: [...measures] },
      y: { field: 'accuracy', type: 'quantitative', title: 'Top-1 accuracy (%)', scale: { domain: [0, 100] } },
      color: {
        field: 'measure',
        type: 'nominal',
        sort: [...measures],
        scale: { domain: [...measures], range: MEASURE_COLOURS },
        legend: { title: null, orient: 'top', direction: 'horizontal' },
      },
    },
  };
}

/** Per-class accuracy against training count (log x) for MLP only and RetFormer full, with bucket edges. */
export function perClassScatterSpec(results: CompareResults): TopLevelSpec | null {
  const base = results.methods.find((m) => m.key === BASELINE_KEY);
  const full = results.methods.find((m) => m.key === FULL_KEY);
  if (!base || !full) return null;
  const points: { cls: string; count: number; accuracy: number; method: string }[] = [];
  const pairs: { count: number; from: number; to: number }[] = [];
  results.classes.forEach((cls, i) => {
    const count = results.trainCounts[i] ?? 0;
    if (!(count > 0)) return; // a log axis cannot show zero-shot classes
    const a = base.metrics.perClass[cls];
    const b = full.metrics.perClass[cls];
    if (Number.isFinite(a)) points.push({ cls, count, accuracy: a, method: base.name });
    if (Number.isFinite(b)) points.push({ cls, count, accuracy: b, method: full.name });
    if (Number.isFinite(a) && Number.isFinite(b) && a !== b) pairs.push({ count, from: a, to: b });
  });
  if (points.length === 0) return null;
  const xScale = { type: 'log' as const, nice: false };
  const x = { field: 'count', type: 'quantitative' as const, scale: xScale, title: 'Training images of the class (log scale)' };
  const edges = [
    { count: results.edges.few, text: `Few < ${results.edges.few}` },
    { count: results.edges.many, text: `Many > ${results.edges.many}` },
  ].filter((e) => e.count > 0);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: THEME,
    width: 640,
    height: 320,
    layer: [
      {
        data: { values: edges },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#999' },
        encoding: { x: { ...x } },
      },
      {
        data: { values: edges },
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 4, dy: -3, fontSize: 10, color: '#777' },
        encoding: { x: { ...x }, y: { value: 'height' }, text: { field: 'text', type: 'nominal' } },
      },
      {
        data: { values: pairs },
        mark: { type: 'rule', color: '#c8c8c8', strokeWidth: 1 },
        encoding: { x: { ...x }, y: { field: 'from', type: 'quantitative' }, y2: { field: 'to' } },
      },
      {
        data: { values: points },
        mark: { type: 'circle', size: 36, opacity: 0.8 },
        encoding: {
          x: { ...x },
          y: { field: 'accuracy', type: 'quantitative', title: 'Per-class accuracy (%)', scale: { domain: [0, 100] } },
          color: {
            field: 'method',
            type: 'nominal',
            scale: { domain: [base.name, full.name], range: PAIR_COLOURS },
            legend: { title: null, orient: 'top', direction: 'horizontal' },
          },
        },
      },
    ],
  };
}

/** Retrieval purity per class against training count (log x), coloured by bucket; null purities left out. */
export function puritySpec(results: CompareResults): TopLevelSpec | null {
  const values: { cls: string; count: number; purity: number; bucket: string }[] = [];
  results.classes.forEach((cls, i) => {
    const p = results.purity[i];
    const count = results.trainCounts[i] ?? 0;
    if (p === null || p === undefined || !Number.isFinite(p) || !(count > 0)) return;
    values.push({ cls, count, purity: p * 100, bucket: BUCKET_TITLES[bucketOf(count, results.edges)] });
  });
  if (values.length === 0) return null;
  const bucketNames = [BUCKET_TITLES.many, BUCKET_TITLES.medium, BUCKET_TITLES.few];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: THEME,
    width: 640,
    height: 260,
    data: { values },
    mark: { type: 'circle', size: 40, opacity: 0.85 },
    encoding: {
      x: { field: 'count', type: 'quantitative', scale: { type: 'log', nice: false }, title: 'Training images of the class (log scale)' },
      y: { field: 'purity', type: 'quantitative', title: 'Retrieval purity (%)', scale: { domain: [0, 100] } },
      color: {
        field: 'bucket',
        type: 'nominal',
        scale: { domain: bucketNames, range: BUCKET_COLOURS },
        legend: { title: null, orient: 'top', direction: 'horizontal' },
      },
    },
  };
}

/** Draw the report's three charts; a chart the data cannot support comes back as skipped, with the reason. */
export async function renderCharts(results: CompareResults): Promise<{ charts: RenderedChart[]; skipped: SkippedChart[] }> {
  const base = results.methods.find((m) => m.key === BASELINE_KEY)?.name ?? 'MLP only';
  const full = results.methods.find((m) => m.key === FULL_KEY)?.name ?? 'RetFormer full';
  const nullPurity = results.classes.filter((_, i) => {
    const p = results.purity[i];
    return p === null || p === undefined || !Number.isFinite(p);
  }).length;
  const zeroCount = results.trainCounts.filter((c) => !(c > 0)).length;
  const zeroNote = zeroCount > 0 ? ` ${zeroCount} class(es) with no training images cannot sit on the log axis and are left out.` : '';
  const plans: { id: RenderedChart['id']; title: string; spec: TopLevelSpec | null; caption: string; reason: string }[] = [
    {
      id: 'buckets',
      title: 'Accuracy by long-tail bucket',
      spec: bucketBarsSpec(results),
      caption:
        'Top-1 accuracy of each method on the Many, Medium and Few classes (mean of per-class accuracies, buckets by training count) and Overall (per sample). The gap between Many and Few is the long-tail penalty; retrieval should narrow it. Empty buckets have no bar.',
      reason: 'no method has any accuracy to plot',
    },
    {
      id: 'per-class',
      title: 'Per-class accuracy against training count',
      spec: perClassScatterSpec(results),
      caption: `Each class twice: ${base} (red) and ${full} (blue); grey lines join the two points of a class, so long lines on the left are tail classes retrieval fixed. Dashed lines are the bucket edges.${zeroNote}`,
      reason: `needs both the "${BASELINE_KEY}" and "${FULL_KEY}" methods with per-class accuracies`,
    },
    {
      id: 'purity',
      title: 'Retrieval purity per class',
      spec: puritySpec(results),
      caption: `Share of the k retrieved image neighbours of a class's test pictures that carry the class's own label. Low purity on tail classes means the knowledge base has few same-class entries, and the text modality has to carry the signal.${nullPurity > 0 ? ` ${nullPurity} class(es) without a purity value (no test pictures or an unlabelled knowledge base) are left out.` : ''}${zeroNote}`,
      reason: 'no class has a retrieval purity (no test pictures or an unlabelled knowledge base)',
    },
    {
      id: 'reliability',
      title: 'Reliability diagram',
      spec: reliabilitySpec(results),
      caption: `Accuracy against mean confidence (top-1 probability) in ${ECE_BINS} equal-width bins, for ${base} and ${full}; the dashed diagonal is perfect calibration, points below it are overconfident, larger points hold more pictures. ECE (in the legend) is the picture-weighted mean gap.`,
      reason: 'no method recorded its top-1 probabilities',
    },
    {
      id: 'coverage',
      title: 'Coverage against accuracy (abstention)',
      spec: coverageSpec(results),
      caption: 'Answering only the most confident pictures (retformer eval / predict --abstain-below P): the share answered against the accuracy on them. A curve that rises steeply to the left trades little coverage for much precision.',
      reason: 'no method recorded its top-1 probabilities',
    },
  ];
  const charts: RenderedChart[] = [];
  const skipped: SkippedChart[] = [];
  for (const plan of plans) {
    if (plan.spec === null) {
      skipped.push({ id: plan.id, title: plan.title, reason: plan.reason });
      continue;
    }
    const svg = scopeSvgIds(await renderVegaLiteSvg(plan.spec), `chart-${plan.id}`);
    charts.push({ id: plan.id, file: `chart-${plan.id}.svg`, title: plan.title, caption: plan.caption, svg });
  }
  return { charts, skipped };
}
