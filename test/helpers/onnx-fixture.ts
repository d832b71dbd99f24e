import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeTinyClip } from '../../scripts/tiny-clip/index.ts';

/** A fresh temp folder with a generated tiny CLIP (fp32 + fp16) at `<root>/tiny-clip`. */
export function makeTinyClipDir(seed = 1234): { root: string; modelDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'retformer-onnx-'));
  const modelDir = join(root, 'tiny-clip');
  writeTinyClip(modelDir, { seed });
  return { root, modelDir };
}

export type Rgb = [number, number, number];

/** Write a w x h PNG whose pixel (x, y) is `colour(x, y)`. */
export async function writePng(path: string, width: number, height: number, colour: (x: number, y: number) => Rgb): Promise<string> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) raw.set(colour(x, y), (y * width + x) * 3);
  await sharp(raw, { raw: { width, height, channels: 3 } }).png().toFile(path);
  return path;
}

/** A deterministic textured test picture: different `seed` gives a different picture. */
export function pattern(seed: number): (x: number, y: number) => Rgb {
  return (x, y) => [(x * 7 + y * 3 + seed * 31) % 256, (x * y + seed * 17) % 256, ((x ^ y) * 5 + seed * 59) % 256];
}
