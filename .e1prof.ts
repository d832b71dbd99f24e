import { ModelConfigSchema } from './src/model/config.ts';
import { initParams, paramSpecs } from './src/model/params.ts';
import { initTf, tf } from './src/model/tf.ts';
import { Trainer } from './src/train/trainer.ts';
import { Rng } from './src/util/rng.ts';
await initTf();
const D = 256, C = 99, k = 32;
const config = ModelConfigSchema.parse({ width: 64, heads: 4, k });
const dims = { inputDim: D, classes: C };
const tr = new Trainer(config, dims, initParams(paramSpecs(config, dims), 1), { weightDecay: 0.1, microBatch: 128 });
const n = 128; const rng = new Rng(2);
const f = (len: number) => Float32Array.from({ length: len }, () => rng.normal() * 0.06);
const t = new Float32Array(n * C); for (let i = 0; i < n; i++) t[i * C + (i % C)] = 1;
const b = { n, query: f(n * D), imageTokens: f(n * (k + 1) * D), neighbourTexts: f(n * k * D), targets: t };
tr.step(b, 1e-3);
const info = await tf.profile(() => { tr.step(b, 1e-3); });
const agg = new Map<string, { ms: number; c: number }>();
let total = 0;
for (const kinfo of info.kernels) {
  const ms = await (kinfo.kernelTimeMs as number | Promise<number>);
  const key = kinfo.name + (kinfo.name.includes('MatMul') ? ' ' + JSON.stringify(kinfo.inputShapes) : '');
  const a = agg.get(key) ?? { ms: 0, c: 0 }; a.ms += ms as number; a.c++; agg.set(key, a); total += ms as number;
}
console.log('total kernel ms', total.toFixed(1), 'kernels', info.kernels.length);
for (const [kk, v] of [...agg].sort((x, y) => y[1].ms - x[1].ms).slice(0, 30)) console.log(v.ms.toFixed(1).padStart(7), String(v.c).padStart(4), kk);
