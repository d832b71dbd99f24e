import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPixelsEncoder } from '../../src/encoders/baseline/pixels.ts';
import type { Encoder, ImageSource } from '../../src/encoders/types.ts';
import type { ClassifyOptions, Prediction, Predictor } from '../../src/infer/types.ts';
import { MemoryKnowledgeBase } from '../../src/kb/memory.ts';
import type { EmbeddedPair, KbManifest, KbWriter, WritableKnowledgeBase, WriteOptions } from '../../src/kb/types.ts';
import type { ServeDeps } from '../../src/serve/types.ts';
import { RetformerError } from '../../src/util/errors.ts';
import { COLOURS, type SHAPES, shapePng, tempDir, writePairsFixture } from './kb-fixtures.ts';
import { Rng } from '../../src/util/rng.ts';

/**
 * Test doubles for the HTTP service that follow the contracts in src/kb/types.ts (KbWriter,
 * WritableKnowledgeBase) and src/infer/types.ts (Predictor), so the service's tests do not wait
 * on the real implementations: a writable KB over the in-memory exact KB, and a predictor that
 * votes over the KB neighbours it retrieves (so adding or removing a pair changes its answer).
 */
export class FakeWritableKb implements WritableKnowledgeBase {
  readonly spec = 'memory:';
  private open = false;
  commits = 0;
  constructor(readonly inner: MemoryKnowledgeBase) {}
  get manifest(): KbManifest {
    return this.inner.manifest;
  }
  get dim() {
    return this.inner.dim;
  }
  get encoderId() {
    return this.inner.encoderId;
  }
  get size() {
    return this.inner.size;
  }
  search: MemoryKnowledgeBase['search'] = (q, o) => this.inner.search(q, o);
  vectors: MemoryKnowledgeBase['vectors'] = (r, m) => this.inner.vectors(r, m);
  meta: MemoryKnowledgeBase['meta'] = (r) => this.inner.meta(r);
  async close() {}
  async refresh() {}
  async compact(): Promise<KbManifest> {
    throw new RetformerError('not supported by the fake');
  }
  async openEncoder(): Promise<Encoder> {
    throw new RetformerError('not supported by the fake');
  }
  async encoderFiles() {
    return new Map<string, Uint8Array>();
  }
  /** Rows of the live pairs (what the file KB offers for paging). */
  async liveRows(): Promise<number[]> {
    return [...this.idsToRows().values()].sort((a, b) => a - b);
  }
  /** id -> row of the live pairs (the memory KB keeps this map private). */
  private idsToRows(): ReadonlyMap<string, number> {
    return (this.inner as unknown as { ids: Map<string, number> }).ids;
  }
  async beginWrite(options: WriteOptions = {}): Promise<KbWriter> {
    if (this.open) throw new RetformerError('memory KB: another writer is open');
    this.open = true;
    const added: EmbeddedPair[] = [];
    const removed: string[] = [];
    const release = () => {
      this.open = false;
    };
    const labels = new Set(this.inner.manifest.labels as string[]);
    return {
      append: async (pairs, locate) => {
        for (const [i, p] of pairs.entries()) {
          if (p.meta.label !== undefined && !labels.has(p.meta.label) && !options.allowNewLabels) {
            throw new RetformerError(`${locate?.(i) ?? `pair ${i}`}: unknown label "${p.meta.label}" (allow new labels to add it)`);
          }
          if (this.idsToRows().has(p.meta.id) || added.some((a) => a.meta.id === p.meta.id)) throw new RetformerError(`${locate?.(i) ?? `pair ${i}`}: duplicate id "${p.meta.id}"`);
        }
        added.push(...pairs);
      },
      remove: async (ids) => {
        const live = this.idsToRows();
        for (const id of ids) if (!live.has(id)) throw new RetformerError(`unknown id "${id}" (not in the knowledge base, or already removed)`);
        removed.push(...ids);
      },
      get pending() {
        return { added: added.length, removed: removed.length };
      },
      commit: async () => {
        try {
          await new Promise((r) => setTimeout(r, 1)); // a commit takes time: readers must not see it half-done
          if (added.length > 0) this.inner.add(added);
          if (removed.length > 0) this.inner.remove(removed);
          this.commits++;
          return this.inner.manifest;
        } finally {
          release();
        }
      },
      abort: async () => release(),
    };
  }
}

/** A predictor that classifies by an attention-weighted vote of the KB neighbours' labels. */
export class VotingPredictor implements Predictor {
  readonly trainCounts: number[];
  readonly config = { variant: 'full', k: 4, seed: 0 };
  closed = false;
  constructor(
    readonly runDir: string,
    readonly classes: readonly string[],
    readonly kb: WritableKnowledgeBase,
    readonly encoder: Encoder,
  ) {
    this.trainCounts = classes.map(() => 1);
  }
  async classify(images: readonly ImageSource[], options?: ClassifyOptions): Promise<Prediction[]> {
    return this.classifyEmbeddings(await this.encoder.embedImages(images), options);
  }
  async classifyEmbeddings(embeddings: Float32Array, options: ClassifyOptions = {}): Promise<Prediction[]> {
    const D = this.encoder.dim;
    const n = embeddings.length / D;
    const hits = await this.kb.search(embeddings, { k: this.config.k, queryEncoderId: this.encoder.id, excludeIds: options.excludeIds });
    const C = this.classes.length;
    return Array.from({ length: n }, (_, i) => {
      const neighbours = hits[i];
      const w = neighbours.map((nb) => Math.exp(8 * nb.similarity));
      const sum = w.reduce((a, b) => a + b, 0) || 1;
      const attention = Float32Array.from(w, (x) => x / sum);
      const logits = new Float32Array(C);
      neighbours.forEach((nb, j) => {
        const c = this.classes.indexOf(nb.label ?? '');
        if (c >= 0) logits[c] += 4 * attention[j];
      });
      const max = Math.max(...logits);
      const e = logits.map((x) => Math.exp(x - max));
      const z = e.reduce((a, b) => a + b, 0);
      const probs = e.map((x) => x / z);
      const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a] || a - b);
      const label = order[0];
      return {
        label,
        className: this.classes[label],
        probability: probs[label],
        probs,
        top: order.slice(0, options.top ?? 5).map((c) => ({ label: c, className: this.classes[c], probability: probs[c] })),
        neighbours,
        attention,
        branches: { image: 0.25, retrieval: logits[label] },
      };
    });
  }
  async close() {
    this.closed = true;
  }
}

export interface ServeFixture {
  dir: string;
  deps: ServeDeps & { predictor: VotingPredictor; kb: FakeWritableKb };
  classes: string[];
  /** A fresh PNG of this colour and shape (seeded noise). */
  png(colour: keyof typeof COLOURS, shape?: (typeof SHAPES)[number], seed?: number): Promise<Buffer>;
  /** The fixture's own pair pictures, by id. */
  pictures: Map<string, Buffer>;
}

/**
 * A served KB of coloured shapes (label = colour, text = "a <colour> <shape>") embedded with the
 * real pixels encoder, over the fakes above. `colours` limits which colours the KB starts with.
 */
export async function makeServeFixture(options: { n?: number; seed?: number; colours?: string[] } = {}): Promise<ServeFixture> {
  const dir = tempDir('retformer-serve-');
  const { pairs } = await writePairsFixture(dir, { n: options.n ?? 15, seed: options.seed ?? 1 });
  const kept = pairs.filter((p) => !options.colours || options.colours.includes(p.label));
  const encoder = await createPixelsEncoder();
  const sources = kept.map((p) => join(dir, p.path));
  const images = await encoder.embedImages(sources);
  const texts = await encoder.embedTexts(kept.map((p) => p.text));
  const D = encoder.dim;
  const embedded: EmbeddedPair[] = kept.map((p, i) => ({
    meta: { id: p.id, text: p.text, source: sources[i], label: p.label },
    imageVector: images.slice(i * D, (i + 1) * D),
    textVector: texts.slice(i * D, (i + 1) * D),
  }));
  const kb = new FakeWritableKb(new MemoryKnowledgeBase({ kind: 'pixels', id: encoder.id, dim: D }, embedded));
  const classes = Object.keys(COLOURS);
  const predictor = new VotingPredictor(join(dir, 'run-fake'), classes, kb, encoder);
  const pictures = new Map(kept.map((p, i) => [p.id, readFileSync(sources[i])]));
  return {
    dir,
    deps: { predictor, kb, uploadsDir: join(dir, 'uploads') },
    classes,
    pictures,
    png: (colour, shape = 'square', seed = 99) => shapePng(COLOURS[colour], shape, new Rng(seed)),
  };
}

export interface TrainedServeFixture {
  dir: string;
  runDir: string;
  kbDir: string;
  /** A fresh PNG of this colour and shape (seeded noise). */
  png(colour: keyof typeof COLOURS, shape?: (typeof SHAPES)[number], seed?: number): Promise<Buffer>;
}

/**
 * A real trained run over a real file KB, made in a few seconds: coloured shapes (label = colour,
 * text = "a <colour> <shape>"), `encoder` (pixels by default; embedded fits on the KB pairs), a
 * RetFormer full run trained for a couple of epochs at a tiny width.
 */
export async function makeTrainedServeFixture(options: { encoder?: 'pixels' | 'embedded'; kbPairs?: number; trainPairs?: number; seed?: number } = {}): Promise<TrainedServeFixture> {
  const { buildKnowledgeBase } = await import('../../src/kb/index.ts');
  const { trainRun } = await import('../../src/train/index.ts');
  const dir = tempDir('retformer-serve-run-');
  const seed = options.seed ?? 3;
  const kb = await writePairsFixture(dir, { n: options.kbPairs ?? 30, seed, prefix: 'kb' });
  const train = await writePairsFixture(dir, { n: options.trainPairs ?? 45, seed: seed + 1, prefix: 'tr' });
  const trainCsv = join(dir, 'train.csv');
  writeFileSync(trainCsv, `path,label,text\n${train.pairs.map((p) => `${p.path},${p.label},${p.text}`).join('\n')}\n`);
  const kbDir = join(dir, 'kb');
  await buildKnowledgeBase({ pairsCsv: kb.csv, out: kbDir, encoderSpec: options.encoder ?? 'pixels', quiet: true, seed });
  const runDir = join(dir, 'run');
  await trainRun({
    trainCsv,
    kbDir,
    outDir: runDir,
    quiet: true,
    config: { variant: 'full', epochs: 3, batchSize: 16, microBatch: 16, width: 16, heads: 2, layers: 1, hidden: 32, k: 4, seed, lr: 5e-3 },
  });
  return { dir, runDir, kbDir, png: (colour, shape = 'square', s = 99) => shapePng(COLOURS[colour], shape, new Rng(s)) };
}
