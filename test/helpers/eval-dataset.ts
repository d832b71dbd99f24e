import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.ts';

/**
 * A tiny long-tailed picture dataset for end-to-end evaluation tests: each class is a base colour
 * with a class-specific stripe, each picture that plus seeded noise. Writes train.csv / test.csv
 * (`path,label,text`) and kb.csv (`path,text,id,label`) into `dir`.
 */
export interface TinyDataset {
  dir: string;
  train: string;
  test: string;
  kbCsv: string;
  classes: string[];
  trainCounts: number[];
}

const PALETTE = [
  [220, 40, 40],
  [40, 180, 60],
  [50, 70, 220],
  [230, 200, 30],
  [160, 50, 200],
  [30, 200, 200],
];

async function picture(path: string, cls: number, rng: Rng): Promise<void> {
  const size = 16;
  const data = Buffer.alloc(size * size * 3);
  const [r, g, b] = PALETTE[cls % PALETTE.length];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const stripe = (x + cls * 3) % 8 < 2 ? 60 : 0;
      const o = (y * size + x) * 3;
      data[o] = Math.max(0, Math.min(255, r - stripe + rng.normal() * 20));
      data[o + 1] = Math.max(0, Math.min(255, g - stripe + rng.normal() * 20));
      data[o + 2] = Math.max(0, Math.min(255, b - stripe + rng.normal() * 20));
    }
  }
  await sharp(data, { raw: { width: size, height: size, channels: 3 } }).png().toFile(path);
}

export async function writeTinyDataset(
  dir: string,
  options: { trainCounts?: number[]; testPerClass?: number; kbPerClass?: number; seed?: number } = {},
): Promise<TinyDataset> {
  const trainCounts = options.trainCounts ?? [24, 8, 3, 2];
  const classes = trainCounts.map((_, c) => `class-${String.fromCharCode(97 + c)}`);
  const rng = new Rng(options.seed ?? 7);
  mkdirSync(join(dir, 'img'), { recursive: true });
  const rows: Record<'train' | 'test' | 'kb', string[]> = { train: [], test: [], kb: [] };
  const counts = { train: trainCounts, test: classes.map(() => options.testPerClass ?? 3), kb: classes.map(() => options.kbPerClass ?? 5) };
  for (const split of ['train', 'test', 'kb'] as const) {
    for (const [c, name] of classes.entries()) {
      for (let i = 0; i < counts[split][c]; i++) {
        const file = `img/${split}-${name}-${i}.png`;
        await picture(join(dir, file), c, rng);
        const text = `a ${name.replace('-', ' ')} picture number ${i}`;
        rows[split].push(split === 'kb' ? `${file},${text},kb:${name}:${i},${name}` : `${file},${name},${text}`);
      }
    }
  }
  const write = (file: string, header: string, lines: string[]) => {
    writeFileSync(join(dir, file), `${header}\n${lines.join('\n')}\n`);
    return join(dir, file);
  };
  return {
    dir,
    train: write('train.csv', 'path,label,text', rows.train),
    test: write('test.csv', 'path,label,text', rows.test),
    kbCsv: write('kb.csv', 'path,text,id,label', rows.kb),
    classes,
    trainCounts,
  };
}
