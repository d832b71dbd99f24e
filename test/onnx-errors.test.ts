import assert from 'node:assert/strict';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadOnnxClipEncoder, resolveVariant } from '../src/encoders/onnx/index.ts';
import { createEncoder, parseEncoderSpec } from '../src/encoders/registry.ts';
import { RetformerError } from '../src/util/errors.ts';
import { makeTinyClipDir, pattern, writePng } from './helpers/onnx-fixture.ts';

const { root, modelDir } = makeTinyClipDir();
after(() => rmSync(root, { recursive: true, force: true }));

/** A RetformerError with a one-line message matching `re`. */
const userError = (re: RegExp) => (err: unknown) => {
  assert.ok(err instanceof RetformerError, `not a RetformerError: ${err}`);
  assert.ok(!err.message.includes('\n'), 'one line');
  assert.match(err.message, re);
  return true;
};

describe('ONNX CLIP encoder errors', () => {
  it('names a folder that does not exist and where to get a model', async () => {
    const missing = join(root, 'nope');
    await assert.rejects(createEncoder(parseEncoderSpec(`onnx:${missing}`)), userError(new RegExp(`${missing} does not exist.*huggingface\\.co/Xenova/clip-vit-base-patch16`)));
  });

  it('names the missing tower file', async () => {
    const broken = join(root, 'no-vision');
    cpSync(modelDir, broken, { recursive: true });
    rmSync(join(broken, 'onnx', 'vision_model.onnx'));
    rmSync(join(broken, 'onnx', 'vision_model_fp16.onnx'));
    await assert.rejects(loadOnnxClipEncoder(broken), userError(/missing onnx\/vision_model\.onnx for variant fp32: .*huggingface\.co\/Xenova\/clip-vit-base-patch16/));
  });

  it('names a missing config file', async () => {
    const broken = join(root, 'no-tokenizer');
    cpSync(modelDir, broken, { recursive: true });
    rmSync(join(broken, 'tokenizer.json'));
    await assert.rejects(loadOnnxClipEncoder(broken), userError(/missing tokenizer\.json/));
  });

  it('refuses an unknown variant and lists the known ones', async () => {
    assert.throws(() => resolveVariant('fp8'), userError(/unknown ONNX precision variant "fp8": use one of fp32, fp16, q8/));
    await assert.rejects(createEncoder(parseEncoderSpec(`onnx:${modelDir}#fp8`)), userError(/unknown ONNX precision variant/));
    assert.equal(resolveVariant('quantized').suffix, '_quantized');
    assert.equal(resolveVariant(undefined).name, 'fp32');
  });

  it('names a variant whose files are absent and the variants that are there', async () => {
    await assert.rejects(loadOnnxClipEncoder(modelDir, { variant: 'quantized' }), userError(/missing onnx\/vision_model_quantized\.onnx for variant q8 \("quantized"\) \(this folder has the variants: fp32, fp16/));
  });

  it('reports a corrupt or missing image as a one-line error naming it', async () => {
    const enc = await loadOnnxClipEncoder(modelDir, { quiet: true });
    try {
      const bad = join(root, 'bad.png');
      const good = await writePng(join(root, 'good.png'), 32, 32, pattern(1));
      writeFileSync(bad, Buffer.from('\x89PNG\r\n\x1a\nthis is not really a png'));
      await assert.rejects(enc.embedImages([good, bad]), userError(/bad\.png: /));
      await assert.rejects(enc.embedImages([join(root, 'absent.png')]), userError(/absent\.png: image file not found/));
      await assert.rejects(enc.embedImages([Buffer.from('garbage')]), userError(/<7 bytes>/));
    } finally {
      await enc.close();
    }
  });

  it('refuses a config.json that is not CLIP', async () => {
    const other = join(root, 'not-clip');
    cpSync(modelDir, other, { recursive: true });
    writeFileSync(join(other, 'config.json'), JSON.stringify({ model_type: 'bert', projection_dim: 16 }));
    await assert.rejects(loadOnnxClipEncoder(other), userError(/config\.json: model_type is "bert"/));
  });
});
