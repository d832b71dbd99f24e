import type { EncoderDescriptor } from '../encoders/types.ts';
import { RetformerError } from '../util/errors.ts';
import { KB_FORMAT_VERSION } from './format.ts';
import type { EmbeddedPair, KbManifest, KnowledgeBase, Modality, Neighbour, PairMeta, SearchOptions } from './types.ts';

/**
 * An in-memory knowledge base with exact (brute-force) cosine search. Same interface and
 * semantics as the file KB (row keys never reused, removed rows kept as tombstones, leakage guard,
 * encoder check), for tests of other parts and for small KBs.
 */
export class MemoryKnowledgeBase implements KnowledgeBase {
  private readonly metas: PairMeta[] = [];
  private image: Float32Array; // [capacity, dim]
  private text: Float32Array; // [capacity, dim]
  private readonly removed = new Set<number>();
  private readonly ids = new Map<string, number>();
  private generation = 0;
  private readonly createdAt = new Date().toISOString();

  constructor(
    readonly encoder: EncoderDescriptor,
    pairs: readonly EmbeddedPair[] = [],
  ) {
    this.image = new Float32Array(Math.max(16, pairs.length) * encoder.dim);
    this.text = new Float32Array(Math.max(16, pairs.length) * encoder.dim);
    if (pairs.length > 0) this.add(pairs);
  }

  get dim(): number {
    return this.encoder.dim;
  }
  get encoderId(): string {
    return this.encoder.id;
  }
  get size(): number {
    return this.metas.length - this.removed.size;
  }
  get rows(): number {
    return this.metas.length;
  }
  get manifest(): KbManifest {
    return {
      formatVersion: KB_FORMAT_VERSION,
      kbId: `memory-${this.createdAt}`,
      generation: this.generation,
      encoder: this.encoder,
      encoderChecksum: '',
      dim: this.dim,
      dtype: 'f32',
      count: this.size,
      labels: [...new Set(this.metas.flatMap((m) => (m.label === undefined ? [] : [m.label])))].sort(),
      createdAt: this.createdAt,
      updatedAt: this.createdAt,
    };
  }

  /** Append pairs (validated like the file KB: unique ids, right dimension, finite values); vectors are re-normalised. */
  add(pairs: readonly EmbeddedPair[]): void {
    const dim = this.dim;
    const batch = new Set<string>();
    for (const p of pairs) {
      if (this.ids.has(p.meta.id) || batch.has(p.meta.id)) throw new RetformerError(`duplicate id "${p.meta.id}"`);
      batch.add(p.meta.id);
      for (const v of [p.imageVector, p.textVector]) {
        if (v.length !== dim) throw new RetformerError(`pair "${p.meta.id}": vector has ${v.length} values, expected ${dim} (wrong dimension)`);
        if (v.some((x) => !Number.isFinite(x))) throw new RetformerError(`pair "${p.meta.id}": vector contains NaN or infinite values`);
      }
    }
    const need = (this.metas.length + pairs.length) * dim;
    if (need > this.image.length) {
      const grow = (a: Float32Array) => {
        const b = new Float32Array(Math.max(need, a.length * 2));
        b.set(a);
        return b;
      };
      this.image = grow(this.image);
      this.text = grow(this.text);
    }
    for (const p of pairs) {
      const row = this.metas.length;
      this.image.set(unit(p.imageVector), row * dim);
      this.text.set(unit(p.textVector), row * dim);
      this.metas.push({ ...p.meta });
      this.ids.set(p.meta.id, row);
    }
    this.generation++;
  }

  /** Remove by id; unknown ids are refused and nothing changes. */
  remove(ids: readonly string[]): void {
    for (const id of ids) if (!this.ids.has(id)) throw new RetformerError(`unknown id "${id}"`);
    for (const id of ids) {
      const row = this.ids.get(id);
      if (row === undefined) continue;
      this.removed.add(row);
      this.ids.delete(id);
    }
    this.generation++;
  }

  async search(queries: Float32Array, options: SearchOptions): Promise<Neighbour[][]> {
    if (options.queryEncoderId !== this.encoderId) {
      throw new RetformerError(`query embedded with encoder "${options.queryEncoderId}" but the knowledge base was built with "${this.encoderId}"`);
    }
    const dim = this.dim;
    if (queries.length === 0 || queries.length % dim !== 0) throw new RetformerError(`query vectors have ${queries.length} values, not a multiple of ${dim} (wrong dimension)`);
    const store = (options.modality ?? 'image') === 'image' ? this.image : this.text;
    const n = queries.length / dim;
    const out: Neighbour[][] = [];
    for (let q = 0; q < n; q++) {
      const exclude = options.excludeIds?.[q];
      const scored: { row: number; sim: number }[] = [];
      for (let r = 0; r < this.metas.length; r++) {
        if (this.removed.has(r) || exclude?.has(this.metas[r].id)) continue;
        let s = 0;
        for (let j = 0; j < dim; j++) s += queries[q * dim + j] * store[r * dim + j];
        scored.push({ row: r, sim: s });
      }
      scored.sort((a, b) => b.sim - a.sim || a.row - b.row);
      out.push(scored.slice(0, options.k).map(({ row, sim }) => ({ ...this.metas[row], row, similarity: sim })));
    }
    return out;
  }

  private checkRows(rows: readonly number[]): void {
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= this.metas.length) throw new RetformerError(`row ${r} out of range (0..${this.metas.length - 1})`);
  }

  async vectors(rows: readonly number[], modality: Modality): Promise<Float32Array> {
    this.checkRows(rows);
    const store = modality === 'image' ? this.image : this.text;
    const dim = this.dim;
    const out = new Float32Array(rows.length * dim); // [rows, dim]
    rows.forEach((r, i) => {
      out.set(store.subarray(r * dim, (r + 1) * dim), i * dim);
    });
    return out;
  }

  async meta(rows: readonly number[]): Promise<PairMeta[]> {
    this.checkRows(rows);
    return rows.map((r) => ({ ...this.metas[r] }));
  }

  async close(): Promise<void> {}
}

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  if (s === 0) return v;
  const inv = 1 / Math.sqrt(s);
  return v.map((x) => x * inv);
}
