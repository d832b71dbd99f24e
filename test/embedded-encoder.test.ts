import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_EMBEDDED_CONFIG, type EmbeddedConfig, fitEmbeddedEncoder, loadEmbeddedEncoder } from '../src/encoders/embedded/index.ts';
import { openEncoder } from '../src/encoders/registry.ts';
import type { Encoder, EncoderDescriptor } from '../src/encoders/types.ts';
import { RetformerError } from '../src/util/errors.ts';
import { makeShapePairs, type ShapePair, writeCorruptPng } from './helpers/embedded-fixtures.ts';

/** A small configuration so that the tests fit in seconds (the method is the same as the default). */
const SMALL: Partial<EmbeddedConfig> = {
  image: { ...DEFAULT_EMBEDDED_CONFIG.image, centroids: 32 },
  space: { ...DEFAULT_EMBEDDED_CONFIG.space, imageRank: 24, textRank: 24, dim: 16 },
  dictionaryPatches: 4000,
  kmeansIterations: 5,
};

function rowNorm(m: Float32Array, dim: number, i: number): number {
  let s = 0;
  for (let j = 0; j < dim; j++) s += m[i * dim + j] ** 2;
  return Math.sqrt(s);
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let s = 0;
  for (let t = 0; t < dim; t++) s += a[i * dim + t] * b[j * dim + t];
  return s;
}

describe('embedded encoder', () => {
  let dir: string;
  let pairs: ShapePair[];
  let encoder: Encoder;

  before(async () => {
    ({ dir, pairs } = await makeShapePairs(12, 7)); // 36 pairs, 3 kinds
    encoder = await fitEmbeddedEncoder(pairs, { seed: 3, quiet: true, config: SMALL });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives L2-normalised vectors of the declared dim for images and texts', async () => {
    const imgs = await encoder.embedImages(pairs.slice(0, 5).map((p) => p.image));
    const txts = await encoder.embedTexts(['red disc', '', 'blue square box']);
    assert.equal(encoder.dim, 16);
    assert.equal(imgs.length, 5 * encoder.dim);
    assert.equal(txts.length, 3 * encoder.dim);
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(rowNorm(imgs, encoder.dim, i) - 1) < 1e-5);
    for (const i of [0, 2]) assert.ok(Math.abs(rowNorm(txts, encoder.dim, i) - 1) < 1e-5);
    assert.match(encoder.id, /^embedded-[0-9a-f]{16}$/);
  });

  it('is deterministic for a seed, and a different seed gives a different encoder', async () => {
    const again = await fitEmbeddedEncoder(pairs, { seed: 3, quiet: true, config: SMALL });
    assert.equal(again.id, encoder.id);
    const sources = pairs.slice(0, 4).map((p) => p.image);
    assert.deepEqual(await again.embedImages(sources), await encoder.embedImages(sources));
    assert.deepEqual(await again.embedTexts(['green triangle']), await encoder.embedTexts(['green triangle']));
    const other = await fitEmbeddedEncoder(pairs, { seed: 4, quiet: true, config: SMALL });
    assert.notEqual(other.id, encoder.id);
  });

  it('gives the same vector whatever the batch size', async () => {
    const sources = pairs.slice(0, 7).map((p) => p.image);
    assert.deepEqual(await encoder.embedImages(sources, { batchSize: 3 }), await encoder.embedImages(sources));
  });

  it('puts each fitted image nearer to texts of its own kind than to the others', async () => {
    const d = encoder.dim;
    const imgs = await encoder.embedImages(pairs.map((p) => p.image));
    const txts = await encoder.embedTexts(pairs.map((p) => p.text));
    let top1SameKind = 0;
    let ownBeatsOtherKinds = 0;
    for (let i = 0; i < pairs.length; i++) {
      let best = -1;
      let bestScore = Number.NEGATIVE_INFINITY;
      let otherMean = 0;
      let others = 0;
      for (let j = 0; j < pairs.length; j++) {
        const s = dot(imgs, i, txts, j, d);
        if (s > bestScore) {
          bestScore = s;
          best = j;
        }
        if (pairs[j].kind !== pairs[i].kind) {
          otherMean += s;
          others++;
        }
      }
      if (pairs[best].kind === pairs[i].kind) top1SameKind++;
      if (dot(imgs, i, txts, i, d) > otherMean / others) ownBeatsOtherKinds++;
    }
    assert.ok(top1SameKind >= 0.9 * pairs.length, `image->text top-1 of the same kind: ${top1SameKind}/${pairs.length}`);
    assert.equal(ownBeatsOtherKinds, pairs.length);
  });

  it('retrieves same-kind pictures from unseen pictures (image to image)', async () => {
    const { dir: dir2, pairs: fresh } = await makeShapePairs(4, 99);
    try {
      const d = encoder.dim;
      const base = await encoder.embedImages(pairs.map((p) => p.image));
      const queries = await encoder.embedImages(fresh.map((p) => p.image));
      let hits = 0;
      for (let q = 0; q < fresh.length; q++) {
        let best = 0;
        for (let b = 1; b < pairs.length; b++) if (dot(queries, q, base, b, d) > dot(queries, q, base, best, d)) best = b;
        if (pairs[best].kind === fresh[q].kind) hits++;
      }
      assert.ok(hits >= fresh.length - 1, `same-kind top-1: ${hits}/${fresh.length}`);
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('saves and reloads to bit-identical vectors, through the registry too', async () => {
    const saveDir = join(dir, 'encoder');
    const descriptor = await encoder.save(saveDir);
    assert.equal(descriptor.kind, 'embedded');
    assert.equal(descriptor.id, encoder.id);
    assert.equal(descriptor.dim, encoder.dim);
    const reloaded = await loadEmbeddedEncoder(saveDir, descriptor);
    const viaRegistry = await openEncoder(JSON.parse(JSON.stringify(descriptor)) as EncoderDescriptor, saveDir);
    const sources = pairs.slice(0, 6).map((p) => p.image);
    const texts = ['red disc round', 'blue box', 'nothing like it'];
    const before = await encoder.embedImages(sources);
    assert.deepEqual(await reloaded.embedImages(sources), before);
    assert.deepEqual(await viaRegistry.embedImages(sources), before);
    assert.deepEqual(await reloaded.embedTexts(texts), await encoder.embedTexts(texts));
    assert.equal(reloaded.id, encoder.id);
  });

  it('refuses a saved folder whose weights or checksum differ', async () => {
    const saveDir = join(dir, 'encoder-tampered');
    const descriptor = await encoder.save(saveDir);
    // a descriptor from another encoder
    const other = { ...descriptor, id: 'embedded-0000000000000000', checksum: '0'.repeat(64) };
    await assert.rejects(loadEmbeddedEncoder(saveDir, other), (err: Error) => err instanceof RetformerError && /does not match/.test(err.message) && !err.message.includes('\n'));
    // flipped bytes in the weights
    const weights = join(saveDir, 'embedded.f32');
    const bytes = readFileSync(weights);
    bytes[100] ^= 0xff;
    writeFileSync(weights, bytes);
    await assert.rejects(loadEmbeddedEncoder(saveDir, descriptor), (err: Error) => err instanceof RetformerError && err.message.includes(weights) && /corrupt or were changed/.test(err.message));
  });

  it('names the file of a corrupt image in a one-line error', async () => {
    const bad = writeCorruptPng(dir);
    await assert.rejects(
      encoder.embedImages([pairs[0].image, bad]),
      (err: Error) => err instanceof RetformerError && err.message.startsWith(bad) && !err.message.includes('\n'),
    );
    await assert.rejects(
      fitEmbeddedEncoder([...pairs.slice(0, 3), { image: bad, text: 'broken' }], { seed: 1, quiet: true, config: SMALL }),
      (err: Error) => err instanceof RetformerError && err.message.includes(bad),
    );
  });

  it('fits larger KBs on a seeded sample of maxFitPairs pairs, deterministically', async () => {
    const config = { ...SMALL, maxFitPairs: 20 };
    const a = await fitEmbeddedEncoder(pairs, { seed: 5, quiet: true, config });
    const b = await fitEmbeddedEncoder(pairs, { seed: 5, quiet: true, config });
    assert.equal(a.id, b.id);
    assert.notEqual(a.id, (await fitEmbeddedEncoder(pairs, { seed: 5, quiet: true, config: SMALL })).id);
  });

  it('refuses to fit on fewer than two pairs', async () => {
    await assert.rejects(fitEmbeddedEncoder(pairs.slice(0, 1), { seed: 1, quiet: true, config: SMALL }), RetformerError);
  });
});
