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
  /** Further fields of an imported pair (e.g. the extra metadata columns of a clip-retrieval part), as JSON values. */
  extra?: Record<string, unknown>;
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
  /** Storage precision of the vectors (f32 in format 1; see KB_DTYPES). */
  dtype: 'f32' | 'f16' | 'i8';
  /** Live pairs (after removes). */
  count: number;
  /**
   * Backend-specific index parameters. Issue 14 moves these out of the neutral manifest (they
   * belong to the backend); code outside src/kb must not read them.
   */
  index?: { metric: 'cos'; connectivity: number; expansionAdd: number; expansionSearch: number };
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
  /**
   * Optional: the same rows as the f16 bits the KB stores ([rows.length, dim]), for a KB whose
   * dtype is f16 and that keeps them so; undefined otherwise. The Predictor feeds them to its graph
   * as they are (no decode in JS: ~0.1 ms and ~130 KB of garbage per prediction at k = 32).
   */
  halfVectors?(rows: readonly number[], modality: Modality): Promise<Uint16Array | undefined>;
  /** Metadata of the given rows. */
  meta(rows: readonly number[]): Promise<PairMeta[]>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Writing and opening KBs: the backend-neutral seam (file folders today, Postgres next).
// Every writer of a KB (build, add, remove, import, compact, the HTTP service) goes through these.
// ---------------------------------------------------------------------------------------------

/** Vector storage precision. f32 is exact; f16 halves the bytes; i8 quarters them (usearch / pgvector quantisation). */
export const KB_DTYPES = ['f32', 'f16', 'i8'] as const;
export type KbDtype = (typeof KB_DTYPES)[number];

/**
 * The dtype of a new KB when none is given: f16 measured no recall loss against f32
 * (docs/kb-format.md#dtype) and halves the bytes. Similarities round to ~1e-3.
 */
export const DEFAULT_KB_DTYPE: KbDtype = 'f16';

/** What a new, empty KB is created with. The encoder's frozen state travels as files (`EncoderFiles`). */
export interface KbCreateOptions {
  encoder: EncoderDescriptor;
  /** Checksum of the encoder's saved state (refuses a KB whose encoder files were swapped). */
  encoderChecksum: string;
  /** The encoder's saved state: relative file name -> bytes (what `Encoder.save(dir)` wrote). */
  encoderFiles: EncoderFiles;
  dim: number;
  dtype?: KbDtype;
  /**
   * How many pairs the KB will hold when first written (a hint, e.g. the rows of an import): a
   * backend may shape its index for it (the file backend: HNSW M 32 from 250,001 rows, else 16).
   */
  expectedRows?: number;
  /** The HNSW graph degree (M) to build with, overriding the choice from expectedRows. */
  connectivity?: number;
  /** Fail if a KB already exists at the spec (default); `true` replaces it atomically on first commit. */
  overwrite?: boolean;
}

/** An encoder's saved state as files, so a backend can store it anywhere (a folder, a table). */
export type EncoderFiles = ReadonlyMap<string, Uint8Array>;

export interface WriteOptions {
  /** Accept labels the KB has not seen (default: refuse them as "unknown label"). */
  allowNewLabels?: boolean;
  /** Threads for index inserts: 1 (default) is deterministic, 0 uses every core. */
  indexThreads?: number;
  /** Told how a commit's index build advances (backends without such a phase never call it). */
  onProgress?: (progress: WriteProgress) => void;
}

/** A commit's long phases: the rows added to each modality's index so far, then the rows its saved file has laid out (see src/kb/hnsw-layout.ts). */
export interface WriteProgress {
  phase: 'indexing image' | 'laying out image' | 'indexing text' | 'laying out text';
  done: number;
  total: number;
}

/**
 * One write transaction on a KB. One writer at a time per KB (a second `beginWrite` is refused
 * with a clear message while one is open); readers keep seeing the last committed generation until
 * `commit()` returns, and never a half-written one. A crash (or `abort()`) before `commit()`
 * leaves the KB exactly as it was.
 */
export interface KbWriter {
  /** Append pairs (ids must be new and unique); `locate(i)` names pair i in errors, e.g. "pairs.csv:12". */
  append(pairs: readonly EmbeddedPair[], locate?: (i: number) => string): Promise<void>;
  /** Remove live pairs by id; an unknown id is an error naming it. */
  remove(ids: readonly string[]): Promise<void>;
  /** Pairs appended and removed so far in this transaction. */
  readonly pending: { added: number; removed: number };
  /** Make the changes visible atomically; returns the new manifest (generation + 1). */
  commit(): Promise<KbManifest>;
  /** Drop the pending changes and release the write lock. */
  abort(): Promise<void>;
}

/** A KB that can be written and maintained, beside being read. */
export interface WritableKnowledgeBase extends KnowledgeBase {
  /** The spec this KB was opened from (a folder path or a postgres:// URL), as runs record it. */
  readonly spec: string;
  beginWrite(options?: WriteOptions): Promise<KbWriter>;
  /** Rewrite storage without removed pairs, atomically; row keys are remapped consistently (see docs/kb-format.md). */
  compact(): Promise<KbManifest>;
  /** Reopen the frozen encoder the KB was built with (wherever its state is stored). */
  openEncoder(): Promise<import('../encoders/types.ts').Encoder>;
  /** The stored encoder state (for export / copying a KB to another backend). */
  encoderFiles(): Promise<EncoderFiles>;
  /** Row keys of every live pair, ascending (paging, export). */
  liveRows(): number[] | Promise<number[]>;
  /** Re-read the committed state if another process committed since (cheap when nothing changed). */
  refresh(): Promise<void>;
}

/** A backend: how to create and open KBs whose spec it accepts (see src/kb/registry.ts). */
export interface KbBackend {
  /** e.g. 'folder', 'postgres'. */
  readonly name: string;
  /** Does this backend handle the spec? */
  accepts(spec: string): boolean;
  open(spec: string): Promise<WritableKnowledgeBase>;
  create(spec: string, options: KbCreateOptions): Promise<WritableKnowledgeBase>;
  /** Does a KB exist at the spec? */
  exists(spec: string): Promise<boolean>;
}
