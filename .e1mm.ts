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
for (const h of [1, 2, 4]) {
  const dh = 64 / h;
  const q = tf.randomNormal([n * h, 33, dh]); const kt = tf.randomNormal([n * h, dh, 33]);
  time(`bmm scores h=${h}`, n * h * 33 * 33 * dh * 2, () => tf.matMul(q, kt));
  const a = tf.randomNormal([n * h, 33, 33]); const v = tf.randomNormal([n * h, 33, dh]);
  time(`bmm AV h=${h}`, n * h * 33 * 33 * dh * 2, () => tf.matMul(a, v));
}
const Q = tf.randomNormal([n, 33, 1, 64]); const K = tf.randomNormal([n, 1, 33, 64]);
time('elementwise scores h=4 (mul+sum)', n * 33 * 33 * 64 * 2, () => tf.tidy(() => tf.mul(Q, K).reshape([n * 33 * 33 * 4, 16]).sum(1)));
const Hs = tf.randomNormal([64, 4]);
time('elementwise scores h=4 (mul+mm)', n * 33 * 33 * 64 * 2, () => tf.tidy(() => tf.matMul(tf.mul(Q, K).reshape([n * 33 * 33, 64]), Hs)));
const x = tf.randomNormal([4224, 64]); const w = tf.randomNormal([64, 64]); const w2 = tf.randomNormal([64, 256]);
time('2d [4224,64]x[64,64]', 4224 * 64 * 64 * 2, () => tf.matMul(x, w));
time('2d [4224,64]x[64,256]', 4224 * 64 * 256 * 2, () => tf.matMul(x, w2));
const x2 = tf.randomNormal([4224, 256]); const w3 = tf.randomNormal([256, 64]);
time('2d [4224,256]x[256,64]', 4224 * 64 * 256 * 2, () => tf.matMul(x2, w3));
const xt = tf.randomNormal([64, 4224]);
time('2d [64,4224]x[4224,64]', 4224 * 64 * 64 * 2, () => tf.matMul(xt, x));
time('2d [4224,64]x[64,192] (fused qkv)', 4224 * 64 * 192 * 2, () => tf.matMul(x, tf.randomNormal([64, 192])));
