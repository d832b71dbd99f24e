import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { readCsv } from '../util/csv.ts';
import { RetformerError, inputError } from '../util/errors.ts';
import { resolveClassOption, sortClassNames } from './classes.ts';
import type { Dataset, Sample } from './types.ts';

/** File extensions (lower case, with the dot) that the image-folder reader picks up. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.tif', '.tiff']);

export type DatasetFormat = 'csv' | 'folder' | 'lift';

export interface ReadDatasetOptions {
  /** Fixed class order: the names, or the path of a class-list file (one class per line). */
  classes?: string[] | string;
  /** LIFT split files only: the folder image paths are relative to (default: the split file's folder). */
  root?: string;
  /** Force a format instead of detecting it. */
  format?: DatasetFormat;
}

/** Guess the format: a folder is an image folder; `.csv` a manifest; `.txt` a LIFT split file; otherwise sniff the first line. */
export function detectFormat(input: string): DatasetFormat {
  if (!existsSync(input)) throw new RetformerError(`${input}: file not found`);
  if (statSync(input).isDirectory()) return 'folder';
  const ext = extname(input).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.txt') return 'lift';
  const fd = openSync(input, 'r');
  const head = Buffer.alloc(4096);
  let read = 0;
  try {
    read = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const firstLine = head.subarray(0, read).toString('utf8').replace(/^\uFEFF/, '').split(/\r?\n/)[0] ?? '';
  const header = firstLine.split(',').map((c) => c.trim());
  return header.includes('path') && header.includes('label') ? 'csv' : 'lift';
}

/**
 * Read a labelled image dataset from a CSV manifest (`path,label[,text,split,clean_label]`), an image folder
 * (`root/<label>/<file>`) or a LIFT split file (`relative/path.jpg <int label>` per line), detected by
 * `detectFormat`. Paths come back absolute. Classes are ordered by `options.classes` when given (a label outside
 * it is an error naming file and row), otherwise sorted (numerically when all labels are ints).
 * Image files are not opened: encoders report unreadable pictures.
 */
export function readDataset(input: string, options: ReadDatasetOptions = {}): Dataset {
  const format = options.format ?? detectFormat(input);
  const given = resolveClassOption(options.classes);
  let samples: Sample[];
  if (format === 'csv') samples = readCsvSamples(input);
  else if (format === 'folder') samples = readFolderSamples(input);
  else samples = readLiftSamples(input, options.root, given?.classes);
  if (!given) {
    const names = samples.flatMap((s) => (s.cleanLabel === undefined ? [s.label] : [s.label, s.cleanLabel]));
    return { source: input, samples, classes: sortClassNames(names) };
  }
  const known = new Set(given.classes);
  for (const s of samples) {
    if (!known.has(s.label)) throw inputError(format === 'folder' ? s.path : input, format === 'folder' ? undefined : s.row, `unknown label "${s.label}" (not in ${given.file})`);
    if (s.cleanLabel !== undefined && !known.has(s.cleanLabel)) throw inputError(input, s.row, `unknown clean_label "${s.cleanLabel}" (not in ${given.file})`);
  }
  return { source: input, samples, classes: given.classes };
}

/** Class index of every sample (in dataset order), by `dataset.classes`. */
export function labelIndices(dataset: Dataset): Int32Array {
  const index = new Map(dataset.classes.map((c, i) => [c, i]));
  const out = new Int32Array(dataset.samples.length); // [n]
  dataset.samples.forEach((s, i) => {
    const c = index.get(s.label);
    if (c === undefined) throw inputError(dataset.source, s.row, `unknown label "${s.label}"`);
    out[i] = c;
  });
  return out;
}

/**
 * Refuse a dataset that names image files which do not exist, before any embedding starts: one line
 * naming the manifest and row of the first missing picture (and how many more are missing). Reading
 * a dataset does not check (statistics and splits work on manifests without their pictures).
 */
export function checkImagesExist(dataset: Dataset): void {
  const missing = dataset.samples.filter((s) => !existsSync(s.path));
  if (missing.length === 0) return;
  const more = missing.length > 1 ? ` (and ${missing.length - 1} more missing)` : '';
  throw inputError(dataset.source, missing[0].row, `image not found: ${missing[0].path}${more}`);
}

function resolvePath(base: string, p: string): string {
  return isAbsolute(p) ? resolve(p) : resolve(base, p);
}

function readCsvSamples(file: string): Sample[] {
  const table = readCsv(file, ['path', 'label']);
  const base = dirname(resolve(file));
  const has = (c: string) => table.columns.includes(c);
  return table.rows.map(({ row, values }) => {
    const path = values.path.trim();
    const label = values.label.trim();
    if (path === '') throw inputError(file, row, 'empty path');
    if (label === '') throw inputError(file, row, 'empty label');
    const sample: Sample = { path: resolvePath(base, path), label, row };
    if (has('text') && values.text !== '') sample.text = values.text;
    if (has('id') && values.id !== '') sample.id = values.id;
    if (has('split') && values.split.trim() !== '') sample.split = values.split.trim();
    if (has('clean_label') && values.clean_label.trim() !== '') sample.cleanLabel = values.clean_label.trim();
    return sample;
  });
}

/** Image files under `dir` (recursive, hidden entries skipped), sorted by name at each level. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...listImages(full));
    else if (IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(full);
  }
  return out;
}

function readFolderSamples(root: string): Sample[] {
  const base = resolve(root);
  const labels = readdirSync(base, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  const samples: Sample[] = [];
  for (const label of labels) {
    for (const path of listImages(join(base, label))) samples.push({ path, label, row: samples.length + 1 });
  }
  if (samples.length === 0) {
    throw new RetformerError(`${root}: no images found (expected ${root}/<label>/<image> with one of ${[...IMAGE_EXTENSIONS].join(' ')})`);
  }
  return samples;
}

function readLiftSamples(file: string, root: string | undefined, classes: string[] | undefined): Sample[] {
  const base = root === undefined ? dirname(resolve(file)) : resolve(root);
  if (root !== undefined && !existsSync(base)) throw new RetformerError(`${root}: root folder not found`);
  const names = classes === undefined ? undefined : new Set(classes);
  const samples: Sample[] = [];
  readFileSync(file, 'utf8')
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const row = i + 1;
      const m = /^(.*\S)\s+(\S+)$/.exec(line);
      if (!m) throw inputError(file, row, `expected "<relative/path> <label>", got ${JSON.stringify(line.slice(0, 80))}`);
      let label = m[2];
      // LIFT labels index a class-name list: map an int to that name unless the list names the int itself.
      if (classes !== undefined && names !== undefined && !names.has(label) && /^\d+$/.test(label) && Number(label) < classes.length) {
        label = classes[Number(label)];
      }
      samples.push({ path: resolvePath(base, m[1]), label, row });
    });
  if (samples.length === 0) throw inputError(file, undefined, 'empty split file (expected "<relative/path> <label>" lines)');
  return samples;
}
