import { resolve } from 'node:path';
import { readDataset } from '../data/index.ts';
import { writeManifest } from '../data/manifest.ts';
import type { Dataset } from '../data/types.ts';
import { readCsv } from '../util/csv.ts';
import { inputError, RetformerError } from '../util/errors.ts';
import { buildKnowledgeBase } from './build.ts';
import { createKnowledgeBase, normalizeKbSpec, openKnowledgeBaseSpec } from './registry.ts';
import { readPairsCsv } from './pairs.ts';
import type { EmbeddedPair, PairMeta } from './types.ts';

/**
 * Knowledge-base sources, as the paper's KB ablation names them:
 * - external: pairs from elsewhere (the emoji demo: the twitter pictures with their texts);
 * - downstream: the training set itself, each training image paired with a text and its label; a
 *   query never sees its own pair, because training and `audit` drop neighbours whose `source` is
 *   the query's own image path (and ids listed in the training CSV's `id` column);
 * - all: downstream + external.
 */
export const KB_SOURCES = ['external', 'downstream', 'all'] as const;
export type KbSource = (typeof KB_SOURCES)[number];

/** The prompt a training image is paired with when its manifest has no text: `{label}` becomes the class name. */
export const DEFAULT_TEXT_TEMPLATE = 'a photo of {label}';

/** One pair of a downstream KB. */
export interface DownstreamPair {
  path: string;
  text: string;
  id: string;
  label: string;
}

/** Fill a text template: `{label}` is the class name with underscores as spaces. */
export function fillTemplate(template: string, label: string): string {
  return template.replaceAll('{label}', label.replace(/_/g, ' '));
}

/**
 * The downstream pairs of a training manifest: each image with its own text (the manifest's `text`
 * column where the row has one) or else the template filled with its label, its label, and an id
 * (the manifest's `id` column, else `train:<line>`, the row's line in the CSV as an editor counts). The source of each pair is the image path, which
 * is what the leakage guard matches.
 */
export function downstreamPairs(train: Dataset, options: { textTemplate?: string; ids?: readonly (string | undefined)[] } = {}): DownstreamPair[] {
  const template = options.textTemplate ?? DEFAULT_TEXT_TEMPLATE;
  if (!template.includes('{label}')) throw new RetformerError(`--text-template "${template}" has no {label} placeholder`);
  const seen = new Map<string, number>();
  return train.samples.map((s, i) => {
    const id = options.ids?.[i] || `train:${s.row}`;
    const first = seen.get(id);
    if (first !== undefined) throw inputError(train.source, s.row, `duplicate id "${id}" (first used on line ${first})`);
    seen.set(id, s.row);
    const own = s.text?.trim();
    return { path: s.path, text: own ? own : fillTemplate(template, s.label), id, label: s.label };
  });
}

/** The `id` column of a training CSV per sample, or undefined when it has none. */
export function manifestIds(file: string, train: Dataset): (string | undefined)[] | undefined {
  if (!file.toLowerCase().endsWith('.csv')) return undefined;
  const table = readCsv(file);
  if (!table.columns.includes('id')) return undefined;
  const byRow = new Map(table.rows.map((r) => [r.row, r.values.id?.trim()]));
  return train.samples.map((s) => byRow.get(s.row) || undefined);
}

/** Write a pairs CSV (`path,text,id,label`, absolute paths) for `kb build` / `kb add`. */
export function writePairsCsv(file: string, pairs: readonly DownstreamPair[]): void {
  writeManifest(
    file,
    pairs.map((p) => ({ path: p.path, label: p.label, text: p.text, extra: { id: p.id } })),
    ['path', 'text', 'id', 'label'],
  );
}

/** Read a training manifest and write its downstream pairs CSV; returns how many pairs. */
export function writeDownstreamPairs(trainFile: string, outCsv: string, options: { textTemplate?: string } = {}): number {
  const train = readDataset(resolve(trainFile));
  const pairs = downstreamPairs(train, { textTemplate: options.textTemplate, ids: manifestIds(trainFile, train) });
  writePairsCsv(outCsv, pairs);
  return pairs.length;
}

/** Concatenate pairs CSVs (each `path,text[,id,label]`) into one, refusing a duplicate id across them. */
export function concatPairsCsv(files: readonly string[], outCsv: string): number {
  const rows = files.flatMap((f) => readPairsCsv(f).map((r) => ({ ...r, file: f })));
  const seen = new Map<string, string>();
  for (const r of rows) {
    const prev = seen.get(r.id);
    if (prev !== undefined) throw inputError(r.file, r.row, `id "${r.id}" is also used in ${prev}`);
    seen.set(r.id, `${r.file}:${r.row}`);
  }
  const labelled = rows.every((r) => r.label !== undefined);
  writeManifest(
    outCsv,
    rows.map((r) => ({ path: r.path, label: r.label, text: r.text, extra: { id: r.id } })),
    labelled ? ['path', 'text', 'id', 'label'] : ['path', 'text', 'id'],
  );
  return rows.length;
}

/**
 * A KB made of (some of) another KB's rows without embedding anything again: `pick` sees each live
 * row's metadata and returns the metadata to store (e.g. another label) or undefined to leave the row
 * out. Same encoder, same vectors; written beside `out` and renamed into place.
 */
export async function deriveKb(sourceSpec: string, out: string, pick: (meta: PairMeta) => PairMeta | undefined): Promise<number> {
  const source = await openKnowledgeBaseSpec(normalizeKbSpec(sourceSpec));
  try {
    const m = source.manifest;
    const kb = await createKnowledgeBase(normalizeKbSpec(out), { encoder: m.encoder, encoderChecksum: String(m.encoderChecksum), encoderFiles: await source.encoderFiles(), dim: source.dim, dtype: m.dtype });
    let kept = 0;
    try {
      const writer = await kb.beginWrite({ allowNewLabels: true });
      try {
        const D = source.dim;
        const live = await source.liveRows();
        for (let start = 0; start < live.length; start += 1024) {
          const rows = live.slice(start, start + 1024);
          const metas = await source.meta(rows);
          const images = await source.vectors(rows, 'image'); // [rows, D]
          const texts = await source.vectors(rows, 'text'); // [rows, D]
          const pairs: EmbeddedPair[] = [];
          rows.forEach((_, i) => {
            const meta = pick(metas[i]);
            if (meta) pairs.push({ meta, imageVector: images.subarray(i * D, (i + 1) * D), textVector: texts.subarray(i * D, (i + 1) * D) });
          });
          await writer.append(pairs);
          kept += pairs.length;
        }
        await writer.commit();
      } catch (err) {
        await writer.abort();
        throw err;
      }
    } finally {
      await kb.close();
    }
    return kept;
  } finally {
    await source.close();
  }
}

/**
 * Build a KB from a pairs CSV with the (already fitted) encoder of another KB, so that KBs of
 * different sources share one embedding space and their results differ only by the pairs. Written
 * beside `out` and renamed into place, like `kb build`.
 */
export async function buildKbWithEncoderOf(encoderKbDir: string, pairsCsv: string, out: string, options: { quiet?: boolean } = {}): Promise<void> {
  await buildKnowledgeBase({ pairsCsv, out: normalizeKbSpec(out), encoderOf: normalizeKbSpec(encoderKbDir), quiet: options.quiet });
}
