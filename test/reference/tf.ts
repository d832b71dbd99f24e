import type { ParamValues } from '../../src/model/params.ts';
import { initTf, tf } from '../../src/util/tfjs.ts';

/**
 * tfjs pieces of the reference RetFormer (test/reference/retformer.ts): the ops with hand-written
 * gradients, parameters as variables, and the soft-target cross-entropy. The product runs ONNX
 * graphs (src/model/onnx/); these exist to hold those graphs to tfjs's maths and autodiff.
 */
export { initTf, tf };

/**
 * matMul whose gradient materialises the transposes instead of using matMul's transpose flags
 * (which run ~10x slower on wasm). Works for 2-D [m,k]x[k,n] and batched 3-D [b,m,k]x[b,k,n].
 */
export const matMul = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const a = args[0] as tf.Tensor;
  const b = args[1] as tf.Tensor;
  const save = args[2] as tf.GradSaveFunc;
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved;
      const perm = sa.rank === 3 ? [0, 2, 1] : [1, 0];
      return [tf.matMul(dy, tf.transpose(sb, perm)), tf.matMul(tf.transpose(sa, perm), dy)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/**
 * x @ w where x is a constant input (embeddings): the gradient flows to w only, so the unused
 * input gradient (a [rows, D] product) is never computed.
 */
export function matMulConstInput(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const wt = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    save([x]); // kept for the backward pass even when x's own scope has ended
    return {
      value: tf.matMul(x, wt),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.matMul(tf.transpose(saved[0]), dy)],
    };
  }) as (w: tf.Tensor) => tf.Tensor;
  return op(w);
}

/** GELU, tanh approximation (tfjs core has no gelu op). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** Layer norm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const { mean, variance } = tf.moments(x, axis, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta);
  });
}

/** Trainable tfjs variables for the given values. */
export function toVariables(values: ParamValues): Map<string, tf.Variable> {
  const vars = new Map<string, tf.Variable>();
  for (const [name, v] of values) vars.set(name, tf.tidy(() => tf.variable(tf.tensor(v.data, v.shape, 'float32'), true)));
  return vars;
}

/**
 * Soft-target cross-entropy: mean over rows of -sum_c t_c log softmax(f + adj)_c.
 * `logitAdjust` ([C], optional) is LACE's tau_la * log(prior_c), added during training only.
 */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D, logitAdjust?: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const f = logitAdjust ? tf.add(logits, logitAdjust) : logits;
    return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(f)), 1))) as tf.Scalar;
  });
}
