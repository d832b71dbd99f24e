import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { toCsv } from '../util/csv.ts';
import { RetformerError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import type { Sample } from './types.ts';

/** Manifest columns, in the order they are written. */
export const MANIFEST_COLUMNS = ['path', 'label', 'text', 'split', 'clean_label'] as const;
export type ManifestColumn = (typeof MANIFEST_COLUMNS)[number];

/** A manifest row: the sample fields plus any extra columns (kb.csv's `id`, ...). */
export type ManifestRow = Pick<Sample, 'path'> & Partial<Omit<Sample, 'path' | 'row'>> & { extra?: Record<string, string> };

/** The columns worth writing for these samples: path, label, and each optional column some sample fills. */
export function manifestColumnsFor(samples: readonly ManifestRow[]): string[] {
  const cols: string[] = ['path', 'label'];
  if (samples.some((s) => s.text !== undefined)) cols.push('text');
  if (samples.some((s) => s.split !== undefined)) cols.push('split');
  if (samples.some((s) => s.cleanLabel !== undefined)) cols.push('clean_label');
  return cols;
}

/** Path of `file` relative to `base`, with forward slashes (portable manifests). */
export function portableRelative(base: string, file: string): string {
  const rel = relative(base, file);
  if (isAbsolute(rel)) return file; // another drive: keep absolute
  return rel.split(sep).join('/');
}

/**
 * Write a CSV manifest atomically (creating the folder). Image paths are written relative to the CSV's folder so the
 * dataset moves as one tree. `columns` defaults to path, label and the optional columns any sample fills;
 * columns beyond the standard ones are read from `row.extra`.
 */
export function writeManifest(file: string, samples: readonly ManifestRow[], columns?: readonly string[]): void {
  const cols = columns ? [...columns] : manifestColumnsFor(samples);
  if (!cols.includes('path')) throw new RetformerError(`${file}: a manifest needs a "path" column`);
  const base = dirname(resolve(file));
  const rows = samples.map((s) => {
    const values: Record<string, string | undefined> = {
      ...s.extra,
      path: portableRelative(base, resolve(s.path)),
      label: s.label,
      text: s.text,
      split: s.split,
      clean_label: s.cleanLabel,
    };
    return Object.fromEntries(cols.map((c) => [c, values[c] ?? '']));
  });
  mkdirSync(base, { recursive: true });
  writeFileAtomic(file, toCsv(cols, rows));
}
