/**
 * Run `fn` over items with at most `concurrency` in flight, keeping order. (Image decoding
 * in sharp runs on libuv's thread pool, so a few in flight keep both cores busy; training jobs are
 * child processes.)
 */
export async function mapConcurrent<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}
