import type { Encoder } from '../encoders/types.ts';
import type { ClassifyOptions, Prediction } from '../infer/types.ts';
import { RetformerError } from '../util/errors.ts';
import type { ReadWriteGate } from './gate.ts';

/** One query waiting to be classified: encoded image bytes (already checked) or an embedding [dim]. */
export type Query = { image: Uint8Array } | { embedding: Float32Array };

interface Waiting {
  query: Query;
  top: number;
  resolve: (p: Prediction) => void;
  reject: (err: unknown) => void;
}

export interface BatcherDeps {
  encoder: Encoder;
  classifyEmbeddings(embeddings: Float32Array, options?: ClassifyOptions): Promise<Prediction[]>; // [n, dim] -> n
  gate: ReadWriteGate;
  /** Most queries per forward pass. */
  maxBatch: number;
  /** Called with the size of every batch run (metrics). */
  onBatch?: (queries: number) => void;
}

/**
 * Coalesces concurrent requests into batches: queries that arrive while a batch runs go into the
 * next one, so 50 clients sending one picture each are served by a few large forward passes, as
 * an in-process `classify` over a folder would be. Images are embedded together; if that fails,
 * each image is embedded alone so that one unreadable picture fails only its own request.
 */
export class PredictBatcher {
  private readonly queue: Waiting[] = [];
  private running = false;
  private scheduled = false;
  /** Batches run and queries classified, for the metrics. */
  readonly stats = { batches: 0, queries: 0 };

  constructor(private readonly deps: BatcherDeps) {}

  classify(query: Query, top: number): Promise<Prediction> {
    return new Promise((resolve, reject) => {
      this.queue.push({ query, top, resolve, reject });
      this.schedule();
    });
  }

  /** Queries waiting for a batch. */
  get waiting(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.queue.splice(0, this.deps.maxBatch);
    try {
      await this.runBatch(batch);
    } catch (err) {
      for (const w of batch) w.reject(err);
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.schedule();
    }
  }

  private async runBatch(batch: Waiting[]): Promise<void> {
    const { encoder } = this.deps;
    const dim = encoder.dim;
    const vectors = new Array<Float32Array | undefined>(batch.length);
    const imageAt: number[] = [];
    batch.forEach((w, i) => {
      if ('embedding' in w.query) vectors[i] = w.query.embedding;
      else imageAt.push(i);
    });
    if (imageAt.length > 0) {
      const images = imageAt.map((i) => (batch[i].query as { image: Uint8Array }).image);
      try {
        const out = await encoder.embedImages(images); // [m, dim]
        imageAt.forEach((i, j) => {
          vectors[i] = out.subarray(j * dim, (j + 1) * dim);
        });
      } catch {
        // isolate the unreadable picture(s): embed one by one
        for (const i of imageAt) {
          try {
            vectors[i] = await encoder.embedImages([(batch[i].query as { image: Uint8Array }).image]);
          } catch (err) {
            batch[i].reject(err instanceof RetformerError ? err : new RetformerError(`image: ${(err as Error).message}`));
          }
        }
      }
    }
    const live = batch.map((w, i) => ({ w, v: vectors[i] })).filter((x): x is { w: Waiting; v: Float32Array } => x.v !== undefined);
    if (live.length === 0) return;
    const queries = new Float32Array(live.length * dim); // [n, dim]
    live.forEach((x, i) => {
      queries.set(x.v, i * dim);
    });
    const top = Math.max(...live.map((x) => x.w.top));
    const predictions = await this.deps.gate.read(() => this.deps.classifyEmbeddings(queries, { top }));
    this.stats.batches++;
    this.stats.queries += live.length;
    this.deps.onBatch?.(live.length);
    live.forEach((x, i) => {
      const p = predictions[i];
      x.w.resolve(p.top.length > x.w.top ? { ...p, top: p.top.slice(0, x.w.top) } : p);
    });
  }
}
