import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { CompareResults, GalleryItem, MethodResult } from '../../src/eval/results.ts';
import type { BucketEdges, EvalMetrics } from '../../src/eval/types.ts';
import { LIFT_BUCKETS } from '../../src/eval/types.ts';
import { Rng } from '../../src/util/rng.ts';

/** A label and a neighbour text that try to break out of HTML / Markdown. */
export const HOSTILE_LABEL = '<script>alert("x")</script> & co|*';
export const HOSTILE_METHOD = 'kNN <script>vote</script>';
export const HOSTILE_TEXT = '<img src=x onerror=alert(1)> [link](javascript:alert(1)) | pipe';

export interface ReportFixtureOptions {
  seed?: number;
  classes?: number;
  /** Mean test pictures per class (~1,900 over 99 classes by default). */
  testPerClass?: number;
  edges?: BucketEdges;
  galleryItems?: number;
  neighbours?: number;
  /** Rename the class of gallery item 0 to HOSTILE_LABEL, give its first neighbour HOSTILE_TEXT and kNN vote HOSTILE_METHOD as name. */
  hostile?: boolean;
  /** Set every class's purity to null. */
  noPurity?: boolean;
  /** Leave these method keys out. */
  dropMethods?: string[];
}

/** The eight methods and their chance of a right answer per bucket [many, medium, few]. */
const METHOD_PROFILES: { key: string; name: string; kind: MethodResult['kind']; p: [number, number, number] }[] = [
  { key: 'mlp-only', name: 'MLP only', kind: 'baseline', p: [0.9, 0.72, 0.3] },
  { key: 'knn-vote', name: 'kNN vote', kind: 'baseline', p: [0.8, 0.66, 0.42] },
  { key: 'image-only', name: 'Image-only retrieval', kind: 'retformer', p: [0.88, 0.74, 0.48] },
  { key: 'zero-shot', name: 'Zero-shot', kind: 'baseline', p: [0.62, 0.6, 0.58] },
  { key: 'no-text', name: 'RetFormer no-text', kind: 'retformer', p: [0.9, 0.76, 0.52] },
  { key: 'no-image', name: 'RetFormer no-image', kind: 'retformer', p: [0.91, 0.79, 0.6] },
  { key: 'full', name: 'RetFormer full', kind: 'retformer', p: [0.93, 0.83, 0.7] },
  { key: 'adaptive', name: 'RetFormer adaptive', kind: 'retformer', p: [0.93, 0.84, 0.72] },
];

const ADJECTIVES = ['grinning', 'sleepy', 'red', 'blue', 'tiny', 'winking', 'flying', 'golden', 'frozen', 'happy', 'spicy'];
const NOUNS = ['face', 'cat', 'heart', 'rocket', 'tree', 'moon', 'pepper', 'flag', 'ghost'];

function bucketIndex(count: number, edges: BucketEdges): 0 | 1 | 2 {
  return count > edges.many ? 0 : count < edges.few ? 2 : 1;
}

/** Metrics from predictions, as the evaluator defines them (bucket = mean of per-class accuracies). */
export function metricsFromPredictions(
  predictions: number[],
  test: { label: number }[],
  classes: string[],
  trainCounts: number[],
  edges: BucketEdges,
): EvalMetrics {
  const c = classes.length;
  const support = new Array<number>(c).fill(0);
  const hits = new Array<number>(c).fill(0);
  const predicted = new Array<number>(c).fill(0);
  test.forEach((t, i) => {
    support[t.label]++;
    predicted[predictions[i]]++;
    if (predictions[i] === t.label) hits[t.label]++;
  });
  const perClass: Record<string, number> = {};
  const bucketAcc: number[][] = [[], [], []];
  let f1Sum = 0;
  let present = 0;
  let worst = { label: '', accuracy: Number.POSITIVE_INFINITY };
  for (let k = 0; k < c; k++) {
    if (support[k] === 0) continue;
    const acc = (100 * hits[k]) / support[k];
    perClass[classes[k]] = acc;
    bucketAcc[bucketIndex(trainCounts[k], edges)].push(acc);
    const precision = predicted[k] === 0 ? 0 : hits[k] / predicted[k];
    const recall = hits[k] / support[k];
    f1Sum += precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    present++;
    if (acc < worst.accuracy) worst = { label: classes[k], accuracy: acc };
  }
  const mean = (xs: number[]) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
  const correct = hits.reduce((a, b) => a + b, 0);
  return {
    overall: (100 * correct) / test.length,
    many: mean(bucketAcc[0]),
    medium: mean(bucketAcc[1]),
    few: mean(bucketAcc[2]),
    macroF1: (100 * f1Sum) / present,
    worstClass: worst,
    perClass,
    buckets: { many: bucketAcc[0].length, medium: bucketAcc[1].length, few: bucketAcc[2].length },
    n: test.length,
  };
}

async function writePng(path: string, rng: Rng): Promise<void> {
  const hue = rng.int(360);
  const shape =
    rng.next() < 0.5
      ? `<circle cx="24" cy="24" r="${14 + rng.int(8)}" fill="hsl(${hue},70%,55%)"/>`
      : `<rect x="${6 + rng.int(8)}" y="${6 + rng.int(8)}" width="28" height="28" rx="6" fill="hsl(${hue},70%,55%)"/>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48">${shape}<circle cx="18" cy="20" r="3" fill="#222"/><circle cx="30" cy="20" r="3" fill="#222"/></svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path);
}

/**
 * A seeded, realistic CompareResults: 99 classes with long-tailed training counts 517..2, ~1,900
 * test samples, 8 methods whose predictions are nested by a shared per-sample difficulty (so some
 * Few pictures are wrong for MLP only and right for full), per-class purity, and a gallery of 12
 * items whose test and neighbour pictures are small PNGs written under `dir`.
 */
export async function makeReportFixture(dir: string, options: ReportFixtureOptions = {}): Promise<CompareResults> {
  const rng = new Rng(options.seed ?? 7);
  const nClasses = options.classes ?? 99;
  const edges = options.edges ?? LIFT_BUCKETS;
  const classes = Array.from({ length: nClasses }, (_, i) => `${ADJECTIVES[i % ADJECTIVES.length]} ${NOUNS[Math.floor(i / ADJECTIVES.length) % NOUNS.length]}`);
  // exponential profile from 517 down to 2 images per class
  const trainCounts = classes.map((_, i) => Math.round(517 * (2 / 517) ** (nClasses === 1 ? 0 : i / (nClasses - 1))));

  const imgDir = join(dir, 'pictures');
  mkdirSync(imgDir, { recursive: true });
  const test: { path: string; label: number }[] = [];
  const difficulty: number[] = [];
  const meanPerClass = options.testPerClass ?? 19.2;
  classes.forEach((_, k) => {
    const n = Math.max(1, Math.round(meanPerClass + (rng.next() - 0.5) * 6));
    for (let j = 0; j < n; j++) {
      test.push({ path: join(imgDir, `test-${k}-${j}.png`), label: k });
      difficulty.push(rng.next());
    }
  });

  const wrongClass = (truth: number) => (truth + 1 + rng.int(nClasses - 1)) % nClasses;
  const profiles = METHOD_PROFILES.filter((p) => !(options.dropMethods ?? []).includes(p.key));
  const methods: MethodResult[] = profiles.map((profile) => {
    const predictions = test.map((t, i) => (difficulty[i] < profile.p[bucketIndex(trainCounts[t.label], edges)] ? t.label : wrongClass(t.label)));
    return {
      key: profile.key,
      name: profile.name,
      kind: profile.kind,
      metrics: metricsFromPredictions(predictions, test, classes, trainCounts, edges),
      predictions,
      trainSeconds: profile.kind === 'retformer' ? 30 + rng.int(200) : undefined,
    };
  });

  const purity = classes.map((_, k) => (options.noPurity ? null : Math.min(1, Math.max(0, 0.15 + 0.7 * (Math.log(trainCounts[k]) / Math.log(517)) + (rng.next() - 0.5) * 0.2))));
  if (!options.noPurity && nClasses > 3) purity[nClasses - 2] = null; // one class without a value

  // gallery: Few pictures that fall between the MLP and the full model's chance of being right
  const mlp = METHOD_PROFILES[0].p[2];
  const full = METHOD_PROFILES[6].p[2];
  const candidates = test.map((t, i) => ({ t, i })).filter(({ t, i }) => bucketIndex(trainCounts[t.label], edges) === 2 && difficulty[i] >= mlp && difficulty[i] < full);
  const kbPictures = Array.from({ length: 30 }, (_, j) => join(imgDir, `kb-${j}.png`));
  const gallery: GalleryItem[] = rng.shuffle(candidates).slice(0, options.galleryItems ?? 12).map(({ t }) => {
    const k = options.neighbours ?? 8;
    const raw = Array.from({ length: k }, () => 0.2 + rng.next());
    const sum = raw.reduce((a, b) => a + b, 0);
    return {
      testPath: t.path,
      label: classes[t.label],
      mlpPred: classes[wrongClass(t.label)],
      fullPred: classes[t.label],
      fullProb: 0.4 + 0.5 * rng.next(),
      neighbours: raw.map((a, j) => ({
        source: kbPictures[rng.int(kbPictures.length)],
        text: j === 2 ? 'a very long description of a picture that goes on and on about its colours, its shape and the mood it conveys' : `${classes[j % 3 === 0 ? t.label : rng.int(nClasses)]} emoji`,
        label: j % 3 === 0 ? classes[t.label] : classes[rng.int(nClasses)],
        similarity: 0.95 - 0.04 * j - 0.01 * rng.next(),
        attention: a / sum,
      })),
    };
  });
  if (options.hostile && gallery.length > 0) {
    const before = gallery[0].label;
    const rename = (name: string) => (name === before ? HOSTILE_LABEL : name);
    classes[classes.indexOf(before)] = HOSTILE_LABEL;
    for (const m of methods) m.metrics = metricsFromPredictions(m.predictions, test, classes, trainCounts, edges);
    for (const item of gallery) {
      item.label = rename(item.label);
      item.mlpPred = rename(item.mlpPred);
      item.fullPred = rename(item.fullPred);
      for (const n of item.neighbours) n.label = n.label === undefined ? undefined : rename(n.label);
    }
    gallery[0].neighbours[0].text = HOSTILE_TEXT;
    const knn = methods.find((m) => m.key === 'knn-vote');
    if (knn) knn.name = HOSTILE_METHOD;
  }

  const used = new Set(gallery.flatMap((g) => [g.testPath, ...g.neighbours.map((n) => n.source)]));
  for (const path of used) await writePng(path, rng);

  return {
    createdAt: '2026-03-01T12:00:00.000Z',
    seed: options.seed ?? 7,
    classes,
    trainCounts,
    edges,
    test,
    methods,
    purity,
    gallery,
    timings: { embed: 41.2, kb: 3.4, 'train:full': 512.7, 'train:no-text': 301.5, eval: 12.9 },
    settings: { k: 32, epochs: 25, encoder: 'onnx:models/clip-vit-b16', 'kb size': 18432, dataset: 'emoji-lt' },
  };
}
