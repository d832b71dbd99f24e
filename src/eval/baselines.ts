import type { Encoder } from '../encoders/types.ts';
import type { KnowledgeBase, Neighbour } from '../kb/types.ts';
import { guardNeighbours } from '../train/retrieval.ts';
import { RetformerError } from '../util/errors.ts';

/**
 * Training-free baselines reported beside RetFormer with the same metrics:
 * - kNN vote: majority vote of the labels of a query's k nearest KB pairs (image index);
 * - zero-shot: the class whose name, embedded as text, is nearest to the query image.
 * Plus retrieval purity, a diagnostic of how often the image neighbours share the query's class.
 */

export interface KnnVoteOptions {
  k: number;
  /** Encoder id of the query vectors (the KB refuses another encoder's vectors). */
  encoderId: string;
  /** Queries per KB search call. */
  batchSize?: number;
  /** Class predicted when none of a query's neighbours carries a known class label (default 0). */
  fallbackClass?: number;
  /** Called after each batch: (done, total) in queries. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Per-query source path (the test CSV's `path`): the leakage guard leaves out a KB pair with the
   * same source, as RetFormer's own retrieval does, so that a query held out of a KB built from
   * its training CSV (a validation split) does not vote with its own label.
   */
  sources?: readonly (string | undefined)[];
  /** Extra neighbours searched so that k remain after the leakage guard (default 8). */
  extra?: number;
}

/**
 * Majority vote of the neighbours' KB labels. Ties are broken by the summed similarity of the tied
 * classes' neighbours, then by class order. Neighbours whose label is not one of `classes` do not
 * vote. A KB whose neighbours carry no labels at all is a clear error.
 */
export async function knnVote(kb: KnowledgeBase, queryEmbeddings: Float32Array, classes: readonly string[], options: KnnVoteOptions): Promise<number[]> {
  const dim = kb.dim;
  if (queryEmbeddings.length % dim !== 0) {
    throw new RetformerError(`kNN vote: query embeddings have ${queryEmbeddings.length} values, not a multiple of the KB dimension ${dim}`);
  }
  const n = queryEmbeddings.length / dim;
  const batchSize = options.batchSize ?? 256;
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const predictions: number[] = [];
  let sawLabel = false;
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const batch = queryEmbeddings.subarray(start * dim, end * dim); // [batch, dim]
    const want = options.sources ? options.k + (options.extra ?? 8) : options.k;
    const results = await kb.search(batch, { k: want, modality: 'image', queryEncoderId: options.encoderId });
    for (const [j, found] of results.entries()) {
      const neighbours = options.sources ? guardNeighbours(found, options.k, options.sources[start + j], undefined) : found;
      if (neighbours.some((nb) => nb.label !== undefined && nb.label !== '')) sawLabel = true;
      predictions.push(voteOf(neighbours, classIndex, options.fallbackClass ?? 0));
    }
    options.onProgress?.(end, n);
  }
  if (n > 0 && !sawLabel) {
    throw new RetformerError('kNN vote needs a knowledge base whose pairs have labels (build it from a CSV with a "label" column); this KB has none');
  }
  return predictions;
}

/**
 * The kNN vote over a labelled split as compare and the validation selection run it: each picture's
 * own KB pair left out by source path, the most frequent training class when no neighbour votes.
 */
export function voteOnSplit(kb: KnowledgeBase, embeddings: Float32Array, samples: readonly { path: string }[], classes: readonly string[], trainCounts: readonly number[], k: number, encoderId: string): Promise<number[]> {
  return knnVote(kb, embeddings, classes, { k, encoderId, fallbackClass: trainCounts.indexOf(Math.max(...trainCounts)), sources: samples.map((s) => s.path) });
}

/** One query's vote: most neighbours wins, then the larger summed similarity, then the lower class index. */
export function voteOf(neighbours: readonly Neighbour[], classIndex: ReadonlyMap<string, number>, fallbackClass: number): number {
  const votes = new Map<number, { count: number; similarity: number }>();
  for (const nb of neighbours) {
    if (nb.label === undefined) continue;
    const c = classIndex.get(nb.label);
    if (c === undefined) continue;
    const v = votes.get(c) ?? { count: 0, similarity: 0 };
    v.count += 1;
    v.similarity += nb.similarity;
    votes.set(c, v);
  }
  let best = fallbackClass;
  let bestVote: { count: number; similarity: number } | undefined;
  for (const [c, v] of votes) {
    const better =
      bestVote === undefined ||
      v.count > bestVote.count ||
      (v.count === bestVote.count && (v.similarity > bestVote.similarity || (v.similarity === bestVote.similarity && c < best)));
    if (better) {
      best = c;
      bestVote = v;
    }
  }
  return best;
}

/** The text prompt for a class name: separators to spaces, e.g. "face-smiling" -> "face smiling". */
export function classPrompt(className: string): string {
  return className.replace(/[-_]+/g, ' ').replace(/\s+/g, ' ').trim();
}

export interface ZeroShotOptions {
  /** Class name -> text to embed (default `classPrompt`). */
  prompt?: (className: string) => string;
}

/**
 * Zero-shot classification: embed one prompt per class with the encoder's text tower and predict
 * the class whose prompt vector has the largest cosine with the query image vector. Both sides
 * are L2-normalised by the encoder contract, so the dot product is the cosine.
 */
export async function zeroShot(encoder: Encoder, queryEmbeddings: Float32Array, classes: readonly string[], options: ZeroShotOptions = {}): Promise<number[]> {
  const dim = encoder.dim;
  if (classes.length === 0) throw new RetformerError('zero-shot: no classes');
  if (queryEmbeddings.length % dim !== 0) {
    throw new RetformerError(`zero-shot: query embeddings have ${queryEmbeddings.length} values, not a multiple of the encoder dimension ${dim}`);
  }
  const prompt = options.prompt ?? classPrompt;
  const classVectors = await encoder.embedTexts(classes.map(prompt)); // [C, dim]
  const n = queryEmbeddings.length / dim;
  const predictions = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const qi = i * dim;
    let best = 0;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes.length; c++) {
      const cc = c * dim;
      let s = 0;
      for (let t = 0; t < dim; t++) s += queryEmbeddings[qi + t] * classVectors[cc + t];
      if (s > bestScore) {
        bestScore = s;
        best = c;
      }
    }
    predictions[i] = best;
  }
  return predictions;
}

/**
 * Retrieval purity per class (class order): the mean, over a class's test queries, of the share of
 * that query's neighbours whose KB label equals the query's class. null for a class without test
 * queries, and for every class when no neighbour carries a label (a KB without labels).
 */
export function retrievalPurity(neighbours: readonly (readonly Neighbour[])[], labels: ArrayLike<number>, classes: readonly string[]): (number | null)[] {
  if (neighbours.length !== labels.length) {
    throw new RetformerError(`retrieval purity: ${neighbours.length} neighbour lists for ${labels.length} labels`);
  }
  const anyLabel = neighbours.some((list) => list.some((nb) => nb.label !== undefined && nb.label !== ''));
  if (!anyLabel) return classes.map(() => null);
  const sum = new Float64Array(classes.length);
  const count = new Float64Array(classes.length);
  for (let i = 0; i < neighbours.length; i++) {
    const list = neighbours[i];
    const c = labels[i];
    if (list.length === 0 || c < 0 || c >= classes.length) continue;
    let same = 0;
    for (const nb of list) if (nb.label === classes[c]) same++;
    sum[c] += same / list.length;
    count[c] += 1;
  }
  return classes.map((_, c) => (count[c] > 0 ? sum[c] / count[c] : null));
}
