import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { toCsv } from '../../src/util/csv.ts';
import { Rng } from '../../src/util/rng.ts';

export const COLOURS: Record<string, [number, number, number]> = {
  red: [220, 30, 30],
  green: [30, 180, 40],
  blue: [30, 60, 220],
  yellow: [240, 220, 20],
  purple: [140, 40, 170],
};
export const SHAPES = ['square', 'circle', 'stripe'] as const;

const made: string[] = [];

/** A fresh temp folder; `removeTempDirs` deletes every one this process made. */
export function tempDir(prefix = 'retformer-kb-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A 32x32 RGBA PNG: a coloured shape on a transparent background, with a little seeded noise. */
export async function shapePng(colour: [number, number, number], shape: (typeof SHAPES)[number], rng: Rng): Promise<Buffer> {
  const size = 32;
  const px = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inside =
        shape === 'square' ? x >= 8 && x < 24 && y >= 8 && y < 24 : shape === 'circle' ? (x - 15.5) ** 2 + (y - 15.5) ** 2 < 100 : y % 8 < 4;
      const o = (y * size + x) * 4;
      if (inside) {
        for (let c = 0; c < 3; c++) px[o + c] = Math.max(0, Math.min(255, colour[c] + Math.round((rng.next() - 0.5) * 20)));
        px[o + 3] = 255;
      }
    }
  }
  return sharp(Buffer.from(px), { raw: { width: size, height: size, channels: 4 } }).png().toBuffer();
}

export interface FixturePair {
  id: string;
  path: string;
  text: string;
  label: string;
}

/**
 * Write `n` coloured-shape PNGs under dir/images and a pairs CSV (path relative to the CSV).
 * The label is the colour; the text names colour and shape.
 */
export async function writePairsFixture(dir: string, options: { n: number; seed: number; prefix?: string; csvName?: string; withLabel?: boolean }): Promise<{ csv: string; pairs: FixturePair[] }> {
  const rng = new Rng(options.seed);
  const prefix = options.prefix ?? 'p';
  mkdirSync(join(dir, 'images'), { recursive: true });
  const names = Object.keys(COLOURS);
  const pairs: FixturePair[] = [];
  for (let i = 0; i < options.n; i++) {
    const colour = names[i % names.length];
    const shape = SHAPES[Math.floor(i / names.length) % SHAPES.length];
    const id = `${prefix}${i}`;
    const path = `images/${id}.png`;
    writeFileSync(join(dir, path), await shapePng(COLOURS[colour], shape, rng));
    pairs.push({ id, path, text: `a ${colour} ${shape}`, label: colour });
  }
  const csv = join(dir, options.csvName ?? `${prefix}-pairs.csv`);
  const columns = options.withLabel === false ? ['id', 'path', 'text'] : ['id', 'path', 'text', 'label'];
  writeFileSync(csv, toCsv(columns, pairs as unknown as Record<string, string>[]));
  return { csv, pairs };
}

/** A PNG cut in half (truncated) and a text file named .png, under dir/images. */
export function writeBadImages(dir: string, goodPng: string): { truncated: string; notAnImage: string } {
  mkdirSync(join(dir, 'images'), { recursive: true });
  const bytes = readFileSync(join(dir, goodPng));
  writeFileSync(join(dir, 'images/truncated.png'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  writeFileSync(join(dir, 'images/not-an-image.png'), 'this is a text file, not a picture\n');
  return { truncated: 'images/truncated.png', notAnImage: 'images/not-an-image.png' };
}
