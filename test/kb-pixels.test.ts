import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createEncoder, openEncoder, parseEncoderSpec } from '../src/encoders/registry.ts';
import { dotRows } from '../src/encoders/vector.ts';
import { Rng } from '../src/util/rng.ts';
import { COLOURS, removeTempDirs, shapePng, tempDir } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

test('pixels encoder: 128-d unit rows, deterministic, colour and words drive similarity', async () => {
  const enc = await createEncoder(parseEncoderSpec('pixels'));
  assert.equal(enc.id, 'pixels-v1');
  assert.equal(enc.dim, 128);
  const rng = new Rng(3);
  const redA = await shapePng(COLOURS.red, 'square', rng);
  const redB = await shapePng(COLOURS.red, 'square', rng);
  const blue = await shapePng(COLOURS.blue, 'circle', rng);
  const imgs = await enc.embedImages([redA, redB, blue]); // [3, 128]
  assert.equal(imgs.length, 3 * 128);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(dotRows(imgs, i, imgs, i, 128) - 1) < 1e-5);
  assert.ok(dotRows(imgs, 0, imgs, 1, 128) > dotRows(imgs, 0, imgs, 2, 128) + 0.1, 'two red squares are closer than red vs blue');

  const texts = await enc.embedTexts(['a red square', 'a red square!', 'a blue circle']);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(dotRows(texts, i, texts, i, 128) - 1) < 1e-5);
  assert.ok(dotRows(texts, 0, texts, 1, 128) > 0.8);
  assert.ok(dotRows(texts, 0, texts, 1, 128) > dotRows(texts, 0, texts, 2, 128) + 0.2);

  // a second instance (another process would do the same) gives identical vectors; save writes only a descriptor
  const again = await openEncoder(await enc.save(join(tempDir(), 'encoder')), tempDir());
  assert.deepEqual(await again.embedImages([redA]), imgs.slice(0, 128));
  assert.deepEqual(await again.embedTexts(['a blue circle']), texts.slice(256));
  assert.deepEqual(await enc.save(tempDir()), { kind: 'pixels', id: 'pixels-v1', dim: 128 });
});

test('pixels encoder: errors name the image', async () => {
  const enc = await createEncoder(parseEncoderSpec('pixels'));
  await assert.rejects(enc.embedImages(['/nonexistent/x.png']), /\/nonexistent\/x\.png: image file not found/);
});
