import { RetformerError } from '../util/errors.ts';
import type { Bucket, BucketEdges, Dataset } from './types.ts';

/** Many > edges.many; Medium edges.few..edges.many (inclusive); Few < edges.few. */
export function bucketOf(count: number, edges: BucketEdges): Bucket {
  if (count > edges.many) return 'many';
  if (count < edges.few) return 'few';
  return 'medium';
}

/** Check that bucket edges make sense (few <= many, both non-negative). */
export function validateEdges(edges: BucketEdges): BucketEdges {
  if (!Number.isFinite(edges.many) || !Number.isFinite(edges.few) || edges.few < 0 || edges.few > edges.many) {
    throw new RetformerError(`bad bucket edges many=${edges.many} few=${edges.few} (need 0 <= few <= many)`);
  }
  return edges;
}

/** Images per class, in `dataset.classes` order. */
export function classCounts(dataset: Dataset): number[] {
  const index = new Map(dataset.classes.map((c, i) => [c, i]));
  const counts = new Array<number>(dataset.classes.length).fill(0);
  for (const s of dataset.samples) {
    const c = index.get(s.label);
    if (c === undefined) throw new RetformerError(`${dataset.source}:${s.row}: label "${s.label}" is not one of the dataset's classes`);
    counts[c]++;
  }
  return counts;
}

export interface BucketSummary {
  classes: number;
  images: number;
}

export interface DatasetStats {
  source: string;
  images: number;
  classes: number;
  edges: BucketEdges;
  /** Largest / smallest count among classes with at least one image, and their ratio (the imbalance factor). */
  maxCount: number;
  minCount: number;
  imbalance: number;
  /** Classes of the class list without any image. */
  emptyClasses: number;
  /** Samples whose label differs from their clean label (0 when no clean labels). */
  noisy: number;
  buckets: Record<Bucket, BucketSummary>;
  perClass: { label: string; count: number; bucket: Bucket }[];
}

/** Per-class counts and Many/Medium/Few bucket sizes (classes and images) of a dataset. */
export function datasetStats(dataset: Dataset, edges: BucketEdges): DatasetStats {
  validateEdges(edges);
  const counts = classCounts(dataset);
  const buckets: Record<Bucket, BucketSummary> = {
    many: { classes: 0, images: 0 },
    medium: { classes: 0, images: 0 },
    few: { classes: 0, images: 0 },
  };
  const perClass = dataset.classes.map((label, i) => {
    const bucket = bucketOf(counts[i], edges);
    buckets[bucket].classes++;
    buckets[bucket].images += counts[i];
    return { label, count: counts[i], bucket };
  });
  const nonEmpty = counts.filter((c) => c > 0);
  const maxCount = nonEmpty.length ? Math.max(...nonEmpty) : 0;
  const minCount = nonEmpty.length ? Math.min(...nonEmpty) : 0;
  return {
    source: dataset.source,
    images: dataset.samples.length,
    classes: dataset.classes.length,
    edges,
    maxCount,
    minCount,
    imbalance: minCount > 0 ? maxCount / minCount : 0,
    emptyClasses: counts.length - nonEmpty.length,
    noisy: dataset.samples.filter((s) => s.cleanLabel !== undefined && s.cleanLabel !== s.label).length,
    buckets,
    perClass,
  };
}

/** Human-readable stats: a summary, the buckets, then one line per class. */
export function formatStats(stats: DatasetStats): string {
  const { edges, buckets } = stats;
  const lines = [
    `${stats.source}: ${stats.images} images, ${stats.classes} classes, ${stats.maxCount}..${stats.minCount} per class (imbalance ${stats.imbalance.toFixed(1)})` +
      (stats.emptyClasses ? `, ${stats.emptyClasses} empty classes` : '') +
      (stats.noisy ? `, ${stats.noisy} noisy labels` : ''),
    '',
    '| bucket | rule | classes | images |',
    '|---|---|---:|---:|',
    `| Many | > ${edges.many} | ${buckets.many.classes} | ${buckets.many.images} |`,
    `| Medium | ${edges.few}..${edges.many} | ${buckets.medium.classes} | ${buckets.medium.images} |`,
    `| Few | < ${edges.few} | ${buckets.few.classes} | ${buckets.few.images} |`,
    '',
    '| class | count | bucket |',
    '|---|---:|---|',
    ...stats.perClass.map((c) => `| ${c.label} | ${c.count} | ${c.bucket} |`),
  ];
  return `${lines.join('\n')}\n`;
}
