import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createEncoder, DEFAULT_ENCODER_SPEC, openEncoder, parseEncoderSpec } from '../encoders/registry.ts';
import type { Encoder } from '../encoders/types.ts';
import { RetformerError } from '../util/errors.ts';
import { fsyncPath } from '../util/fs.ts';
import { startProgress } from '../util/progress.ts';
import type { AppendOptions } from './appender.ts';
import { checksumDir, type FileKbManifest, KB_FILES, readManifest } from './format.ts';
import { initKbFolder } from './init.ts';
import { FileKnowledgeBase } from './file-kb.ts';
import { embedPairRows, readPairsCsv } from './pairs.ts';
import { processAlive } from './storage.ts';

export interface BuildOptions {
  pairsCsv: string;
  out: string;
  /** Encoder spec (registry syntax); default "embedded". */
  encoderSpec?: string;
  seed?: number;
  /** Pairs embedded per batch (bounds memory). */
  batchSize?: number;
  /** HNSW insertion threads: 1 (default) reproducible, 0 all cores. */
  indexThreads?: number;
  quiet?: boolean;
}

export const DEFAULT_BATCH_SIZE = 256;

/** A build of NAME writes into `.NAME.building-<pid>` beside it until its final rename. */
const buildFolderPrefix = (name: string) => `.${name}.building-`;

/** Delete the temp folders of earlier builds of NAME whose process is gone (killed mid-build), and this process's own. */
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
 * The engine behind `kb build`: embed every (image, text) pair with a frozen encoder, store the
 * vectors row-aligned with their metadata, index both modalities. Everything is written into a
 * temp folder beside `out` and renamed into place at the end, so a failure leaves no KB at all.
 */
export async function buildKnowledgeBase(opts: BuildOptions): Promise<FileKbManifest> {
  const out = resolve(opts.out);
  if (existsSync(out)) throw new RetformerError(`${out}: already exists; choose a new folder for the knowledge base (or delete it)`);
  const rows = readPairsCsv(opts.pairsCsv);
  const parent = dirname(out);
  mkdirSync(parent, { recursive: true });
  removeDeadBuilds(parent, basename(out));
  const tmp = join(parent, `${buildFolderPrefix(basename(out))}${process.pid}`);
  mkdirSync(tmp);
  let encoder: Encoder | undefined;
  let abort: (() => void) | undefined;
  try {
    encoder = await createEncoder(parseEncoderSpec(opts.encoderSpec ?? DEFAULT_ENCODER_SPEC), {
      fitPairs: rows.map((r) => ({ image: r.path, text: r.text })),
      seed: opts.seed ?? 0,
      quiet: opts.quiet,
    });
    const encoderDir = join(tmp, KB_FILES.encoderDir);
    mkdirSync(encoderDir);
    const descriptor = await encoder.save(encoderDir);
    if (descriptor.dim !== encoder.dim || descriptor.id !== encoder.id) throw new Error(`encoder descriptor (${descriptor.id}, ${descriptor.dim}) disagrees with the encoder (${encoder.id}, ${encoder.dim})`);
    initKbFolder(tmp, descriptor, checksumDir(encoderDir));
    const kb = await FileKnowledgeBase.open(tmp);
    const tx = await kb.beginAdd({ allowNewLabels: true, indexThreads: opts.indexThreads });
    abort = tx.abort;
    const progress = startProgress('kb build', rows.length, { unit: 'pair', quiet: opts.quiet });
    try {
      for await (const batch of embedPairRows(encoder, rows, opts.pairsCsv, { batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE, progress })) {
        tx.append(batch.pairs, (i) => `${opts.pairsCsv}:${batch.rows[i].row}`);
      }
    } finally {
      progress.stop();
    }
    abort = undefined;
    const manifest = await tx.commit();
    await kb.close();
    if (existsSync(out)) throw new RetformerError(`${out}: appeared while building; not overwriting it`);
    renameSync(tmp, out);
    fsyncPath(parent);
    return manifest;
  } catch (err) {
    abort?.();
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    await encoder?.close();
  }
}

/** Reopen the encoder a KB was built with, refusing an encoder folder that changed since. */
export async function openKbEncoder(dir: string): Promise<Encoder> {
  const manifest = readManifest(dir);
  const encoderDir = join(dir, KB_FILES.encoderDir);
  const sum = checksumDir(encoderDir);
  if (sum !== manifest.encoderChecksum) throw new RetformerError(`${encoderDir}: encoder files changed since the KB was built (checksum ${sum} != ${manifest.encoderChecksum})`);
  const encoder = await openEncoder(manifest.encoder, encoderDir);
  if (encoder.id !== manifest.encoder.id) {
    await encoder.close();
    throw new RetformerError(`${dir}: reopened encoder has id "${encoder.id}" but the manifest says "${manifest.encoder.id}"`);
  }
  return encoder;
}

export interface AddOptions extends AppendOptions {
  batchSize?: number;
  quiet?: boolean;
}

/**
 * The engine behind `kb add`: embed the CSV's pairs with the KB's own encoder and append them as
 * one generation. Old rows are not re-embedded; the indexes grow in place.
 */
export async function addPairsCsv(kbDir: string, pairsCsv: string, opts: AddOptions = {}): Promise<FileKbManifest> {
  const kb = await FileKnowledgeBase.open(kbDir);
  const rows = readPairsCsv(pairsCsv);
  const encoder = await openKbEncoder(kbDir);
  try {
    const tx = await kb.beginAdd(opts);
    const progress = startProgress('kb add', rows.length, { unit: 'pair', quiet: opts.quiet });
    try {
      for await (const batch of embedPairRows(encoder, rows, pairsCsv, { batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE, progress })) {
        tx.append(batch.pairs, (i) => `${pairsCsv}:${batch.rows[i].row}`);
      }
    } catch (err) {
      tx.abort();
      throw err;
    } finally {
      progress.stop();
    }
    return await tx.commit();
  } finally {
    await encoder.close();
    await kb.close();
  }
}
