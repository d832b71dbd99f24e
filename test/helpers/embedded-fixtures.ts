/**
 * Small generated image-text pairs for the embedded encoder's tests: three kinds of shapes
 * (red discs, blue squares, green triangles) drawn at seeded positions and sizes on a transparent
 * 64 px canvas, each with a text naming its kind plus a varying word.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.ts';

export const SHAPE_KINDS = [
  { name: 'disc', colour: [220, 30, 30], words: 'red disc round ball circle' },
  { name: 'square', colour: [30, 60, 220], words: 'blue square box block' },
  { name: 'triangle', colour: [30, 170, 40], words: 'green triangle pointed arrow' },
] as const;

const EXTRA_WORDS = ['small', 'large', 'shiny', 'flat', 'bright', 'dark', 'toy', 'sign', 'icon', 'shape'];

export interface ShapePair {
  image: string;
  text: string;
  kind: number;
}

function inside(kind: number, x: number, y: number, cx: number, cy: number, r: number): boolean {
  if (kind === 0) return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
  if (kind === 1) return Math.abs(x - cx) <= r * 0.85 && Math.abs(y - cy) <= r * 0.85;
  const top = cy - r;
  const t = (y - top) / (2 * r); // 0 at the apex, 1 at the base
  return t >= 0 && t <= 1 && Math.abs(x - cx) <= t * r;
}

/** Write `perKind` pictures of each kind as PNGs into a new temp folder; returns the pairs (deterministic for the seed). */
export async function makeShapePairs(perKind: number, seed: number, size = 64): Promise<{ dir: string; pairs: ShapePair[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'retformer-embedded-'));
  const rng = new Rng(seed);
  const pairs: ShapePair[] = [];
  for (let i = 0; i < perKind; i++) {
    for (let kind = 0; kind < SHAPE_KINDS.length; kind++) {
      const rgba = new Uint8Array(size * size * 4);
      const r = size * (0.2 + 0.15 * rng.next());
      const cx = size / 2 + (rng.next() - 0.5) * size * 0.3;
      const cy = size / 2 + (rng.next() - 0.5) * size * 0.3;
      const shade = 0.75 + 0.25 * rng.next();
      const [cr, cg, cb] = SHAPE_KINDS[kind].colour;
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          if (!inside(kind, x, y, cx, cy, r)) continue;
          const o = (y * size + x) * 4;
          rgba[o] = cr * shade;
          rgba[o + 1] = cg * shade;
          rgba[o + 2] = cb * shade;
          rgba[o + 3] = 255;
        }
      }
      const file = join(dir, `${SHAPE_KINDS[kind].name}-${i}.png`);
      await sharp(Buffer.from(rgba), { raw: { width: size, height: size, channels: 4 } }).png().toFile(file);
      const extra = EXTRA_WORDS[rng.int(EXTRA_WORDS.length)];
      pairs.push({ image: file, text: `${extra} ${SHAPE_KINDS[kind].words}`, kind });
    }
  }
  return { dir, pairs };
}

/** A file that starts like a PNG and then is garbage. */
export function writeCorruptPng(dir: string, name = 'corrupt.png'): string {
  const file = join(dir, name);
  const bytes = new Uint8Array(200);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  for (let i = 8; i < bytes.length; i++) bytes[i] = (i * 37) & 0xff;
  writeFileSync(file, bytes);
  return file;
}
