import type { CompareResults, MethodResult } from '../results.ts';
import type { Bucket } from '../types.ts';
import { BUCKET_TITLES, bucketOf, formatNumber } from './format.ts';

/** Method keys the report compares head to head (scatter, gallery wording, headline). */
export const BASELINE_KEY = 'mlp-only';
export const FULL_KEY = 'full';

/** One numeric column of the results table; higher is better for all of them. */
export interface MetricColumn {
  key: 'many' | 'medium' | 'few' | 'overall' | 'balanced' | 'macroF1' | 'worst';
  title: string;
  value(method: MethodResult): number | null;
}

export const METRIC_COLUMNS: readonly MetricColumn[] = [
  { key: 'many', title: 'Many', value: (m) => m.metrics.many },
  { key: 'medium', title: 'Medium', value: (m) => m.metrics.medium },
  { key: 'few', title: 'Few', value: (m) => m.metrics.few },
  { key: 'overall', title: 'Overall', value: (m) => m.metrics.overall },
  { key: 'balanced', title: 'Balanced', value: (m) => m.metrics.balanced ?? null },
  { key: 'macroF1', title: 'Macro-F1', value: (m) => m.metrics.macroF1 },
  { key: 'worst', title: 'Worst class', value: (m) => m.metrics.worstClass?.accuracy ?? null },
];

export interface TableCell {
  value: number | null;
  /** One decimal, or the dash. */
  text: string;
  /** Best in its column (ties on the printed value are all best). */
  best: boolean;
}

export interface MethodRow {
  key: string;
  name: string;
  kind: MethodResult['kind'];
  /** In METRIC_COLUMNS order. */
  cells: TableCell[];
  worstLabel: string | null;
  trainSeconds: number | null;
}

function finite(value: number | null | undefined): number | null {
  return value === null || value === undefined || !Number.isFinite(value) ? null : value;
}

/** The results table: one row per method, best value per column flagged (compared as printed, one decimal). */
export function buildResultsRows(results: CompareResults): MethodRow[] {
  const rounded = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
  const bestPerColumn = METRIC_COLUMNS.map((col) => {
    const values = results.methods.map((m) => rounded(finite(col.value(m)))).filter((v): v is number => v !== null);
    return values.length === 0 ? null : Math.max(...values);
  });
  return results.methods.map((m) => ({
    key: m.key,
    name: m.name,
    kind: m.kind,
    cells: METRIC_COLUMNS.map((col, c) => {
      const value = finite(col.value(m));
      return { value, text: formatNumber(value, 1), best: value !== null && rounded(value) === bestPerColumn[c] };
    }),
    worstLabel: m.metrics.worstClass?.label ?? null,
    trainSeconds: finite(m.trainSeconds),
  }));
}

export interface BucketSummary {
  bucket: Bucket;
  title: string;
  /** The training-count rule, e.g. "> 100". */
  rule: string;
  /** Classes of this bucket that have test pictures. */
  classes: number;
  testSamples: number;
  trainMin: number | null;
  trainMax: number | null;
  /** Mean retrieval purity over this bucket's classes that have one, in [0, 1]. */
  meanPurity: number | null;
}

/** Per-bucket numbers: class and test counts, training-count range, mean retrieval purity. */
export function buildBucketSummaries(results: CompareResults): BucketSummary[] {
  const { edges, trainCounts } = results;
  const testPerClass = new Array<number>(results.classes.length).fill(0);
  for (const t of results.test) if (t.label >= 0 && t.label < testPerClass.length) testPerClass[t.label]++;
  const rules: Record<Bucket, string> = { many: `> ${edges.many}`, medium: `${edges.few}–${edges.many}`, few: `< ${edges.few}` };
  return (['many', 'medium', 'few'] as const).map((bucket) => {
    const members = results.classes.map((_, i) => i).filter((i) => testPerClass[i] > 0 && bucketOf(trainCounts[i] ?? 0, edges) === bucket);
    const counts = members.map((i) => trainCounts[i] ?? 0);
    const purities = members.map((i) => finite(results.purity[i])).filter((p): p is number => p !== null);
    return {
      bucket,
      title: BUCKET_TITLES[bucket],
      rule: rules[bucket],
      classes: members.length,
      testSamples: members.reduce((s, i) => s + testPerClass[i], 0),
      trainMin: counts.length ? Math.min(...counts) : null,
      trainMax: counts.length ? Math.max(...counts) : null,
      meanPurity: purities.length ? purities.reduce((a, b) => a + b, 0) / purities.length : null,
    };
  });
}

export interface Headline {
  fullName: string;
  baselineName: string;
  /** Points gained by full over the baseline per column (null where either is missing). */
  deltas: { title: string; delta: number | null }[];
}

/** RetFormer full against MLP only, column by column; null when either method is absent. */
export function buildHeadline(results: CompareResults): Headline | null {
  const full = results.methods.find((m) => m.key === FULL_KEY);
  const base = results.methods.find((m) => m.key === BASELINE_KEY);
  if (!full || !base) return null;
  const deltas = METRIC_COLUMNS.filter((c) => c.key !== 'worst').map((col) => {
    const a = finite(col.value(full));
    const b = finite(col.value(base));
    return { title: col.title, delta: a === null || b === null ? null : a - b };
  });
  return { fullName: full.name, baselineName: base.name, deltas };
}

/** "+4.2" / "−1.0" / "0.0" / dash. */
export function formatDelta(delta: number | null): string {
  if (delta === null) return formatNumber(null);
  const text = Math.abs(delta).toFixed(1);
  if (text === '0.0') return text;
  return delta > 0 ? `+${text}` : `−${text}`;
}

/** Settings worth showing, the bucket edges and sizes first, then the free-form settings. */
export function buildSettings(results: CompareResults): [string, string][] {
  const fixed: [string, string][] = [
    ['created', results.createdAt],
    ['seed', String(results.seed)],
    ['classes', String(results.classes.length)],
    ['test samples', String(results.test.length)],
    ['bucket edges', `Many > ${results.edges.many}, Few < ${results.edges.few} training images`],
  ];
  const free = Object.entries(results.settings ?? {}).map(([k, v]): [string, string] => [k, String(v)]);
  return [...fixed, ...free];
}

/** Timings in their given order, non-finite ones dropped. */
export function buildTimings(results: CompareResults): [string, number][] {
  return Object.entries(results.timings ?? {}).filter(([, s]) => Number.isFinite(s));
}
