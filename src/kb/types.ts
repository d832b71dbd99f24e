import type { EncoderDescriptor } from '../encoders/types.ts';

/**
 * The knowledge-base interface. The model, training, evaluation and serving use only this, so a
 * second backend (Postgres + pgvector) can implement it without touching them. Nothing here
 * assumes the KB fits in memory or never changes: vectors are fetched by row, searches go to an
 * index, and `generation` tells callers (e.g. cached retrievals) when the content changed.
 */
export type Modality = 'image' | 'text';

/** What is stored per pair beside its vectors. `source` is the image's path as given at build time (absolute). */
export interface PairMeta {
  id: string;
  text: string;
  source: string;
  label?: string;
}

export interface Neighbour extends PairMeta {
  /** Stable row key of the pair inside this KB (never reused after a remove). */
  row: number;
  /** Cosine similarity between the query and this pair's vector in the searched modality. */
  similarity: number;
}

export interface SearchOptions {
  k: number;
  /** Which index to search: 'image' (default) compares against the pairs' image vectors, 'text' against their text vectors. */
  modality?: Modality;
  /**
   * Encoder id of the query vectors; a KB refuses queries from another encoder.
   * Required so that a mismatch can never pass silently.
   */
  queryEncoderId: string;
  /** Per-query pair ids to leave out (the leakage guard: a training image never retrieves itself). */
  excludeIds?: readonly (ReadonlySet<string> | undefined)[];
  /** HNSW search breadth; backends pick a default that reaches recall@32 >= 0.98. */
  ef?: number;
}

export interface KbManifest {
  formatVersion: number;
  /** Changes on every committed add/remove. */
  generation: number;
  encoder: EncoderDescriptor;
  dim: number;
  dtype: 'f32';
  /** Live pairs (after removes). */
  count: number;
  index: { metric: 'cos'; connectivity: number; expansionAdd: number; expansionSearch: number };
  createdAt: string;
  updatedAt: string;
  [key: string]: unknown;
}

/** A pair ready to store: metadata plus its two L2-normalised vectors. */
export interface EmbeddedPair {
  meta: PairMeta;
  imageVector: Float32Array; // [dim]
  textVector: Float32Array; // [dim]
}

export interface KnowledgeBase {
  readonly manifest: KbManifest;
  readonly dim: number;
  readonly encoderId: string;
  /** Live pair count. */
  readonly size: number;
  /** k-NN for each query row of `queries` ([n, dim], L2-normalised); results best first. */
  search(queries: Float32Array, options: SearchOptions): Promise<Neighbour[][]>;
  /** Vectors of the given rows in one modality: [rows.length, dim]. */
  vectors(rows: readonly number[], modality: Modality): Promise<Float32Array>;
  /** Metadata of the given rows. */
  meta(rows: readonly number[]): Promise<PairMeta[]>;
  close(): Promise<void>;
}
