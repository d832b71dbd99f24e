import v8 from 'node:v8';
import vm from 'node:vm';
import usearch from 'usearch';
import type { FolderState } from './format.ts';
import type { KbDtype } from './types.ts';

export type HnswIndex = InstanceType<typeof usearch.Index>;

/** Raw search results of n queries, `stride` slots each: keys [n, stride], distances [n, stride], counts [n]. */
export interface RawMatches {
  keys: BigUint64Array;
  distances: Float32Array;
  counts: ArrayLike<number | bigint>;
  stride: number;
}

const QUANTIZATION = { f32: usearch.ScalarKind.F32, f16: usearch.ScalarKind.F16, i8: usearch.ScalarKind.I8 } as const;

/**
 * A new, empty cosine HNSW index with the KB's parameters, quantised to the KB's dtype. The JS
 * binding fixes the search breadth (`ef`) at construction, so one Index object serves one ef.
 */
export function newHnswIndex(dim: number, params: FolderState['index'], dtype: KbDtype = 'f32', ef = params.expansionSearch): HnswIndex {
  return new usearch.Index({
    dimensions: dim,
    metric: usearch.MetricKind.Cos,
    quantization: QUANTIZATION[dtype],
    connectivity: params.connectivity,
    expansion_add: params.expansionAdd,
    expansion_search: ef,
    multi: false,
  });
}

/**
 * Search many queries at once ([n, dim] row-major) on all cores. Threads = 0 asks usearch for
 * the hardware concurrency, the same count it reserves on `view`/`load`/batched `add`, so the
 * "Reserve capacity ahead of searches!" failure cannot happen.
 */
export function hnswSearch(index: HnswIndex, queries: Float32Array, dim: number, k: number): RawMatches {
  const n = queries.length / dim;
  // one query: stay on this thread (spawning workers costs more than the search itself)
  const res = index.search(queries, k, n === 1 ? 1 : 0) as unknown as { keys: BigUint64Array; distances: Float32Array; counts?: BigUint64Array };
  if (n === 1 || res.counts === undefined) return { keys: res.keys, distances: res.distances, counts: [res.keys.length], stride: k };
  return { keys: res.keys, distances: res.distances, counts: res.counts, stride: k };
}

let fullGc: (() => void) | undefined;

/**
 * Give back the native memory of HNSW indexes nobody references any more. usearch's JS Index has
 * no free/reset: its graph (about 1.2 GB for 1M f16 rows) is released only when V8 collects the
 * wrapper, and V8 does not count those native bytes, so it may wait for a long time. A writer that
 * builds one index after another drops its last reference to the first, then calls this, so the
 * two are never resident together (measured here: a 100k-row f16 index, RSS 195 -> 74 MiB).
 * V8's gc() is reached without --expose-gc on the command line: the flag set at run time takes
 * effect in a new context. The wrapper's native finalizer runs on a later turn of the event loop,
 * not inside gc(): hence the await (without it a 20k-row index stayed resident: RSS 122 -> 106
 * MiB after gc() alone, 83 MiB after gc() and one setImmediate turn).
 */
export async function collectDroppedIndexes(): Promise<void> {
  if (!fullGc) {
    v8.setFlagsFromString('--expose_gc');
    fullGc = vm.runInNewContext('gc') as () => void;
  }
  fullGc();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
