import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { readCsv } from '../util/csv.ts';
import { inputError, RetformerError } from '../util/errors.ts';
import { IMAGE_EXTENSIONS, listImages } from './readers.ts';

/** Unlabelled image lists, for labelling many pictures at once (`retformer predict --dir / --manifest`). */

/** Every image file under `dir` (recursive, sorted), or a one-line error when there is none. */
export function imagesInFolder(dir: string): string[] {
  const root = resolve(dir);
  if (!existsSync(root)) throw new RetformerError(`${root}: folder not found`);
  if (!statSync(root).isDirectory()) throw new RetformerError(`${root}: is not a folder`);
  const images = listImages(root);
  if (images.length === 0) throw new RetformerError(`${root}: no images found (files with one of ${[...IMAGE_EXTENSIONS].join(' ')})`);
  return images;
}

/** A manifest's pictures, and their labels when it has a `label` column (an empty cell: unknown). */
export interface ManifestImages {
  images: string[];
  labels?: (string | undefined)[];
}

/** The `path` column of a CSV manifest, relative paths resolved against the CSV's folder, and the `label` column if there is one (other columns ignored). */
export function imagesInManifest(file: string): ManifestImages {
  const table = readCsv(file, ['path']);
  const base = dirname(resolve(file));
  const images = table.rows.map(({ row, values }) => {
    const path = values.path.trim();
    if (path === '') throw inputError(file, row, 'empty path');
    return isAbsolute(path) ? resolve(path) : resolve(base, path);
  });
  if (!table.columns.includes('label')) return { images };
  return { images, labels: table.rows.map(({ values }) => values.label.trim() || undefined) };
}
