import { existsSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RetformerError } from '../util/errors.ts';
import { fsyncPath, writeJsonAtomic } from '../util/fs.ts';
import { type AppendOptions, KbAppender, type Locate } from './appender.ts';
import { crashPoint } from './crash-point.ts';
import { type FileKbManifest, isGenerationFile, KB_FILES, readManifest, tombstoneFileName } from './format.ts';
import { type HnswIndex, hnswSearch, newHnswIndex } from './hnsw.ts';
import { filterMatches } from './search-filter.ts';
import { acquireWriteLock, liveWriter, MetaStore, recoverToManifest, VectorFile, vectorFileName } from './storage.ts';
import type { EmbeddedPair, KnowledgeBase, Modality, Neighbour, PairMeta, SearchOptions } from './types.ts';

/** Does the folder hold anything past its committed state (a crashed add/remove)? */
function needsRecovery(dir: string, m: FileKbManifest): boolean {
  const size = (name: string) => statSync(join(dir, name)).size;
  const vec = m.rows * m.dim * 4;
  if (size(KB_FILES.imageVectors) !== vec || size(KB_FILES.textVectors) !== vec) return true;
  if (size(KB_FILES.meta) !== m.metaBytes || size(KB_FILES.metaIndex) !== m.rows * 8) return true;
  const live = new Set([m.files.imageIndex, m.files.textIndex, m.files.tombstones]);
  return readdirSync(dir).some((n) => isGenerationFile(n) && !live.has(n));
}

/**
 * A knowledge base in a folder (layout in format.ts / docs/kb-format.md). Opening is cheap:
 * indexes are memory-mapped (usearch `view`) on first search, vectors are read by row, metadata
 * by offset. `add` and `remove` commit a new generation atomically under a single-writer lock.
 */
export class FileKnowledgeBase implements KnowledgeBase {
  readonly dir: string;
  private state!: {
    manifest: FileKbManifest;
    tombstones: Set<number>;
    meta: MetaStore;
    vectors: Record<Modality, VectorFile>;
    indexes: Map<string, HnswIndex>; // "modality:ef" -> viewed index
  };

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async open(dir: string): Promise<FileKnowledgeBase> {
    const kb = new FileKnowledgeBase(resolve(dir));
    kb.load();
    return kb;
  }

  get manifest(): FileKbManifest {
    return this.state.manifest;
  }
  get dim(): number {
    return this.state.manifest.dim;
  }
  get encoderId(): string {
    return this.state.manifest.encoder.id;
  }
  get size(): number {
    return this.state.manifest.count;
  }
  /** Committed rows including removed ones; row keys are 0..rows-1. */
  get rows(): number {
    return this.state.manifest.rows;
  }
  get removedRows(): ReadonlySet<number> {
    return this.state.tombstones;
  }

  /** (Re)read the committed state, first repairing a crashed writer's leftovers when no writer is running. */
  private load(): void {
    let manifest = readManifest(this.dir);
    if (liveWriter(this.dir) === undefined && needsRecovery(this.dir, manifest)) {
      const release = acquireWriteLock(this.dir);
      try {
        manifest = readManifest(this.dir);
        recoverToManifest(this.dir, manifest);
      } finally {
        release();
      }
    }
    const tombstones = new Set<number>();
    if (manifest.files.tombstones) {
      const file = join(this.dir, manifest.files.tombstones);
      for (const r of JSON.parse(readFileSync(file, 'utf8')) as number[]) tombstones.add(r);
    }
    this.state = {
      manifest,
      tombstones,
      meta: new MetaStore(this.dir, manifest.rows, manifest.metaBytes),
      vectors: { image: new VectorFile(join(this.dir, vectorFileName('image')), manifest.dim), text: new VectorFile(join(this.dir, vectorFileName('text')), manifest.dim) },
      indexes: new Map(),
    };
  }

  /** Pick up a generation committed by another process (no-op when unchanged). */
  async reload(): Promise<void> {
    if (readManifest(this.dir).generation === this.state.manifest.generation) return;
    this.closeState();
    this.load();
  }

  private index(modality: Modality, ef: number): HnswIndex {
    const key = `${modality}:${ef}`;
    let index = this.state.indexes.get(key);
    if (!index) {
      const m = this.state.manifest;
      index = newHnswIndex(m.dim, m.index, ef);
      const file = join(this.dir, modality === 'image' ? m.files.imageIndex : m.files.textIndex);
      try {
        index.view(file);
      } catch (err) {
        throw new RetformerError(`${file}: cannot open index: ${(err as Error).message}`);
      }
      this.state.indexes.set(key, index);
    }
    return index;
  }

  checkQueryEncoder(queryEncoderId: string): void {
    if (queryEncoderId !== this.encoderId) {
      throw new RetformerError(
        `query embedded with encoder "${queryEncoderId}" but the knowledge base ${this.dir} was built with "${this.encoderId}"; embed queries with the KB's encoder`,
      );
    }
  }

  async search(queries: Float32Array, options: SearchOptions): Promise<Neighbour[][]> {
    this.checkQueryEncoder(options.queryEncoderId);
    const dim = this.dim;
    if (queries.length % dim !== 0 || queries.length === 0) throw new RetformerError(`query vectors have ${queries.length} values, not a multiple of the KB's dimension ${dim} (wrong dimension)`);
    for (let i = 0; i < queries.length; i++) {
      if (!Number.isFinite(queries[i])) throw new RetformerError(`query ${Math.floor(i / dim) + 1} contains ${queries[i]} (NaN or infinite value)`);
    }
    const { k } = options;
    if (!Number.isInteger(k) || k <= 0) throw new RetformerError(`k must be a positive integer, got ${k}`);
    const n = queries.length / dim;
    const live = this.size;
    if (live === 0) return Array.from({ length: n }, () => []);
    const index = this.index(options.modality ?? 'image', options.ef ?? this.manifest.index.expansionSearch);
    const indexed = this.rows;
    const tomb = this.state.tombstones;
    let maxExcluded = 0;
    for (const s of options.excludeIds ?? []) maxExcluded = Math.max(maxExcluded, s?.size ?? 0);
    // over-fetch so that filtering tombstones and excluded ids still leaves k
    const margin = maxExcluded + (tomb.size > 0 ? Math.min(tomb.size, k) + 8 : 0);
    const fetch = Math.min(k + margin, indexed);
    const raw = hnswSearch(index, queries, dim, fetch); // keys [n, fetch]
    const meta = (row: number) => this.state.meta.get(row);
    const results = filterMatches(raw, n, k, tomb, options.excludeIds, meta);
    // a query that lost too many candidates to filtering is searched again, wider
    for (let q = 0; q < n; q++) {
      let wider = fetch;
      while (results[q].length < Math.min(k, live) && wider < indexed) {
        wider = Math.min(wider * 2, indexed);
        const one = hnswSearch(index, queries.subarray(q * dim, (q + 1) * dim), dim, wider);
        results[q] = filterMatches(one, 1, k, tomb, options.excludeIds ? [options.excludeIds[q]] : undefined, meta)[0];
      }
    }
    return results;
  }

  private checkRows(rows: readonly number[]): void {
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.rows) throw new RetformerError(`${this.dir}: row ${r} out of range (0..${this.rows - 1})`);
    }
  }

  async vectors(rows: readonly number[], modality: Modality): Promise<Float32Array> {
    this.checkRows(rows);
    return this.state.vectors[modality].read(rows);
  }

  async meta(rows: readonly number[]): Promise<PairMeta[]> {
    this.checkRows(rows);
    return rows.map((r) => this.state.meta.get(r));
  }

  /** Rows of every live pair, ascending. */
  liveRows(): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.rows; r++) if (!this.state.tombstones.has(r)) out.push(r);
    return out;
  }

  /** id -> row of every live pair (scans the metadata). */
  liveIds(): Map<string, number> {
    const ids = new Map<string, number>();
    for (const r of this.liveRows()) ids.set(this.state.meta.get(r).id, r);
    return ids;
  }

  /**
   * Start appending under the write lock (build, `kb add`): batches go through `append`, then
   * `commit` makes them visible as one generation; `abort` (or a crash) leaves the old state.
   */
  async beginAdd(options: AppendOptions = {}): Promise<{ append: (pairs: readonly EmbeddedPair[], locate?: Locate) => void; commit: () => Promise<FileKbManifest>; abort: () => void }> {
    const release = acquireWriteLock(this.dir);
    try {
      await this.reloadLocked();
      const m = this.state.manifest;
      const loadIndex = (file: string) => {
        const index = newHnswIndex(m.dim, m.index);
        if (file !== '') index.load(join(this.dir, file)); // '' = a new, empty KB
        return index;
      };
      const appender = new KbAppender(this.dir, m, this.liveIds(), loadIndex(m.files.imageIndex), loadIndex(m.files.textIndex), options);
      return {
        append: (pairs, locate) => appender.append(pairs, locate),
        commit: async () => {
          try {
            const old = this.state.manifest;
            const next = appender.commit();
            deleteSuperseded(this.dir, old, next);
            this.closeState();
            this.load();
            return next;
          } finally {
            release();
          }
        },
        abort: () => {
          appender.abort();
          release();
        },
      };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Append pairs as one committed generation. */
  async add(pairs: EmbeddedPair[], options: AppendOptions = {}): Promise<FileKbManifest> {
    const tx = await this.beginAdd(options);
    try {
      tx.append(pairs);
    } catch (err) {
      tx.abort();
      throw err;
    }
    return tx.commit();
  }

  /** Remove pairs by id (tombstones; row keys are never reused). Unknown ids are refused; nothing changes then. */
  async remove(ids: string[]): Promise<FileKbManifest> {
    const release = acquireWriteLock(this.dir);
    try {
      await this.reloadLocked();
      const live = this.liveIds();
      const rows = new Set<number>();
      for (const id of ids) {
        const row = live.get(id);
        if (row === undefined) throw new RetformerError(`${this.dir}: unknown id "${id}" (not in the knowledge base, or already removed)`);
        rows.add(row);
      }
      const old = this.state.manifest;
      if (rows.size === 0) return old;
      const generation = old.generation + 1;
      const tombFile = tombstoneFileName(generation);
      const all = [...this.state.tombstones, ...rows].sort((a, b) => a - b);
      writeJsonAtomic(join(this.dir, tombFile), all);
      const next: FileKbManifest = {
        ...old,
        generation,
        count: old.count - rows.size,
        removed: all.length,
        files: { ...old.files, tombstones: tombFile },
        updatedAt: new Date().toISOString(),
      };
      crashPoint('remove:before-manifest');
      writeJsonAtomic(join(this.dir, KB_FILES.manifest), next);
      crashPoint('remove:after-manifest');
      deleteSuperseded(this.dir, old, next);
      this.closeState();
      this.load();
      return next;
    } finally {
      release();
    }
  }

  /** Under the lock: re-read the manifest and cut any crashed writer's leftovers. */
  private async reloadLocked(): Promise<void> {
    const m = readManifest(this.dir);
    recoverToManifest(this.dir, m);
    if (m.generation !== this.state.manifest.generation) {
      this.closeState();
      this.load();
    }
  }

  private closeState(): void {
    this.state.meta.close();
    this.state.vectors.image.close();
    this.state.vectors.text.close();
    this.state.indexes.clear();
  }

  async close(): Promise<void> {
    this.closeState();
  }
}

/** After a commit: delete the files the old generation named and the new one does not. */
function deleteSuperseded(dir: string, old: FileKbManifest, next: FileKbManifest): void {
  const keep = new Set([next.files.imageIndex, next.files.textIndex, next.files.tombstones]);
  let any = false;
  for (const f of [old.files.imageIndex, old.files.textIndex, old.files.tombstones]) {
    if (f && !keep.has(f) && existsSync(join(dir, f))) {
      unlinkSync(join(dir, f));
      any = true;
    }
  }
  if (any) fsyncPath(dir);
}
