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

/**
 * A counting semaphore: at most `size` callers of run() in flight, the rest wait in arrival order.
 * Several pools (e.g. the demo's comparisons, each with its own training jobs) share one to keep the
 * machine's cores busy without oversubscribing them.
 */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`Slots: size must be a positive integer, got ${size}`);
    this.free = size;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((wake) => this.waiting.push(wake));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
