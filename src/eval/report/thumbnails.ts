import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { DEFAULT_BACKGROUND } from '../../encoders/image.ts';
import { mapConcurrent } from '../../util/concurrency.ts';

/** Folder of the report the thumbnails go to, relative to the report's root. */
export const THUMB_DIR = 'img';

/** A unique, filesystem- and URL-safe PNG name for a source path: readable stem plus a hash of the full path. */
export function thumbnailName(source: string): string {
  const stem =
    basename(source, extname(source))
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'image';
  const hash = createHash('sha1').update(source).digest('hex').slice(0, 10);
  return `${stem}-${hash}.png`;
}

/**
 * Re-encode each distinct source image as a size x size PNG (aspect kept, padded and flattened on
 * white) into `outDir/img/`. Returns source -> relative path ("img/<name>.png"), or null for a
 * source that is missing or unreadable (the report shows a placeholder rather than failing).
 */
export async function writeThumbnails(sources: readonly string[], outDir: string, size = 64): Promise<Map<string, string | null>> {
  const distinct = [...new Set(sources)];
  const dir = join(outDir, THUMB_DIR);
  mkdirSync(dir, { recursive: true });
  const written = await mapConcurrent(distinct, 4, async (source) => {
    const name = thumbnailName(source);
    try {
      await sharp(source, { failOn: 'error' })
        .flatten({ background: DEFAULT_BACKGROUND })
        .resize(size, size, { fit: 'contain', background: DEFAULT_BACKGROUND })
        .png({ compressionLevel: 9 })
        .toFile(join(dir, name));
      return `${THUMB_DIR}/${name}`;
    } catch {
      return null;
    }
  });
  return new Map(distinct.map((s, i) => [s, written[i]]));
}
