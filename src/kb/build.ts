import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEncoder, DEFAULT_ENCODER_SPEC, parseEncoderSpec } from '../encoders/registry.ts';
import type { Encoder } from '../encoders/types.ts';
import { inputError, RetformerError } from '../util/errors.ts';
import { type Progress, startProgress } from '../util/progress.ts';
import { checksumFiles, readFilesUnder } from './format.ts';
import { embedPairRows, type PairRow, readPairsCsv } from './pairs.ts';
import { createKnowledgeBase, kbBackendFor, openKnowledgeBaseSpec } from './registry.ts';
import type { EncoderFiles, KbDtype, KbManifest, KbWriter, WritableKnowledgeBase, WriteOptions, WriteProgress } from './types.ts';

export interface BuildOptions {
  pairsCsv: string;
  /** KB spec: a folder path (must not exist) or a backend URL. */
  out: string;
  /** Encoder spec (registry syntax); default "embedded". */
  encoderSpec?: string;
  /** Reuse the frozen encoder of this KB (spec) instead of making one, so KBs share one space. */
  encoderOf?: string;
  seed?: number;
  /** Pairs embedded per batch (bounds memory). */
  batchSize?: number;
  /** HNSW insertion threads: 1 (default) reproducible, 0 all cores. */
  indexThreads?: number;
  /** Storage precision of vectors and indexes (default DEFAULT_KB_DTYPE: f16). */
  dtype?: KbDtype;
  /** HNSW M (default: 16, or 32 for more than 250k rows; connectivityFor). */
  connectivity?: number;
  quiet?: boolean;
}

export const DEFAULT_BATCH_SIZE = 256;

/** What an encoder saves to reopen itself, as files (so that any backend can store them). */
export async function encoderState(encoder: Encoder): Promise<{ descriptor: Awaited<ReturnType<Encoder['save']>>; files: EncoderFiles; checksum: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'retformer-encoder-'));
  try {
    const descriptor = await encoder.save(dir);
    if (descriptor.dim !== encoder.dim || descriptor.id !== encoder.id) throw new Error(`encoder descriptor (${descriptor.id}, ${descriptor.dim}) disagrees with the encoder (${encoder.id}, ${encoder.dim})`);
    const files = readFilesUnder(dir);
    return { descriptor, files, checksum: checksumFiles(files) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Progress bars for a commit's index build, one per phase ("indexing image", "laying out image",
 * then the same for text); `also` is told every step too. Pass `onProgress` to beginWrite, call `stop` after commit.
 */
export function commitProgress(quiet?: boolean, also?: (p: WriteProgress) => void): { onProgress: (p: WriteProgress) => void; stop(): void } {
  let bar: Progress | undefined;
  let phase: string | undefined;
  return {
    onProgress: (p) => {
      also?.(p);
      if (p.phase !== phase) {
        bar?.stop();
        phase = p.phase;
        bar = startProgress(p.phase, p.total, { unit: 'pair', quiet });
      }
      bar?.update(p.done);
    },
    stop: () => bar?.stop(),
  };
}

/** Embed pair rows batch by batch and append them through the writer (errors name CSV rows). */
async function appendRows(writer: KbWriter, encoder: Encoder, rows: readonly PairRow[], csv: string, what: string, batchSize: number, quiet?: boolean): Promise<void> {
  const progress = startProgress(what, rows.length, { unit: 'pair', quiet });
  try {
    for await (const batch of embedPairRows(encoder, rows, csv, { batchSize, progress })) {
      await writer.append(batch.pairs, (i) => `${csv}:${batch.rows[i].row}`);
    }
  } finally {
    progress.stop();
  }
}

/**
 * The engine behind `kb build`: embed every (image, text) pair with a frozen encoder and write
 * them through a new KB's writer as its first generation. Nothing is visible at `out` until the
 * commit (the folder backend builds in a temp folder beside it), so a failure leaves no KB.
 */
export async function buildKnowledgeBase(opts: BuildOptions): Promise<KbManifest> {
  const backend = await kbBackendFor(opts.out);
  if (await backend.exists(opts.out)) throw new RetformerError(`${opts.out}: already exists; choose a new folder for the knowledge base (or delete it)`);
  const rows = readPairsCsv(opts.pairsCsv);
  let encoder: Encoder | undefined;
  let kb: WritableKnowledgeBase | undefined;
  let writer: KbWriter | undefined;
  const indexing = commitProgress(opts.quiet);
  try {
    encoder =
      opts.encoderOf !== undefined
        ? await openKbEncoder(opts.encoderOf)
        : await createEncoder(parseEncoderSpec(opts.encoderSpec ?? DEFAULT_ENCODER_SPEC), {
            fitPairs: rows.map((r) => ({ image: r.path, text: r.text })),
            seed: opts.seed ?? 0,
            quiet: opts.quiet,
          });
    const state = await encoderState(encoder);
    kb = await createKnowledgeBase(opts.out, { encoder: state.descriptor, encoderChecksum: state.checksum, encoderFiles: state.files, dim: encoder.dim, dtype: opts.dtype, expectedRows: rows.length, connectivity: opts.connectivity });
    writer = await kb.beginWrite({ allowNewLabels: true, indexThreads: opts.indexThreads, onProgress: indexing.onProgress });
    await appendRows(writer, encoder, rows, opts.pairsCsv, 'kb build', opts.batchSize ?? DEFAULT_BATCH_SIZE, opts.quiet);
    const w = writer;
    writer = undefined;
    return await w.commit();
  } catch (err) {
    await writer?.abort();
    throw err;
  } finally {
    indexing.stop();
    await kb?.close();
    await encoder?.close();
  }
}

/** Reopen the encoder a KB was built with (through the KB: wherever its backend stores it). */
export async function openKbEncoder(spec: string): Promise<Encoder> {
  const kb = await openKnowledgeBaseSpec(spec);
  try {
    return await kb.openEncoder();
  } finally {
    await kb.close();
  }
}

export interface AddOptions extends WriteOptions {
  batchSize?: number;
  quiet?: boolean;
}

/**
 * The engine behind `kb add`: take the write lock and check the CSV's labels first, then embed
 * the pairs with the KB's own encoder and append them as one generation. Returns the new
 * manifest and the number of pairs this call added.
 */
export async function addPairsCsv(spec: string, pairsCsv: string, opts: AddOptions = {}): Promise<{ manifest: KbManifest; added: number }> {
  const rows = readPairsCsv(pairsCsv);
  const kb = await openKnowledgeBaseSpec(spec);
  let encoder: Encoder | undefined;
  const indexing = commitProgress(opts.quiet, opts.onProgress);
  try {
    const writer = await kb.beginWrite({ ...opts, onProgress: indexing.onProgress });
    try {
      if (!opts.allowNewLabels) checkLabels(rows, new Set((kb.manifest.labels as string[] | undefined) ?? []), pairsCsv);
      encoder = await kb.openEncoder();
      await appendRows(writer, encoder, rows, pairsCsv, 'kb add', opts.batchSize ?? DEFAULT_BATCH_SIZE, opts.quiet);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    const added = writer.pending.added;
    return { manifest: await writer.commit(), added };
  } finally {
    indexing.stop();
    await encoder?.close();
    await kb.close();
  }
}

/** Refuse a label the KB has not seen, naming the CSV row, before anything is embedded. */
function checkLabels(rows: readonly PairRow[], known: ReadonlySet<string>, csv: string): void {
  for (const r of rows) {
    if (r.label === undefined || known.has(r.label)) continue;
    const list = known.size === 0 ? 'the knowledge base has no labels' : `known: ${[...known].slice(0, 8).join(', ')}${known.size > 8 ? ', ...' : ''}`;
    throw inputError(csv, r.row, `unknown label "${r.label}" (${list}; pass --allow-new-labels to add it)`);
  }
}
