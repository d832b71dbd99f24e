import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { RetformerError } from '../util/errors.ts';
import { preadExact } from './io.ts';
import type { EncoderFiles, KbDtype, KbManifest } from './types.ts';

/**
 * On-disk layout of a file KB (format 2; see docs/kb-format.md). The manifest's neutral part is
 * what every backend has (KbManifest); the `folder` section is this backend's own state.
 *   manifest.json                  the committed state (written atomically; the only source of truth)
 *   image[-G].<dtype>, text[-G].<dtype>   row-major vectors [rows, dim] at the KB's dtype, append-only
 *   meta[-G].jsonl                 one JSON object per row ({id,text,source,label?}), append-only
 *   meta[-G].idx                   little-endian u64 end offset of each row's line: [rows]
 *   image-G.usearch, text-G.usearch  HNSW per modality (keys = row numbers), G = generation that wrote it
 *   tombstones-G.json              sorted removed row numbers (absent when nothing was removed)
 *   encoder/                       what the encoder saved to reopen itself
 *   lock                           pid of the process writing the KB
 * Data files without -G were written at creation; compaction writes new ones named by its generation.
 */
export const KB_FORMAT_VERSION = 2;

/** The end of every "damaged file" message. */
export const REBUILD_HINT = 'the knowledge base is damaged (an interrupted copy?): restore it or rebuild it with retformer kb build';

export const KB_FILES = {
  manifest: 'manifest.json',
  encoderDir: 'encoder',
  lock: 'lock',
} as const;

/**
 * Index parameters of a new KB: cosine HNSW, M (connectivity) 16. expansionSearch is the smallest
 * default ef (defaultSearchEf grows it with the rows). KBs keep the parameters they were created
 * with (the manifest records them).
 */
export const DEFAULT_INDEX_PARAMS = { metric: 'cos', connectivity: 16, expansionAdd: 128, expansionSearch: 96 } as const;

/** A KB created for more rows than this gets the denser graph, LARGE_KB_CONNECTIVITY. */
export const LARGE_KB_ROWS = 250_000;
/**
 * M for large KBs: at 1M clustered pairs an M = 16 graph needed ef 256 for recall@32 0.99 (a greedy
 * descent through its sparse upper layers ends in another cluster for 9 of 200 queries at ef 128),
 * M = 32 reaches 0.993 at ef 128 for 11-16% less search time and a lower p99, at ~1.5x the build
 * time and +11% index bytes (docs/kb-format.md, "Search breadth"). Up to 250k rows M = 16 already
 * reaches 0.998 at ef 96, so small KBs keep the cheaper graph.
 */
export const LARGE_KB_CONNECTIVITY = 32;

/** The M a new KB is built with: explicit, else by the rows it is created for. */
export function connectivityFor(options: { expectedRows?: number; connectivity?: number }): number {
  if (options.connectivity !== undefined) {
    if (!Number.isInteger(options.connectivity) || options.connectivity < 2 || options.connectivity > 128) {
      throw new RetformerError(`HNSW connectivity (M) must be an integer in 2..128, got ${options.connectivity}`);
    }
    return options.connectivity;
  }
  return (options.expectedRows ?? 0) > LARGE_KB_ROWS ? LARGE_KB_CONNECTIVITY : DEFAULT_INDEX_PARAMS.connectivity;
}

/**
 * The default search breadth (ef) by the number of indexed rows, for KBs built with M = 16 (every
 * KB created for 250k rows or fewer, and KBs made before M = 32 existed): an HNSW graph of more rows needs a wider search for
 * the same recall. Each step is the smallest measured ef that kept recall@32 at or above 0.97 on
 * clustered 512-d data (bench:scale; table in docs/kb-format.md).
 */
export const DEFAULT_EF_STEPS: ReadonlyArray<{ upToRows: number; ef: number }> = [
  { upToRows: 250_000, ef: 96 },
  { upToRows: 500_000, ef: 192 },
  { upToRows: 1_000_000, ef: 256 },
  { upToRows: Number.POSITIVE_INFINITY, ef: 384 },
];

/**
 * The same for KBs built with M >= 32. At 1M rows ef 128 measured recall@32 0.9927 (ef 96: 0.9889,
 * ef 160: 0.9988); a graph of fewer rows reaches at least that at the same ef, so ef 128 also
 * covers 250k-1M; up to 250k the M = 16 step (96, recall 0.998 at 200k) holds, a denser graph
 * only raising recall. Beyond 1M: 1.5x, as the M = 16 table grows (extrapolated, not measured).
 */
export const DEFAULT_EF_STEPS_M32: ReadonlyArray<{ upToRows: number; ef: number }> = [
  { upToRows: 250_000, ef: 96 },
  { upToRows: 1_000_000, ef: 128 },
  { upToRows: Number.POSITIVE_INFINITY, ef: 192 },
];

/**
 * An i8 index above LARGE_KB_ROWS searches this many times wider by default: its candidates are
 * re-ranked with the KB's finer i8 rows, but what the coarse index never returns cannot be
 * re-ranked. At 1M pairs (M = 32) recall@32 was 0.9720 at ef 128 and 0.9834 at ef 256, against
 * f16's 0.9981 / 0.9995 (docs/interop.md, "i8 at a million pairs"); up to 20k rows ef 96 kept 0.9923.
 */
export const I8_LARGE_EF_FACTOR = 2;

/**
 * The ef a search uses when the caller names none: the step for `indexedRows` (rows in the
 * index, removed ones included) in the table of the graph's connectivity (M < 32: the M = 16
 * table, also for a caller that does not say), doubled for a large i8 KB, never below the ef the
 * KB's manifest records.
 */
export function defaultSearchEf(indexedRows: number, manifestEf: number = DEFAULT_INDEX_PARAMS.expansionSearch, connectivity = 16, dtype?: KbDtype): number {
  const steps = connectivity >= 32 ? DEFAULT_EF_STEPS_M32 : DEFAULT_EF_STEPS;
  const step = steps.find((s) => indexedRows <= s.upToRows) ?? steps[steps.length - 1];
  const widen = dtype === 'i8' && indexedRows > LARGE_KB_ROWS ? I8_LARGE_EF_FACTOR : 1;
  return Math.max(manifestEf, step.ef * widen);
}

/** The default ef of a folder KB's committed state (defaultSearchEf with its rows, index parameters and dtype). */
export function manifestDefaultEf(m: Pick<FileKbManifest, 'dtype' | 'folder'>): number {
  const { rows, index } = m.folder;
  return defaultSearchEf(rows, index.expansionSearch, index.connectivity, m.dtype);
}

/** Bytes one vector component takes at each dtype (vectors are stored at the KB's dtype). */
export const DTYPE_BYTES: Record<KbDtype, number> = { f32: 4, f16: 2, i8: 1 };

const indexParamsSchema = z.object({
  metric: z.literal('cos'),
  connectivity: z.number().int().positive(),
  expansionAdd: z.number().int().positive(),
  expansionSearch: z.number().int().positive(),
  /** 'locality': the index files' slots are in graph order (src/kb/hnsw-layout.ts); absent: usearch's insertion order (KBs written before it). */
  layout: z.literal('locality').optional(),
});

const fileCheckSchema = z.object({ bytes: z.number().int().nonnegative(), digest: z.string() });
export type FileCheck = z.infer<typeof fileCheckSchema>;

const folderSchema = z.object({
  /** Committed rows in the vector and metadata files, removed rows included (row keys are never reused between compactions). */
  rows: z.number().int().nonnegative(),
  removed: z.number().int().nonnegative(),
  /** Committed length of the metadata file in bytes. */
  metaBytes: z.number().int().nonnegative(),
  index: indexParamsSchema,
  files: z.object({
    imageVectors: z.string(),
    textVectors: z.string(),
    meta: z.string(),
    metaIndex: z.string(),
    imageIndex: z.string(),
    textIndex: z.string(),
    tombstones: z.string().nullable(),
  }),
  /** Committed size and digest of each named file (for append-only files: of the committed prefix). */
  checks: z.record(z.string(), fileCheckSchema),
  /** Files of the previous generation, kept so that a reader that read the previous manifest can still open them. */
  previous: z.array(z.string()),
});
export type FolderState = z.infer<typeof folderSchema>;

const neutralShape = {
  generation: z.number().int().nonnegative(),
  encoder: z.object({ kind: z.string(), id: z.string(), dim: z.number().int().positive() }).passthrough(),
  encoderChecksum: z.string(),
  dim: z.number().int().positive(),
  count: z.number().int().nonnegative(),
  labels: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
};

export const kbManifestSchema = z
  .object({
    formatVersion: z.literal(KB_FORMAT_VERSION),
    /** Made at creation; with `generation` it identifies the KB's content (a rebuild gets a new id). */
    kbId: z.string(),
    dtype: z.enum(['f32', 'f16', 'i8']),
    ...neutralShape,
    folder: folderSchema,
  })
  .passthrough();

/** Format 1 (before issue 14): index parameters and files at the top level, f32 only, fixed data file names. */
const v1Schema = z
  .object({
    formatVersion: z.literal(1),
    dtype: z.literal('f32'),
    ...neutralShape,
    rows: z.number().int().nonnegative(),
    removed: z.number().int().nonnegative(),
    metaBytes: z.number().int().nonnegative(),
    index: indexParamsSchema,
    files: z.object({ imageIndex: z.string(), textIndex: z.string(), tombstones: z.string().nullable() }),
  })
  .passthrough();

export type FileKbManifest = z.infer<typeof kbManifestSchema> & KbManifest;

/** Every file of the committed generation the manifest names (relative to the KB folder). */
export function namedFiles(m: FileKbManifest): string[] {
  const f = m.folder.files;
  return [f.imageVectors, f.textVectors, f.meta, f.metaIndex, f.imageIndex, f.textIndex, f.tombstones].filter((n): n is string => typeof n === 'string' && n !== '');
}

/** The append-only files (a writer appends past their committed length). */
export function appendOnlyFiles(m: FileKbManifest): string[] {
  const f = m.folder.files;
  return [f.imageVectors, f.textVectors, f.meta, f.metaIndex];
}

/** Committed length of an append-only file. */
export function committedBytes(m: FileKbManifest, name: string): number {
  const f = m.folder.files;
  const rowBytes = m.dim * DTYPE_BYTES[m.dtype];
  if (name === f.imageVectors || name === f.textVectors) return m.folder.rows * rowBytes;
  if (name === f.meta) return m.folder.metaBytes;
  if (name === f.metaIndex) return m.folder.rows * 8;
  throw new Error(`${name} is not an append-only file of the KB`);
}

const pad = (g: number) => String(g).padStart(6, '0');

export function indexFileName(modality: 'image' | 'text', generation: number): string {
  return `${modality}-${pad(generation)}.usearch`;
}

export function vectorsFileName(modality: 'image' | 'text', dtype: KbDtype, generation?: number): string {
  return generation === undefined ? `${modality}.${dtype}` : `${modality}-${pad(generation)}.${dtype}`;
}

export function metaFileNames(generation?: number): { meta: string; metaIndex: string } {
  const g = generation === undefined ? '' : `-${pad(generation)}`;
  return { meta: `meta${g}.jsonl`, metaIndex: `meta${g}.idx` };
}

export function tombstoneFileName(generation: number): string {
  return `tombstones-${pad(generation)}.json`;
}

/** Files a KB's generations write (data, index, tombstone, temp): what recovery may delete when no manifest names them. */
export function isGenerationFile(name: string): boolean {
  return (
    /^(image|text)(-\d{6})?\.(usearch|f32|f16|i8)$/.test(name) ||
    /^meta(-\d{6})?\.(jsonl|idx)$/.test(name) ||
    /^tombstones-\d{6}\.json$/.test(name) ||
    /\.tmp-\d+-\d+$/.test(name)
  );
}

/** Read the manifest: format 2 as is, format 1 converted in memory (the next commit writes format 2). */
export function readManifest(dir: string): FileKbManifest {
  const file = join(dir, KB_FILES.manifest);
  if (!existsSync(dir)) throw new RetformerError(`${dir}: knowledge base folder not found`);
  if (!existsSync(file)) throw new RetformerError(`${dir}: not a knowledge base (no ${KB_FILES.manifest})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RetformerError(`${file}: unreadable manifest: ${(err as Error).message}`);
  }
  const version = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (version === 1) return fromV1(parseWith(v1Schema, raw, file));
  if (typeof version === 'number' && version > KB_FORMAT_VERSION) throw new RetformerError(`${file}: format ${version} is newer than this retformer reads (${KB_FORMAT_VERSION}); upgrade retformer`);
  return parseWith(kbManifestSchema, raw, file) as FileKbManifest;
}

function parseWith<T extends z.ZodTypeAny>(schema: T, raw: unknown, file: string): z.infer<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`${file}: invalid manifest: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

function fromV1(v1: z.infer<typeof v1Schema>): FileKbManifest {
  const { rows, removed, metaBytes, index, files, formatVersion: _v, ...rest } = v1;
  return {
    ...rest,
    formatVersion: KB_FORMAT_VERSION,
    kbId: `v1-${createHash('sha256').update(`${v1.createdAt}\0${v1.encoderChecksum}`).digest('hex').slice(0, 16)}`,
    dtype: 'f32',
    folder: {
      rows,
      removed,
      metaBytes,
      index,
      files: { imageVectors: 'image.f32', textVectors: 'text.f32', meta: 'meta.jsonl', metaIndex: 'meta.idx', ...files },
      checks: {},
      previous: [],
    },
  } as FileKbManifest;
}

/** Files up to this size are digested whole; larger ones by sampled blocks (see `fileDigest`). */
const WHOLE_DIGEST_BYTES = 8 * 1024 * 1024;
const SAMPLE_BLOCK = 64 * 1024;
const SAMPLE_BLOCKS = 64;

/**
 * Digest of the first `length` bytes of an open file: sha256 of all of it up to 8 MiB; above,
 * of the length, the first and last MiB and 64 evenly spaced 64 KiB blocks (about 6 MiB read
 * whatever the size, so opening a large KB stays cheap). Catches truncation, a damaged header
 * and most damage of a copy; a single flipped byte in the middle of a file over 8 MiB may pass.
 */
export function fileDigest(fd: number, length: number, what: string): string {
  const hash = createHash('sha256');
  hash.update(`${length}\0`);
  const take = (start: number, bytes: number) => {
    const n = Math.max(0, Math.min(bytes, length - start));
    if (n === 0) return;
    const buf = Buffer.allocUnsafe(n);
    preadExact(fd, buf, start, what);
    hash.update(buf);
  };
  if (length <= WHOLE_DIGEST_BYTES) {
    for (let s = 0; s < length; s += WHOLE_DIGEST_BYTES) take(s, WHOLE_DIGEST_BYTES);
  } else {
    const edge = 1024 * 1024;
    take(0, edge);
    const span = length - 2 * edge - SAMPLE_BLOCK;
    for (let i = 0; i < SAMPLE_BLOCKS; i++) take(edge + Math.floor((span * i) / (SAMPLE_BLOCKS - 1)), SAMPLE_BLOCK);
    take(length - edge, edge);
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Digest of a file's first `length` bytes by path. */
export function fileDigestAt(path: string, length: number): string {
  const fd = openSync(path, 'r');
  try {
    return fileDigest(fd, length, path);
  } finally {
    closeSync(fd);
  }
}

/** Compare segment-wise, so the order is that of a depth-first walk with sorted names (checksumDir's order). */
function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return x.length - y.length;
}

/** sha256 over relative paths and contents (sorted as a depth-first walk); equals checksumDir of the folder holding them. */
export function checksumFiles(files: EncoderFiles): string {
  const hash = createHash('sha256');
  for (const name of [...files.keys()].sort(comparePaths)) {
    hash.update(name);
    hash.update('\0');
    hash.update(files.get(name) as Uint8Array);
    hash.update('\0');
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Every file under dir as relative path ('/'-separated) -> bytes. */
export function readFilesUnder(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p).split(/[\\/]/).join('/'), readFileSync(p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** sha256 over the relative paths and contents of every file under dir (sorted); stable across machines. */
export function checksumDir(dir: string): string {
  return checksumFiles(readFilesUnder(dir));
}
