import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };

let ready: Promise<void> | undefined;

/**
 * Initialise tfjs on the wasm backend once per process (single-threaded in Node; ~25-33 GFLOP/s for
 * plain 2-D matMul, ten times the pure-JS cpu backend). Shared by the embedded encoder's linear
 * algebra and the model's tfjs reference forward.
 */
export function initTf(): Promise<void> {
  ready ??= (async () => {
    tf.env().set('IS_NODE', true);
    const ok = await tf.setBackend('wasm');
    if (!ok) throw new Error('tfjs wasm backend failed to initialise');
    await tf.ready();
  })();
  return ready;
}
