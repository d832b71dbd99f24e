import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { openEncoder as openEncoderFromDir } from '../encoders/registry.ts';
import type { Encoder } from '../encoders/types.ts';
import { RetformerError, toUserError } from '../util/errors.ts';
import { fsyncPath, writeJsonAtomic } from '../util/fs.ts';
import { compactFolder } from './compact.ts';
import {
  appendOnlyFiles,
  checksumDir,
  checksumFiles,
  committedBytes,
  connectivityFor,
  DEFAULT_INDEX_PARAMS,
  manifestDefaultEf,
  type FileKbManifest,
  fileDigest,
  KB_FILES,
  KB_FORMAT_VERSION,
  metaFileNames,
  namedFiles,
  readFilesUnder,
  readManifest,
  REBUILD_HINT,
  vectorsFileName,
} from './format.ts';
import { type HnswIndex, hnswSearch, newHnswIndex, type RawMatches } from './hnsw.ts';
import { RERANK_POOL_FACTOR, rerankMatches } from './rerank.ts';
import { preadExact } from './io.ts';
import { abandonedLock, acquireWriteLock, processAlive, tryAcquireWriteLock } from './lock.ts';
import { filterMatches } from './search-filter.ts';
import { MetaStore, needsRecovery, recoverToManifest, VectorFile } from './storage.ts';
import { DEFAULT_KB_DTYPE, type EmbeddedPair, type EncoderFiles, type KbCreateOptions, type KbDtype, type KbManifest, type KbWriter, type Modality, type Neighbour, type PairMeta, type SearchOptions, type WritableKnowledgeBase, type WriteOptions } from './types.ts';
import { FolderWriter } from './writer.ts';
import { newNeutralManifest } from './manifest.ts';
import { checkSearchRequest } from './vector-check.ts';

/** One committed generation, opened: every file it names is held open, so a later commit deleting it cannot break this reader. */
interface Generation {
  manifest: FileKbManifest;
  fds: Map<string, number>;
  tombstones: Set<number>;
  meta: MetaStore;
  vectors: Record<Modality, VectorFile>;
  indexes: Map<string, HnswIndex>; // "modality:ef" -> viewed index
}

/** usearch opens files by path: /proc/self/fd/N opens the very file we hold, even once a later commit unlinked it. */
const FD_PATHS = process.platform === 'linux' && existsSync('/proc/self/fd');


/** A build of NAME writes into `.NAME.building-<pid>` beside it until its first commit renames it into place. */
const buildFolderPrefix = (name: string) => `.${name}.building-`;

/** Delete the temp folders of earlier creations of NAME whose process is gone (killed mid-build). */
function removeDeadBuilds(parent: string, name: string): void {
  const prefix = buildFolderPrefix(name);
  for (const entry of readdirSync(parent)) {
    if (!entry.startsWith(prefix)) continue;
    const pid = Number(entry.slice(prefix.length));
    if (!(Number.isInteger(pid) && pid > 0) || (pid !== process.pid && processAlive(pid))) continue;
    rmSync(join(parent, entry), { recursive: true, force: true });
  }
}

/**
 * A knowledge base in a folder (layout in format.ts / docs/kb-format.md). Opening holds every
 * file of the committed generation open and checks its size and digest; indexes are
 * memory-mapped (usearch `view`) on first search, vectors read by row, metadata by offset.
 * Writes go through `beginWrite` (one writer at a time, atomic commit of a new generation).
 */
export class FileKnowledgeBase implements WritableKnowledgeBase {
  private folder: string;
  /** Set while a created KB has not committed yet: the folder it is renamed to at its first commit. */
  private target?: string;
  /** A created KB may replace an existing one at `target` (KbCreateOptions.overwrite). */
  private replaceTarget = false;
  private gen!: Generation;

  private constructor(dir: string) {
    this.folder = dir;
  }

  /** Open the KB folder at its last committed state. */
  static async open(dir: string): Promise<FileKnowledgeBase> {
    const kb = new FileKnowledgeBase(resolve(dir));
    kb.tryRecover();
    kb.gen = kb.openLatest();
    return kb;
  }

  /** Create an empty KB at `dir` (which must not exist unless `overwrite`); it appears there at the first commit. */
  static async create(dir: string, options: KbCreateOptions): Promise<FileKnowledgeBase> {
    const out = resolve(dir);
    if (existsSync(out) && !options.overwrite) throw new RetformerError(`${out}: already exists; choose a new folder for the knowledge base (or delete it)`);
    if (options.dim !== options.encoder.dim) throw new RetformerError(`dim ${options.dim} differs from the encoder's dimension ${options.encoder.dim}`);
    const sum = checksumFiles(options.encoderFiles);
    if (sum !== options.encoderChecksum) throw new RetformerError(`encoder files have checksum ${sum}, not the ${options.encoderChecksum} given`);
    const parent = dirname(out);
    mkdirSync(parent, { recursive: true });
    removeDeadBuilds(parent, basename(out));
    const tmp = join(parent, `${buildFolderPrefix(basename(out))}${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    let writing = tmp;
    try {
      mkdirSync(join(tmp, KB_FILES.encoderDir), { recursive: true });
      for (const [name, bytes] of options.encoderFiles) {
        writing = join(tmp, KB_FILES.encoderDir, ...name.split('/'));
        mkdirSync(dirname(writing), { recursive: true });
        writeFileSync(writing, bytes);
      }
      writing = tmp;
      initKbFolder(tmp, options);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true }); // a full disk leaves no half-made KB behind
      throw toUserError(err, writing) ?? err;
    }
    const kb = new FileKnowledgeBase(tmp);
    kb.target = out;
    kb.replaceTarget = options.overwrite === true;
    kb.gen = kb.openLatest();
    return kb;
  }

  get dir(): string {
    return this.folder;
  }
  get spec(): string {
    return this.target ?? this.folder;
  }
  get manifest(): FileKbManifest {
    return this.gen.manifest;
  }
  get dim(): number {
    return this.gen.manifest.dim;
  }
  get dtype(): KbDtype {
    return this.gen.manifest.dtype;
  }
  get encoderId(): string {
    return this.gen.manifest.encoder.id;
  }
  get size(): number {
    return this.gen.manifest.count;
  }
  /** Committed rows including removed ones; row keys are 0..rows-1. */
  get rows(): number {
    return this.gen.manifest.folder.rows;
  }
  /** The ef of a search that names none: grows with the indexed rows (defaultSearchEf). */
  get defaultEf(): number {
    return manifestDefaultEf(this.gen.manifest);
  }
  get removedRows(): ReadonlySet<number> {
    return this.gen.tombstones;
  }

  /**
   * Cut a crashed writer's leftovers (its lock names a dead pid). Readers otherwise never take the
   * lock: they read only committed lengths and named files, and a writer cleans up under its lock.
   * Best effort: skipped while another process holds the lock or the folder is read-only.
   */
  private tryRecover(): void {
    let manifest: FileKbManifest;
    try {
      if (!abandonedLock(this.folder)) return;
      manifest = readManifest(this.folder);
      if (!needsRecovery(this.folder, manifest)) return;
    } catch (err) {
      if (err instanceof RetformerError) return; // reported by the open itself
      throw err;
    }
    let release: (() => void) | undefined;
    try {
      release = tryAcquireWriteLock(this.folder);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return;
      throw err;
    }
    if (!release) return;
    try {
      recoverToManifest(this.folder, readManifest(this.folder));
    } finally {
      release();
    }
  }

  /**
   * Open the newest committed generation. A writer may replace the manifest and delete files of
   * older generations between our reading the manifest and opening its files: then the manifest
   * is read again (a missing file with an unchanged manifest is damage, reported as such).
   */
  private openLatest(previous?: Generation): Generation {
    for (let attempt = 0; ; attempt++) {
      const manifest = readManifest(this.folder);
      try {
        return this.openGeneration(manifest, previous);
      } catch (err) {
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        if (missing && attempt < 20 && readManifest(this.folder).generation !== manifest.generation) continue;
        if (missing) throw new RetformerError(`${(err as NodeJS.ErrnoException).path ?? this.folder}: missing, but ${KB_FILES.manifest} names it; ${REBUILD_HINT}`);
        throw err;
      }
    }
  }

  private openGeneration(m: FileKbManifest, previous?: Generation): Generation {
    const fds = new Map<string, number>();
    try {
      for (const name of namedFiles(m)) fds.set(name, openSync(join(this.folder, name), 'r'));
      this.checkFiles(m, fds);
      const fd = (name: string) => fds.get(name) as number;
      const f = m.folder.files;
      const tombstones = new Set<number>();
      if (f.tombstones) {
        const buf = Buffer.alloc(fstatSync(fd(f.tombstones)).size);
        preadExact(fd(f.tombstones), buf, 0, join(this.folder, f.tombstones));
        for (const r of JSON.parse(buf.toString('utf8')) as number[]) tombstones.add(r);
      }
      const path = (name: string) => join(this.folder, name);
      return {
        manifest: m,
        fds,
        tombstones,
        meta: new MetaStore(fd(f.meta), path(f.meta), fd(f.metaIndex), path(f.metaIndex), m.folder.rows, m.folder.metaBytes, undefined, previous && sameMetaFiles(previous, m, fds) ? previous.meta : undefined),
        vectors: {
          image: new VectorFile(fd(f.imageVectors), path(f.imageVectors), m.dim, m.dtype),
          text: new VectorFile(fd(f.textVectors), path(f.textVectors), m.dim, m.dtype),
        },
        indexes: new Map(),
      };
    } catch (err) {
      for (const fd of fds.values()) closeSync(fd);
      throw err;
    }
  }

  /** Every named file: at least its committed size (exactly, for rewritten-whole files) and the digest recorded at commit. */
  private checkFiles(m: FileKbManifest, fds: Map<string, number>): void {
    const appendOnly = new Set(appendOnlyFiles(m));
    for (const [name, fd] of fds) {
      const path = join(this.folder, name);
      const size = fstatSync(fd).size;
      const check = m.folder.checks[name];
      const committed = appendOnly.has(name) ? committedBytes(m, name) : check?.bytes;
      if (committed !== undefined && (appendOnly.has(name) ? size < committed : size !== committed)) {
        throw new RetformerError(`${path}: ${size} bytes, but ${KB_FILES.manifest} committed ${committed} (truncated or damaged file); ${REBUILD_HINT}`);
      }
      if (check) {
        if (check.bytes !== (committed ?? check.bytes)) throw new RetformerError(`${path}: the manifest's size check disagrees with its row count; ${REBUILD_HINT}`);
        if (fileDigest(fd, check.bytes, path) !== check.digest) throw new RetformerError(`${path}: checksum differs from the one recorded at commit (damaged file); ${REBUILD_HINT}`);
      }
    }
  }

  private closeGeneration(g: Generation): void {
    g.indexes.clear();
    g.meta.close();
    for (const fd of g.fds.values()) closeSync(fd);
    g.fds.clear();
  }

  /** Pick up a generation committed by another process (cheap when nothing changed). */
  async refresh(): Promise<void> {
    if (readManifest(this.folder).generation === this.gen.manifest.generation) return;
    const old = this.gen;
    this.gen = this.openLatest(old);
    this.closeGeneration(old);
  }

  /** @deprecated use refresh() */
  async reload(): Promise<void> {
    return this.refresh();
  }

  private index(modality: Modality, ef: number): HnswIndex {
    const key = `${modality}:${ef}`;
    let index = this.gen.indexes.get(key);
    if (!index) {
      const m = this.gen.manifest;
      const name = modality === 'image' ? m.folder.files.imageIndex : m.folder.files.textIndex;
      index = newHnswIndex(m.dim, m.folder.index, m.dtype, ef);
      const file = join(this.folder, name);
      try {
        index.view(FD_PATHS ? `/proc/self/fd/${this.gen.fds.get(name)}` : file);
      } catch (err) {
        throw new RetformerError(`${file}: cannot open index: ${(err as Error).message}`);
      }
      this.gen.indexes.set(key, index);
    }
    return index;
  }

  async search(queries: Float32Array, options: SearchOptions): Promise<Neighbour[][]> {
    const n = checkSearchRequest(this, queries, options);
    const dim = this.dim;
    const { k } = options;
    const gen = this.gen; // one generation for the whole call, even if refresh() runs meanwhile
    const live = gen.manifest.count;
    if (live === 0) return Array.from({ length: n }, () => []);
    const index = this.index(options.modality ?? 'image', options.ef ?? manifestDefaultEf(gen.manifest));
    const indexed = gen.manifest.folder.rows;
    const tomb = gen.tombstones;
    let maxExcluded = 0;
    for (const s of options.excludeIds ?? []) maxExcluded = Math.max(maxExcluded, s?.size ?? 0);
    // over-fetch so that filtering tombstones and excluded ids still leaves k
    const margin = maxExcluded + (tomb.size > 0 ? Math.min(tomb.size, k) + 8 : 0);
    const fetch = Math.min(k + margin, indexed);
    const modality = options.modality ?? 'image';
    const rerank = gen.manifest.dtype === 'i8';
    const nearest = (qs: Float32Array, count: number): RawMatches => {
      if (!rerank) return hnswSearch(index, qs, dim, count);
      const pool = hnswSearch(index, qs, dim, Math.min(count * RERANK_POOL_FACTOR, indexed)); // keys [n, pool]
      return rerankMatches(pool, qs, dim, gen.vectors[modality], count);
    };
    const raw = nearest(queries, fetch); // keys [n, fetch]
    const meta = (row: number) => gen.meta.get(row);
    const results = filterMatches(raw, n, k, tomb, options.excludeIds, meta);
    // a query that lost too many candidates to filtering is searched again, wider
    for (let q = 0; q < n; q++) {
      let wider = fetch;
      while (results[q].length < Math.min(k, live) && wider < indexed) {
        wider = Math.min(wider * 2, indexed);
        const one = nearest(queries.subarray(q * dim, (q + 1) * dim), wider);
        results[q] = filterMatches(one, 1, k, tomb, options.excludeIds ? [options.excludeIds[q]] : undefined, meta)[0];
      }
    }
    return results;
  }

  private checkRows(rows: readonly number[]): void {
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.rows) throw new RetformerError(`${this.spec}: row ${r} out of range (0..${this.rows - 1})`);
    }
  }

  async vectors(rows: readonly number[], modality: Modality): Promise<Float32Array> {
    this.checkRows(rows);
    return this.gen.vectors[modality].read(rows);
  }

  async halfVectors(rows: readonly number[], modality: Modality): Promise<Uint16Array | undefined> {
    this.checkRows(rows);
    const store = this.gen.vectors[modality];
    if (store.dtype !== 'f16') return undefined;
    const bytes = store.readRaw(rows); // a fresh buffer: 2-byte aligned
    return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  }

  async meta(rows: readonly number[]): Promise<PairMeta[]> {
    this.checkRows(rows);
    return rows.map((r) => this.gen.meta.get(r));
  }

  /** Rows of every live pair, ascending. */
  liveRows(): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.rows; r++) if (!this.gen.tombstones.has(r)) out.push(r);
    return out;
  }

  /** id -> row of every live pair (scans the metadata). */
  liveIds(): Map<string, number> {
    const ids = new Map<string, number>();
    for (const r of this.liveRows()) ids.set(this.gen.meta.get(r).id, r);
    return ids;
  }

  /** Under the lock: cut any crashed writer's leftovers and move to the newest committed generation. */
  private syncLocked(): void {
    const m = readManifest(this.folder);
    recoverToManifest(this.folder, m);
    if (m.generation !== this.gen.manifest.generation) {
      const old = this.gen;
      this.gen = this.openLatest(old);
      this.closeGeneration(old);
    }
  }

  /** Start a write transaction (one at a time per KB; readers keep the committed generation until commit). */
  async beginWrite(options: WriteOptions = {}): Promise<KbWriter> {
    const release = acquireWriteLock(this.folder);
    try {
      this.syncLocked();
      const base = this.gen.manifest;
      const dir = this.folder;
      return new FolderWriter(
        {
          dir,
          base,
          tombstones: this.gen.tombstones,
          liveIds: this.liveIds(),
          loadIndex: (modality) => {
            const index = newHnswIndex(base.dim, base.folder.index, base.dtype);
            const file = modality === 'image' ? base.folder.files.imageIndex : base.folder.files.textIndex;
            if (file !== '') index.load(join(dir, file)); // '' = a new, empty KB
            return index;
          },
          finish: async (next) => {
            if (!next) {
              try {
                recoverToManifest(dir, readManifest(dir)); // an abort cuts what it appended
              } catch {
                // left for the next writer
              }
            }
            release(); // before a created KB's folder is renamed into place (the lock file moves with it otherwise)
            if (next && this.target) this.publish();
            if (next) await this.refresh();
          },
        },
        options,
      );
    } catch (err) {
      release();
      throw err;
    }
  }

  /** First commit of a created KB: rename its temp folder into place. */
  private publish(): void {
    const target = this.target as string;
    if (existsSync(target) && !this.replaceTarget) throw new RetformerError(`${target}: appeared while building; not overwriting it`);
    if (existsSync(target)) {
      const old = join(dirname(target), `.${basename(target)}.replaced-${process.pid}`);
      rmSync(old, { recursive: true, force: true });
      renameSync(target, old);
      renameSync(this.folder, target);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(this.folder, target);
    fsyncPath(dirname(target));
    this.folder = target;
    this.target = undefined;
  }

  /** Append pairs as one committed generation. */
  async add(pairs: readonly EmbeddedPair[], options: WriteOptions = {}): Promise<FileKbManifest> {
    const w = await this.beginWrite(options);
    try {
      await w.append(pairs);
    } catch (err) {
      await w.abort();
      throw err;
    }
    return (await w.commit()) as FileKbManifest;
  }

  /** Remove pairs by id as one committed generation (tombstones). Unknown ids are refused; nothing changes then. */
  async remove(ids: readonly string[]): Promise<FileKbManifest> {
    const w = await this.beginWrite();
    try {
      await w.remove(ids);
    } catch (err) {
      await w.abort();
      throw err;
    }
    return (await w.commit()) as FileKbManifest;
  }

  /**
   * Rewrite vectors, metadata and indexes without removed pairs, as one new generation (atomic;
   * see compact.ts). Row keys are renumbered 0..count-1 in their old order; the generation bump
   * tells row caches (a run's retrieval cache keys on it) that rows changed. `connectivity`
   * rebuilds both HNSW graphs with that M (e.g. 32 for a KB that grew past 250k pairs by adds).
   */
  async compact(options: { indexThreads?: number; connectivity?: number } = {}): Promise<KbManifest> {
    const connectivity = options.connectivity === undefined ? undefined : connectivityFor({ connectivity: options.connectivity }); // checked: 2..128
    const release = acquireWriteLock(this.folder);
    try {
      this.syncLocked();
      const g = this.gen;
      await compactFolder(this.folder, g.manifest, { tombstones: g.tombstones, meta: g.meta, vectors: g.vectors }, options.indexThreads ?? 1, connectivity);
    } finally {
      release();
    }
    await this.refresh();
    return this.manifest;
  }

  /** Reopen the frozen encoder the KB was built with, refusing encoder files that changed since. */
  async openEncoder(): Promise<Encoder> {
    const m = this.gen.manifest;
    const encoderDir = join(this.folder, KB_FILES.encoderDir);
    const sum = checksumDir(encoderDir);
    if (sum !== m.encoderChecksum) throw new RetformerError(`${encoderDir}: encoder files changed since the KB was built (checksum ${sum} != ${m.encoderChecksum})`);
    const encoder = await openEncoderFromDir(m.encoder, encoderDir);
    if (encoder.id !== m.encoder.id) {
      await encoder.close();
      throw new RetformerError(`${this.spec}: reopened encoder has id "${encoder.id}" but the manifest says "${m.encoder.id}"`);
    }
    return encoder;
  }

  async encoderFiles(): Promise<EncoderFiles> {
    return readFilesUnder(join(this.folder, KB_FILES.encoderDir));
  }

  async close(): Promise<void> {
    this.closeGeneration(this.gen);
    if (this.target) rmSync(this.folder, { recursive: true, force: true }); // created, never committed
  }
}

/** Make `dir` an empty KB (generation 0, no rows, no index files yet); pairs then arrive through a writer. */
function initKbFolder(dir: string, options: KbCreateOptions): FileKbManifest {
  const dtype = options.dtype ?? DEFAULT_KB_DTYPE;
  const files = { imageVectors: vectorsFileName('image', dtype), textVectors: vectorsFileName('text', dtype), ...metaFileNames() };
  for (const f of Object.values(files)) closeSync(openSync(join(dir, f), 'w'));
  const manifest: FileKbManifest = {
    ...newNeutralManifest(options, dtype, KB_FORMAT_VERSION),
    folder: {
      rows: 0,
      removed: 0,
      metaBytes: 0,
      index: { ...DEFAULT_INDEX_PARAMS, connectivity: connectivityFor(options) },
      files: { ...files, imageIndex: '', textIndex: '', tombstones: null },
      checks: {},
      previous: [],
    },
  };
  writeJsonAtomic(join(dir, KB_FILES.manifest), manifest);
  return manifest;
}

/**
 * Whether generation `next` (its files open in `fds`) appends to the metadata files of `previous`:
 * the same KB, a later generation of no fewer rows, and the same two files (names and inodes), so
 * the previous store's committed bytes are a prefix of the new ones (compaction and a KB rebuilt
 * in the folder write other files).
 */
function sameMetaFiles(previous: Generation, next: FileKbManifest, fds: ReadonlyMap<string, number>): boolean {
  const before = previous.manifest;
  if (before.kbId !== next.kbId || before.generation >= next.generation || before.folder.rows > next.folder.rows) return false;
  if (before.folder.files.meta !== next.folder.files.meta || before.folder.files.metaIndex !== next.folder.files.metaIndex) return false;
  return [next.folder.files.meta, next.folder.files.metaIndex].every((name) => {
    const was = previous.fds.get(name);
    const now = fds.get(name);
    if (was === undefined || now === undefined) return false;
    const a = fstatSync(was);
    const b = fstatSync(now);
    return a.dev === b.dev && a.ino === b.ino;
  });
}
