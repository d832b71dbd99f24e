import type { Prediction } from '../infer/types.ts';
import type { GalleryItem, GalleryNeighbour } from './results.ts';
import type { BucketEdges } from './types.ts';

export interface GalleryInput {
  /** Test samples in order: image path and true class index. */
  test: readonly { path: string; label: number }[];
  classes: readonly string[];
  /** Training images per class, in class order. */
  trainCounts: ArrayLike<number>;
  edges: BucketEdges;
  /** MLP-only predicted class per test sample. */
  mlpPredictions: ArrayLike<number>;
  /** RetFormer full's output per test sample. */
  full: readonly Pick<Prediction, 'label' | 'probs' | 'neighbours' | 'attention'>[];
  /** Most items to return (default 12). */
  max?: number;
  /** Neighbours kept per item, by attention weight (default 8). */
  neighbours?: number;
}

/**
 * Pick test pictures of Few classes (training count < edges.few) that MLP-only got wrong and
 * RetFormer full got right. Deterministic: classes take turns (fewest training images first) so
 * the gallery shows many classes, and within a class the most confident full predictions come
 * first. Each item keeps its `neighbours` neighbours with the largest attention weight.
 */
export function selectGallery(input: GalleryInput): GalleryItem[] {
  const max = input.max ?? 12;
  const keep = input.neighbours ?? 8;
  const byClass = new Map<number, number[]>();
  input.test.forEach((t, i) => {
    const c = t.label;
    if (!(input.trainCounts[c] < input.edges.few)) return;
    const full = input.full[i];
    if (full === undefined || full.label !== c || input.mlpPredictions[i] === c) return;
    const list = byClass.get(c) ?? [];
    list.push(i);
    byClass.set(c, list);
  });
  const prob = (i: number) => input.full[i].probs[input.full[i].label] ?? 0;
  const classOrder = [...byClass.keys()].sort((a, b) => input.trainCounts[a] - input.trainCounts[b] || a - b);
  for (const c of classOrder) byClass.get(c)!.sort((a, b) => prob(b) - prob(a) || a - b);
  const picked: number[] = [];
  for (let round = 0; picked.length < max; round++) {
    let any = false;
    for (const c of classOrder) {
      const list = byClass.get(c)!;
      if (round < list.length && picked.length < max) {
        picked.push(list[round]);
        any = true;
      }
    }
    if (!any) break;
  }
  return picked.map((i) => {
    const full = input.full[i];
    const ranked = full.neighbours.map((nb, r) => ({ nb, attention: full.attention[r] ?? 0 }));
    ranked.sort((a, b) => b.attention - a.attention || b.nb.similarity - a.nb.similarity);
    const neighbours: GalleryNeighbour[] = ranked.slice(0, keep).map(({ nb, attention }) => ({
      source: nb.source,
      text: nb.text,
      ...(nb.label === undefined ? {} : { label: nb.label }),
      similarity: nb.similarity,
      attention,
    }));
    return {
      testPath: input.test[i].path,
      label: input.classes[input.test[i].label],
      mlpPred: input.classes[input.mlpPredictions[i]],
      fullPred: input.classes[full.label],
      fullProb: prob(i),
      neighbours,
    };
  });
}
