import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { makeTinyClipDir, pattern, writePng } from './helpers/onnx-fixture.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'retformer.js');
const { root, modelDir } = makeTinyClipDir();
after(() => rmSync(root, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, RETFORMER_QUIET: '1' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('kb build --encoder onnx:<dir> with the generated tiny CLIP', () => {
  it('builds a KB, records the encoder, and searches it by text', async () => {
    const rows = ['path,text,label'];
    for (let i = 0; i < 6; i++) {
      await writePng(join(root, `p${i}.png`), 36, 32, pattern(i));
      rows.push(`p${i}.png,picture number ${i},c${i % 2}`);
    }
    const csv = join(root, 'pairs.csv');
    writeFileSync(csv, `${rows.join('\n')}\n`);
    const kb = join(root, 'kb');
    const built = await cli(['kb', 'build', '--pairs', csv, '--encoder', `onnx:${modelDir}`, '--out', kb, '--quiet']);
    assert.equal(built.code, 0, built.stderr);
    assert.match(built.stdout, /6 pairs, dim 16, encoder onnx:retformer\/tiny-clip-random:fp32:[0-9a-f]{16}/);
    const manifest = JSON.parse(readFileSync(join(kb, 'manifest.json'), 'utf8'));
    assert.equal(manifest.encoder.kind, 'onnx');
    assert.equal(manifest.encoder.modelDir, modelDir);

    const found = await cli(['kb', 'search', '--kb', kb, '--text', 'picture number 3', '--k', '2', '--json']);
    assert.equal(found.code, 0, found.stderr);
    const res = JSON.parse(found.stdout);
    assert.equal(res.neighbours.length, 2);
    assert.equal(res.neighbours[0].id, 'p3.png', 'the exact caption is its own nearest text');
    assert.ok(Math.abs(res.neighbours[0].similarity - 1) < 1e-5);
  });

  it('prints a one-line error naming the missing folder', async () => {
    const missing = join(root, 'no-model');
    const r = await cli(['kb', 'build', '--pairs', join(root, 'pairs.csv'), '--encoder', `onnx:${missing}`, '--out', join(root, 'kb2')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`^retformer: ONNX CLIP folder ${missing} does not exist: .*clip-vit-base-patch16.*\\n$`));
  });

  // the CPU-only install (.npmrc onnxruntime-node-install=skip) has no CUDA provider library
  const cudaInstalled = existsSync(join(import.meta.dirname, '..', 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'));
  it('a CUDA device without the CUDA provider is one line, with the install hint (no ONNX Runtime log blocks)', { skip: cudaInstalled && 'the CUDA provider is installed' }, async () => {
    const r = await run(process.execPath, [BIN, 'kb', 'build', '--pairs', join(root, 'pairs.csv'), '--encoder', `onnx:${modelDir}`, '--out', join(root, 'kb-cuda')], {
      env: { ...process.env, RETFORMER_QUIET: '1', RETFORMER_ORT_DEVICE: 'cuda' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^retformer: ONNX CLIP folder .* \(variant fp32, device cuda\): cannot load: .*onnxruntime-node-install=cuda12.*\n$/);
  });
});
