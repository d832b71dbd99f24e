import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset } from '../../src/data/types.ts';
import type { EmbedOptions, Encoder, EncoderDescriptor, ImageSource } from '../../src/encoders/types.ts';
import { MemoryKnowledgeBase } from '../../src/kb/memory.ts';
import type { EmbeddedPair } from '../../src/kb/types.ts';
import { Rng } from '../../src/util/rng.ts';

export function makeTmp(prefix = 'retformer-train-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  return v.map((x) => x * inv);
}

/** A frozen fake encoder: images are looked up by path in a table; texts are not supported. */
export class FakeEncoder implements Encoder {
  readonly id: string;
  constructor(
    readonly dim: number,
    private readonly table: ReadonlyMap<string, Float32Array>,
    id = 'fake-encoder-v1',
  ) {
    this.id = id;
  }
  async embedImages(images: readonly ImageSource[], options?: EmbedOptions): Promise<Float32Array> {
    const out = new Float32Array(images.length * this.dim);
    images.forEach((img, i) => {
      const v = typeof img === 'string' ? this.table.get(img) : undefined;
      if (!v) throw new Error(`fake encoder: unknown image ${String(img)}`);
      out.set(v, i * this.dim);
    });
    options?.onProgress?.(images.length, images.length);
    return out;
  }
  async embedTexts(): Promise<Float32Array> {
    throw new Error('fake encoder: no texts');
  }
  async save(): Promise<EncoderDescriptor> {
    return this.descriptor();
  }
  descriptor(): EncoderDescriptor {
    return { kind: 'fake', id: this.id, dim: this.dim };
  }
  async close(): Promise<void> {}
}

export interface ClusteredProblem {
  dim: number;
  classes: string[];
  train: Dataset;
  test: Dataset;
  /** Embedding of every image path (train, test and KB images). */
  vectors: Map<string, Float32Array>;
  kbPairs: EmbeddedPair[];
  encoder: FakeEncoder;
  kb: MemoryKnowledgeBase;
  /** Training embeddings in dataset order: [N, dim]. */
  trainEmbeddings: Float32Array;
  testEmbeddings: Float32Array;
  testLabels: Int32Array;
}

export interface ProblemOptions {
  dim: number;
  /** Training images per class (long-tailed). */
  trainCounts: number[];
  testPerClass: number;
  /** KB pairs per class (not counting the training images, which are added to the KB too). */
  kbPerClass: number;
  /** Noise std of image vectors around their class centre (per coordinate, before normalising). */
  imageNoise: number;
  /** Noise std of text vectors around the class text centre. */
  textNoise: number;
  seed: number;
}

/**
 * Random clustered image-text data: class c has an image centre and a text centre; image vectors are
 * noisy around theirs, text vectors (captions) are tighter. Training images are also KB pairs (their
 * own text then must never reach their fusion: the leakage guard).
 */
export function makeClusteredProblem(o: ProblemOptions): ClusteredProblem {
  const rng = new Rng(o.seed);
  const C = o.trainCounts.length;
  const classes = Array.from({ length: C }, (_, c) => `c${c}`);
  const centre = (): Float32Array => unit(Float32Array.from({ length: o.dim }, () => rng.normal()));
  const imageCentres = classes.map(centre);
  const textCentres = imageCentres.map((ic) => unit(ic.map((x) => x + 0.5 * rng.normal() / Math.sqrt(o.dim))));
  const noisy = (c: Float32Array, s: number) => unit(c.map((x) => x + (s * rng.normal()) / Math.sqrt(o.dim)));
  const vectors = new Map<string, Float32Array>();
  const kbPairs: EmbeddedPair[] = [];
  const trainSamples: Dataset['samples'] = [];
  const testSamples: Dataset['samples'] = [];
  let row = 0;
  classes.forEach((label, c) => {
    for (let j = 0; j < o.trainCounts[c]; j++) {
      const path = `/fake/train/${label}_${j}.png`;
      const v = noisy(imageCentres[c], o.imageNoise);
      vectors.set(path, v);
      trainSamples.push({ path, label, row: ++row });
      kbPairs.push({ meta: { id: `train-${label}-${j}`, text: `a ${label}`, source: path, label }, imageVector: v, textVector: noisy(textCentres[c], o.textNoise) });
    }
    for (let j = 0; j < o.kbPerClass; j++) {
      const path = `/fake/kb/${label}_${j}.png`;
      const v = noisy(imageCentres[c], o.imageNoise);
      vectors.set(path, v);
      kbPairs.push({ meta: { id: `kb-${label}-${j}`, text: `a ${label}`, source: path, label }, imageVector: v, textVector: noisy(textCentres[c], o.textNoise) });
    }
  });
  let testRow = 0;
  classes.forEach((label, c) => {
    for (let j = 0; j < o.testPerClass; j++) {
      const path = `/fake/test/${label}_${j}.png`;
      vectors.set(path, noisy(imageCentres[c], o.imageNoise));
      testSamples.push({ path, label, row: ++testRow });
    }
  });
  const encoder = new FakeEncoder(o.dim, vectors);
  const kb = new MemoryKnowledgeBase(encoder.descriptor(), kbPairs);
  const stack = (paths: string[]) => {
    const out = new Float32Array(paths.length * o.dim);
    for (const [i, p] of paths.entries()) out.set(vectors.get(p)!, i * o.dim);
    return out;
  };
  return {
    dim: o.dim,
    classes,
    train: { source: '/fake/train.csv', samples: trainSamples, classes },
    test: { source: '/fake/test.csv', samples: testSamples, classes },
    vectors,
    kbPairs,
    encoder,
    kb,
    trainEmbeddings: stack(trainSamples.map((s) => s.path)),
    testEmbeddings: stack(testSamples.map((s) => s.path)),
    testLabels: Int32Array.from(testSamples, (s) => classes.indexOf(s.label)),
  };
}
