/**
 * @file A typed wrapper over `tf.customGrad`, whose declared signature does not accept
 * functions with fixed tensor parameters.
 */
import * as tf from '@tensorflow/tfjs';

export type GradFn = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
type Body<A extends tf.Tensor[]> = (...args: [...A, tf.GradSaveFunc]) => { value: tf.Tensor; gradFunc: GradFn };

/** An op with a hand-written gradient: one gradient per tensor argument, in order. */
export function customOp<A extends tf.Tensor[]>(f: Body<A>): (...args: A) => tf.Tensor {
  return tf.customGrad(f as never) as unknown as (...args: A) => tf.Tensor;
}
