import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Encoder, EncoderDescriptor } from '../../src/encoders/types.ts';
import type { KnowledgeBase, Neighbour } from '../../src/kb/types.ts';
import { topClasses } from '../../src/infer/predictor.ts';
import type { Prediction, Predictor } from '../../src/infer/types.ts';

/** Fakes for evaluation tests: an encoder with fixed vectors, a run whose predict is a plain function. */

/** An L2-normalised copy of a vector. */
export function unit(values: readonly number[]): Float32Array {
  const v = Float32Array.from(values);
  const norm = Math.hypot(...v);
  return norm > 0 ? v.map((x) => x / norm) : v;
}

/** Rows stacked into a row-major [n, dim] matrix. */
export function stack(rows: readonly Float32Array[]): Float32Array {
  const dim = rows[0]?.length ?? 0;
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => {
    out.set(r, i * dim);
  });
  return out;
}

export interface FakeEncoder extends Encoder {
  /** Images (by path) and texts embedded so far, in call order. */
  readonly imageCalls: string[][];
  readonly textCalls: string[][];
}

/** An encoder that looks image vectors up by path and text vectors through `text`. */
export function fakeEncoder(
  dim: number,
  images: ReadonlyMap<string, Float32Array>,
  text: (t: string) => Float32Array = () => new Float32Array(dim),
  id = 'fake-encoder',
): FakeEncoder {
  const imageCalls: string[][] = [];
  const textCalls: string[][] = [];
  return {
    id,
    dim,
    imageCalls,
    textCalls,
    async embedImages(sources) {
      const paths = sources.map((s) => (typeof s === 'string' ? s : '<bytes>'));
      imageCalls.push(paths);
      return stack(
        paths.map((p) => {
          const v = images.get(p);
          if (!v) throw new Error(`fake encoder: no vector for ${p}`);
          return v;
        }),
      );
    },
    async embedTexts(texts) {
      textCalls.push([...texts]);
      return stack(texts.map(text));
    },
    async save(): Promise<EncoderDescriptor> {
      return { kind: 'fake', id, dim };
    },
    async close() {},
  };
}

export function encoderDescriptor(dim: number, id = 'fake-encoder'): EncoderDescriptor {
  return { kind: 'fake', id, dim };
}

/** The parts of a prediction a fake decides; the fake predictor fills in names, top classes and branches. */
export type CorePrediction = Pick<Prediction, 'label' | 'probs' | 'neighbours' | 'attention' | 'gate'>;

/** A Predictor whose classifyEmbeddings is `predictOne` applied per query row; counts its calls. */
export function fakeRun(args: {
  classes: string[];
  trainCounts: number[];
  encoder: Encoder;
  kb: KnowledgeBase;
  predictOne: (embedding: Float32Array) => CorePrediction;
}): Predictor & { predictCalls: number } {
  const complete = (p: CorePrediction): Prediction => ({ ...p, className: args.classes[p.label], probability: p.probs[p.label], top: topClasses(p.probs, args.classes, 5), branches: { image: 0 } });
  const run = {
    runDir: '/fake/run',
    config: { variant: 'full' as const, k: 2, seed: 0 },
    classes: args.classes,
    trainCounts: args.trainCounts,
    kb: args.kb,
    encoder: args.encoder,
    predictCalls: 0,
    async classifyEmbeddings(embeddings: Float32Array): Promise<Prediction[]> {
      run.predictCalls++;
      const dim = args.encoder.dim;
      const out: Prediction[] = [];
      for (let off = 0; off < embeddings.length; off += dim) out.push(complete(args.predictOne(embeddings.subarray(off, off + dim))));
      return out;
    },
    async classify(images: readonly (string | Uint8Array)[]): Promise<Prediction[]> {
      return run.classifyEmbeddings(await args.encoder.embedImages(images));
    },
    async close() {},
  };
  return run;
}

/** A prediction with one-hot-ish probabilities for `label` over `numClasses`, plus optional neighbours/attention. */
export function prediction(label: number, numClasses: number, prob = 0.9, neighbours: Neighbour[] = [], attention: number[] = []): CorePrediction {
  const probs = new Float32Array(numClasses).fill(numClasses > 1 ? (1 - prob) / (numClasses - 1) : 0);
  probs[label] = prob;
  return { label, probs, neighbours, attention: Float32Array.from(attention) };
}

/** A neighbour record with the given label and similarity. */
export function neighbour(row: number, label: string | undefined, similarity: number): Neighbour {
  return { id: `kb:${row}`, row, text: `text ${row}`, source: `/kb/${row}.png`, similarity, ...(label === undefined ? {} : { label }) };
}

/** Write n distinct tiny PNGs into dir (distinct bytes so the embedding cache keys differ); returns their paths. */
export async function writePngs(dir: string, names: readonly string[]): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  return Promise.all(
    names.map(async (name, i) => {
      const path = join(dir, `${name}.png`);
      await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: 200 } } })
        .png()
        .toFile(path);
      return path;
    }),
  );
}
