import { initTf, tf } from './src/model/tf.ts';
await initTf();
function time(label: string, flops: number, f: () => tf.Tensor) {
  for (let i = 0; i < 2; i++) f().dispose();
  const t0 = performance.now(); const R = 10;
  for (let i = 0; i < R; i++) { const r = f(); r.dataSync(); r.dispose(); }
  const ms = (performance.now() - t0) / R;
  console.log(label.padEnd(50), ms.toFixed(2), 'ms', (flops / ms / 1e6).toFixed(2), 'GFLOP/s');
}
const n = 128;
const q = tf.randomNormal([n, 33, 64]); const k = tf.randomNormal([n, 33, 64]); const kt = tf.randomNormal([n, 64, 33]);
time('bmm q x kt', n * 33 * 33 * 64 * 2, () => tf.matMul(q, kt));
time('bmm q x k transposeB', n * 33 * 33 * 64 * 2, () => tf.matMul(q, k, false, true));
const a = tf.randomNormal([n, 33, 33]);
time('bmm a x v', n * 33 * 33 * 64 * 2, () => tf.matMul(a, k));
time('bmm a^T x v (transposeA)', n * 33 * 33 * 64 * 2, () => tf.matMul(a, k, true, false));
const x = tf.randomNormal([4224, 256]); const w3 = tf.randomNormal([256, 64]);
time('2d [4224,256]x[256,64]', 4224 * 64 * 256 * 2, () => tf.matMul(x, w3));
time('transpose [128,33,64]->[128,64,33]', 0, () => tf.transpose(q, [0, 2, 1]));
