import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { END_OF_WORD, END_TOKEN, START_TOKEN, trainBpe } from '../scripts/tiny-clip/bpe.ts';
import { writeTinyClip } from '../scripts/tiny-clip/index.ts';
import { float16BitsToNumber, float32ToFloat16Bits, readOnnxInitializers } from '../src/util/onnx-builder.ts';

const root = mkdtempSync(join(tmpdir(), 'retformer-tinyclip-'));
after(() => rmSync(root, { recursive: true, force: true }));

const LAYOUT = [
  'config.json',
  'preprocessor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'onnx/vision_model.onnx',
  'onnx/text_model.onnx',
  'onnx/vision_model_fp16.onnx',
  'onnx/text_model_fp16.onnx',
];

describe('tiny CLIP generator', () => {
  const a = writeTinyClip(join(root, 'a'), { seed: 7 });
  writeTinyClip(join(root, 'b'), { seed: 7 });
  writeTinyClip(join(root, 'c'), { seed: 8 });
  const read = (d: string, f: string) => readFileSync(join(root, d, f));

  it('writes the Hugging Face CLIP ONNX layout', () => {
    for (const f of LAYOUT) assert.ok(existsSync(join(a.dir, f)), f);
    const cfg = JSON.parse(read('a', 'config.json').toString());
    assert.equal(cfg.model_type, 'clip');
    assert.equal(cfg.vision_config.image_size, 32);
    assert.equal(cfg.text_config.vocab_size, a.vocabSize);
    const pre = JSON.parse(read('a', 'preprocessor_config.json').toString());
    assert.deepEqual(pre.size, { shortest_edge: 32 });
    assert.deepEqual(pre.crop_size, { height: 32, width: 32 });
    assert.equal(pre.resample, 3);
    assert.deepEqual(pre.image_mean, [0.48145466, 0.4578275, 0.40821073]);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    for (const f of LAYOUT) assert.ok(read('a', f).equals(read('b', f)), `${f} differs for the same seed`);
    assert.ok(!read('a', 'onnx/vision_model.onnx').equals(read('c', 'onnx/vision_model.onnx')));
    assert.ok(read('a', 'tokenizer.json').equals(read('c', 'tokenizer.json')), 'the tokenizer does not depend on the weight seed');
  });

  it('writes a CLIP-style BPE tokenizer.json with learned merges and the end token as the largest id', () => {
    const tok = JSON.parse(read('a', 'tokenizer.json').toString());
    assert.equal(tok.model.type, 'BPE');
    assert.equal(tok.model.end_of_word_suffix, END_OF_WORD);
    assert.ok(tok.model.merges.length >= 200, `only ${tok.model.merges.length} merges`);
    const ids = Object.values(tok.model.vocab) as number[];
    assert.equal(tok.model.vocab[END_TOKEN], Math.max(...ids));
    assert.equal(tok.model.vocab[START_TOKEN], Math.max(...ids) - 1);
    assert.equal(new Set(ids).size, ids.length, 'ids are unique');
    assert.equal(tok.normalizer.normalizers.at(-1).type, 'Lowercase');
    assert.equal(tok.post_processor.type, 'RobertaProcessing');
  });

  it('stores fp16 weights that round-trip to the fp32 ones within half precision', () => {
    const w32 = readOnnxInitializers(read('a', 'onnx/vision_model.onnx'));
    const w16 = readOnnxInitializers(read('a', 'onnx/vision_model_fp16.onnx'));
    const a32 = w32.get('visual_projection')!.data;
    const a16 = w16.get('visual_projection_fp16')!.data;
    assert.equal(a16.length, a32.length);
    let maxRel = 0;
    for (let i = 0; i < a32.length; i++) maxRel = Math.max(maxRel, Math.abs(a16[i] - a32[i]) / Math.max(Math.abs(a32[i]), 1e-3));
    assert.ok(maxRel > 0 && maxRel < 1e-3, `max relative error ${maxRel}`);
  });
});

describe('BPE trainer', () => {
  it('merges the most frequent pair first, deterministically', () => {
    const m = trainBpe(['ab', 'ab', 'ab', 'cd', 'xy', 'xy', 'xy'], 10);
    // 'a b</w>' and 'x y</w>' tie at 3: the alphabetical one first; 'c d</w>' (once) is never merged
    assert.deepEqual(m.merges, [`a b${END_OF_WORD}`, `x y${END_OF_WORD}`]);
    assert.equal(m.vocab.get(`ab${END_OF_WORD}`), 512);
    assert.deepEqual(trainBpe(['ab', 'ab', 'ab', 'cd', 'xy', 'xy', 'xy'], 10), m);
    assert.equal(m.vocab.get(END_TOKEN), m.vocab.size - 1);
  });
});

describe('float16 conversion', () => {
  it('rounds to nearest and round-trips representable values', () => {
    for (const v of [0, 1, -2, 0.5, 65504, 2 ** -24, -0.333251953125]) assert.equal(float16BitsToNumber(float32ToFloat16Bits(v)), v);
    assert.equal(float16BitsToNumber(float32ToFloat16Bits(1 + 2 ** -11)), 1); // tie -> even
    assert.equal(float16BitsToNumber(float32ToFloat16Bits(1e6)), Number.POSITIVE_INFINITY);
  });
});
