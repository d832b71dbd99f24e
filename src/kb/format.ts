import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { RetformerError } from '../util/errors.ts';
import type { KbManifest } from './types.ts';

/**
 * On-disk layout of a file KB (see docs/kb-format.md):
 *   manifest.json            the committed state (written atomically; the only source of truth)
 *   image.f32, text.f32      row-major float32 [rows, dim], append-only; bytes past rows*dim*4 are uncommitted
 *   meta.jsonl               one JSON object per row ({id,text,source,label?}), append-only
 *   meta.idx                 little-endian u64 end offset of each row's line in meta.jsonl: [rows]
 *   image-G.usearch          HNSW over image vectors (keys = row numbers), G = generation that wrote it
 *   text-G.usearch           HNSW over text vectors
 *   tombstones-G.json        sorted removed row numbers (absent when nothing was removed)
 *   encoder/                 what the encoder saved to reopen itself
 *   lock                     pid of a process writing the KB (add/remove)
 */
export const KB_FORMAT_VERSION = 1;

export const KB_FILES = {
  manifest: 'manifest.json',
  imageVectors: 'image.f32',
  textVectors: 'text.f32',
  meta: 'meta.jsonl',
  metaIndex: 'meta.idx',
  encoderDir: 'encoder',
  lock: 'lock',
} as const;

/** Index parameters: f32 cosine HNSW. expansionSearch is the default ef (measured by bench/kb.ts to reach recall@32 >= 0.98). */
export const DEFAULT_INDEX_PARAMS = { metric: 'cos', connectivity: 16, expansionAdd: 128, expansionSearch: 96 } as const;

export const kbManifestSchema = z
  .object({
    formatVersion: z.literal(KB_FORMAT_VERSION),
    generation: z.number().int().nonnegative(),
    encoder: z.object({ kind: z.string(), id: z.string(), dim: z.number().int().positive() }).passthrough(),
    encoderChecksum: z.string(),
    dim: z.number().int().positive(),
    dtype: z.literal('f32'),
    count: z.number().int().nonnegative(),
    /** Committed rows in the vector and metadata files, removed rows included (row keys are never reused). */
    rows: z.number().int().nonnegative(),
    removed: z.number().int().nonnegative(),
    /** Committed length of meta.jsonl in bytes. */
    metaBytes: z.number().int().nonnegative(),
    labels: z.array(z.string()),
    index: z.object({
      metric: z.literal('cos'),
      connectivity: z.number().int().positive(),
      expansionAdd: z.number().int().positive(),
      expansionSearch: z.number().int().positive(),
    }),
    files: z.object({
      imageIndex: z.string(),
      textIndex: z.string(),
      tombstones: z.string().nullable(),
    }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .passthrough();

export type FileKbManifest = z.infer<typeof kbManifestSchema> & KbManifest;

export function indexFileName(modality: 'image' | 'text', generation: number): string {
  return `${modality}-${String(generation).padStart(6, '0')}.usearch`;
}

export function tombstoneFileName(generation: number): string {
  return `tombstones-${String(generation).padStart(6, '0')}.json`;
}

/** Files a generation may leave behind that the manifest no longer (or not yet) names. */
export function isGenerationFile(name: string): boolean {
  return /^(image|text)-\d{6}\.usearch$/.test(name) || /^tombstones-\d{6}\.json$/.test(name) || /\.tmp-\d+-\d+$/.test(name);
}

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
  const parsed = kbManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RetformerError(`${file}: invalid manifest: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data as FileKbManifest;
}

/** sha256 over the relative paths and contents of every file under dir (sorted); stable across machines. */
export function checksumDir(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string): string[] =>
    readdirSync(d)
      .sort()
      .flatMap((name) => {
        const p = join(d, name);
        return statSync(p).isDirectory() ? walk(p) : [p];
      });
  if (existsSync(dir)) {
    for (const file of walk(dir)) {
      hash.update(relative(dir, file));
      hash.update('\0');
      hash.update(readFileSync(file));
      hash.update('\0');
    }
  }
  return `sha256:${hash.digest('hex')}`;
}
