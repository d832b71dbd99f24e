import type { RawMatches } from './hnsw.ts';
import type { Neighbour, PairMeta } from './types.ts';

/**
 * Turn raw index matches into neighbours: drop removed rows and each query's excluded ids, keep
 * the best k. Cosine distance d becomes similarity 1 - d.
 */
export function filterMatches(
  raw: RawMatches,
  n: number,
  k: number,
  removed: ReadonlySet<number>,
  excludeIds: readonly (ReadonlySet<string> | undefined)[] | undefined,
  meta: (row: number) => PairMeta,
): Neighbour[][] {
  const out: Neighbour[][] = new Array(n);
  for (let q = 0; q < n; q++) {
    const found = Number(raw.counts[q]);
    const base = q * raw.stride;
    const exclude = excludeIds?.[q];
    const list: Neighbour[] = [];
    for (let j = 0; j < found && list.length < k; j++) {
      const row = Number(raw.keys[base + j]);
      if (removed.has(row)) continue;
      const m = meta(row);
      if (exclude?.has(m.id)) continue;
      const similarity = 1 - raw.distances[base + j];
      // fixed-shape literals: much cheaper than spreading in this hot loop
      list.push(
        m.label === undefined
          ? { id: m.id, text: m.text, source: m.source, row, similarity }
          : { id: m.id, text: m.text, source: m.source, label: m.label, row, similarity },
      );
    }
    out[q] = list;
  }
  return out;
}
