import { ModelConfigSchema } from './src/model/config.ts';
import { initParams, paramSpecs } from './src/model/params.ts';
import { initTf, tf } from './src/model/tf.ts';
import { Trainer } from './src/train/trainer.ts';
import { Rng } from './src/util/rng.ts';
await initTf();
const D = 256, C = 99, k = 32;
for (const [width, heads, mb] of JSON.parse(process.argv[2] ?? '[[64,4,128]]')) {
  const config = ModelConfigSchema.parse({ width, heads, k });
  const dims = { inputDim: D, classes: C };
  const tr = new Trainer(config, dims, initParams(paramSpecs(config, dims), 1), { weightDecay: 0.1, microBatch: mb });
  const n = 256; const rng = new Rng(2);
  const f = (len: number) => Float32Array.from({ length: len }, () => rng.normal() * 0.06);
  const t = new Float32Array(n * C); for (let i = 0; i < n; i++) t[i * C + (i % C)] = 1;
  const b = { n, query: f(n * D), imageTokens: f(n * (k + 1) * D), neighbourTexts: f(n * k * D), targets: t };
  tr.step(b, 1e-3);
  const before = tf.memory().numTensors;
  const t0 = performance.now(); let loss = 0; const steps = 3;
  for (let s = 0; s < steps; s++) loss = tr.step(b, 1e-3);
  const sec = (performance.now() - t0) / 1000;
  console.log(`d=${width} h=${heads} mb=${mb}: ${(steps * n / sec).toFixed(1)} samples/s loss ${loss.toFixed(3)} tensors ${before}->${tf.memory().numTensors}`);
  tr.dispose();
}
