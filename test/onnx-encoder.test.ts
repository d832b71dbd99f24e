import assert from 'node:assert/strict';
import { cpSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEncoder, openEncoder, parseEncoderSpec } from '../src/encoders/registry.ts';
import { loadOnnxClipEncoder, type OnnxClipEncoder, reopenOnnxClipEncoder } from '../src/encoders/onnx/index.ts';
import { CLIP_IMAGE_MEAN, CLIP_IMAGE_STD } from '../scripts/tiny-clip/index.ts';
import { makeTinyClipDir, pattern, writePng } from './helpers/onnx-fixture.ts';
import { l2normalise, TinyClipReference } from './helpers/onnx-reference.ts';

const { root, modelDir } = makeTinyClipDir();
const tok = JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8'));
const START = tok.model.vocab['<|startoftext|>'] as number;
const END = tok.model.vocab['<|endoftext|>'] as number;
const images: string[] = [];
let enc: OnnxClipEncoder;

before(async () => {
  for (let i = 0; i < 5; i++) images.push(await writePng(join(root, `img${i}.png`), 40 + 8 * i, 48, pattern(i)));
  enc = await loadOnnxClipEncoder(modelDir, { quiet: true, threads: 1 });
});
after(async () => {
  await enc?.close();
  rmSync(root, { recursive: true, force: true });
});

const rowNorm = (v: Float32Array, dim: number, r: number) => Math.hypot(...v.subarray(r * dim, (r + 1) * dim));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('ONNX CLIP encoder on the generated tiny CLIP', () => {
  it('loads with a content-derived id and the projection width', () => {
    assert.equal(enc.dim, 16);
    assert.match(enc.id, /^onnx:retformer\/tiny-clip-random:fp32:[0-9a-f]{16}$/);
  });

  it('preprocesses like CLIP: shortest-edge resize, centre crop, CLIP mean/std', async () => {
    // 96x32: three 32x32 blocks red | green | blue; the centre crop must keep exactly the green block
    const path = await writePng(join(root, 'blocks.png'), 96, 32, (x) => (x < 32 ? [255, 0, 0] : x < 64 ? [0, 255, 0] : [0, 0, 255]));
    const { dims, data } = await enc.pixelValues([path]);
    assert.deepEqual(dims, [1, 3, 32, 32]);
    const green = [0, 1, 0];
    for (let c = 0; c < 3; c++) {
      const want = (green[c] - CLIP_IMAGE_MEAN[c]) / CLIP_IMAGE_STD[c];
      const plane = data.subarray(c * 1024, (c + 1) * 1024);
      assert.ok(maxAbsDiff(plane, new Array(1024).fill(want)) < 1e-5, `channel ${c}`);
    }
    // 64x128 portrait: resized so the short side is 32 (32x64), then cropped to 32x32
    const tall = await writePng(join(root, 'tall.png'), 64, 128, (_x, y) => (y < 32 || y >= 96 ? [0, 0, 0] : [255, 255, 255]));
    const t = await enc.pixelValues([tall]);
    assert.deepEqual(t.dims, [1, 3, 32, 32]);
    const white = (1 - CLIP_IMAGE_MEAN[0]) / CLIP_IMAGE_STD[0];
    assert.ok(Math.abs(t.data[16 * 32 + 16] - white) < 1e-5, 'centre of the crop is the white middle band');
  });

  it('tokenises with start/end tokens, lower-cases, pads and keeps the end token when truncating', () => {
    const { ids, length } = enc.tokenize(['A Happy  FACE', 'a happy face', 'x']);
    assert.deepEqual(ids[0], ids[1]);
    assert.equal(Number(ids[0][0]), START);
    assert.ok(ids[0].some((t, i) => i > 0 && Number(t) === END));
    // the tiny BPE learned 'face</w>' as one merged token (ids past the 512 byte-level base tokens)
    const faceId = tok.model.vocab['face</w>'] as number;
    assert.ok(faceId >= 512, 'face</w> is a merged token in the fixture vocabulary');
    const word = (id: number | bigint) => Object.keys(tok.model.vocab).find((w) => tok.model.vocab[w] === Number(id));
    const body = ids[0].slice(1, ids[0].findIndex((t, i) => i > 0 && Number(t) === END)).map(word);
    assert.equal(body.join(''), 'a</w>happy</w>face</w>', 'the tokens spell the lower-cased words');
    assert.equal(body.at(-1), 'face</w>', 'BPE merges make word tokens');
    assert.equal(ids[2].length, length, 'padded to the batch length');
    const long = enc.tokenize([Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ')]);
    assert.equal(long.length, 16, 'context length from config.json');
    assert.equal(Number(long.ids[0][15]), END);
  });

  it('returns [n, dim] L2-normalised image and text vectors', async () => {
    const v = await enc.embedImages(images);
    assert.equal(v.length, images.length * 16);
    for (let r = 0; r < images.length; r++) assert.ok(Math.abs(rowNorm(v, 16, r) - 1) < 1e-5);
    assert.ok(maxAbsDiff(v.subarray(0, 16), v.subarray(16, 32)) > 1e-3, 'different pictures, different vectors');
    const t = await enc.embedTexts(['a cat', 'a red heart', 'A CAT']);
    assert.equal(t.length, 3 * 16);
    for (let r = 0; r < 3; r++) assert.ok(Math.abs(rowNorm(t, 16, r) - 1) < 1e-5);
    assert.ok(maxAbsDiff(t.subarray(0, 16), t.subarray(32, 48)) < 1e-6, 'case-insensitive');
    assert.equal((await enc.embedImages([])).length, 0);
  });

  it('matches an independent plain-TypeScript forward pass within 1e-4', async () => {
    const ref = new TinyClipReference(modelDir);
    const { data: px } = await enc.pixelValues(images);
    const v = await enc.embedImages(images);
    for (let i = 0; i < images.length; i++) {
      const want = l2normalise(ref.imageEmbedding(px.subarray(i * 3072, (i + 1) * 3072)));
      const got = v.subarray(i * 16, (i + 1) * 16);
      assert.ok(maxAbsDiff(got, want) < 1e-4, `image ${i}: ${maxAbsDiff(got, want)}`);
    }
    const texts = ['a happy face', 'red heart with sparkles and some more words to truncate here', 'x'];
    const { ids } = enc.tokenize(texts);
    const t = await enc.embedTexts(texts);
    for (let i = 0; i < texts.length; i++) {
      const want = l2normalise(ref.textEmbedding(ids[i].map(Number)));
      assert.ok(maxAbsDiff(t.subarray(i * 16, (i + 1) * 16), want) < 1e-4, `text ${i}`);
    }
  });

  it('gives the same vector for the same image across batches, byte inputs and fresh loads', async () => {
    const a = await enc.embedImages(images, { batchSize: 2 });
    const b = await enc.embedImages(images.slice(3, 4));
    const bytes = await enc.embedImages([readFileSync(images[3])]);
    assert.ok(maxAbsDiff(a.subarray(48, 64), b) < 1e-6);
    assert.ok(maxAbsDiff(b, bytes) === 0);
    const again = await loadOnnxClipEncoder(modelDir, { quiet: true });
    try {
      assert.equal(again.id, enc.id);
      assert.ok(maxAbsDiff(await again.embedImages(images.slice(3, 4)), b) < 1e-6);
    } finally {
      await again.close();
    }
  });

  it('reports progress per batch', async () => {
    const seen: Array<[number, number]> = [];
    await enc.embedImages(images, { batchSize: 2, onProgress: (d, n) => seen.push([d, n]) });
    assert.deepEqual(seen, [[2, 5], [4, 5], [5, 5]]);
  });

  it('selects the fp16 variant: another id, vectors close to fp32', async () => {
    const spec = parseEncoderSpec(`onnx:${modelDir}#fp16`);
    const half = await createEncoder(spec, { quiet: true });
    try {
      assert.match(half.id, /:fp16:/);
      assert.notEqual(half.id, enc.id);
      const v16 = await half.embedImages(images);
      const v32 = await enc.embedImages(images);
      const d = maxAbsDiff(v16, v32);
      assert.ok(d > 0 && d < 2e-2, `fp16 vs fp32 ${d}`);
    } finally {
      await half.close();
    }
  });

  it('saves a small descriptor and reopens the same encoder; refuses a changed or missing folder', async () => {
    const copy = join(root, 'copy');
    cpSync(modelDir, copy, { recursive: true });
    const e = await loadOnnxClipEncoder(copy, { quiet: true });
    const d = await e.save(join(root, 'kb', 'encoder'));
    await e.close();
    assert.deepEqual(Object.keys(d).sort(), ['checksum', 'dim', 'id', 'kind', 'modelDir', 'variant']);
    assert.equal(d.modelDir, copy);
    const reopened = await openEncoder(d, join(root, 'kb', 'encoder'));
    assert.equal(reopened.id, d.id);
    assert.ok(maxAbsDiff(await reopened.embedTexts(['a cat']), await enc.embedTexts(['a cat'])) < 1e-6);
    await reopened.close();

    const tj = join(copy, 'tokenizer.json');
    writeFileSync(tj, readFileSync(tj, 'utf8').replace('"version": "1.0"', '"version": "1.0" '));
    await assert.rejects(reopenOnnxClipEncoder(d), /changed since this KB was built/);
    renameSync(copy, `${copy}-moved`);
    await assert.rejects(reopenOnnxClipEncoder(d), /which is gone/);
  });
});
