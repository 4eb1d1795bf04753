/**
 * Gradients that keep shapes, not tensors (src/ops/shape-saves.ts), and dropout that keeps only
 * its mask: the same gradients bit for bit as TensorFlow.js's stock ones, less memory held for
 * the backward pass. The back end starts with the model's kernels but not its gradients, so the
 * first gradients are the stock ones.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@k3m-kit/core/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { modelConfig } from '../src/model/config.ts';
import { forward } from '../src/model/k3m.ts';
import { K3mParams } from '../src/model/params.ts';
import { replaceKernels } from '../src/ops/kernels.ts';
import { dropout, ItemStreams } from '../src/ops/nn.ts';
import { saveShapesOnly, SHAPE_ONLY_KERNELS } from '../src/ops/shape-saves.ts';
import { syntheticBatch } from '../src/testing.ts';

interface TapeNode {
  kernelName: string;
  saved?: tf.Tensor[];
}
const activeTape = () => (tf.engine() as unknown as { state: { activeTape: TapeNode[] | null } }).state.activeTape ?? [];

/** Bytes of the distinct tensor memory the tape keeps for the backward pass, all and by shape-only kernels. */
function savedBytes(tape: TapeNode[]): { all: number; shapeOnly: number } {
  const seen = new Set<object>();
  let all = 0;
  let shapeOnly = 0;
  for (const node of tape)
    for (const t of node.saved ?? []) {
      if (SHAPE_ONLY_KERNELS.includes(node.kernelName)) shapeOnly += 4 * t.size;
      if (seen.has(t.dataId)) continue;
      seen.add(t.dataId);
      all += 4 * t.size;
    }
  return { all, shapeOnly };
}

/** The engine's gradients of a k3m-small training step (2 items, dropout on) and what its tape kept, minus the weights. */
function smallStep() {
  const params = K3mParams.init(modelConfig('k3m-small', { vocab_size: 21128 }), 3);
  const batch = syntheticBatch(3, { batchSize: 2, vocabSize: 21128, featureDim: 2048, numClasses: 1601, regions: 36, titleLen: 36, pvLen: 48 });
  const vars = [...params.vars.values()];
  const weights = new Set(vars.map((v) => v.dataId));
  let kept = { all: 0, shapeOnly: 0 };
  const { value, grads } = tf.engine().gradients(
    () => {
      const loss = forward(params, batch, { fusionMode: 1, training: true, rng: new ItemStreams(3, 0, 2) }).loss! as tf.Scalar;
      kept = savedBytes(activeTape().map((n) => ({ ...n, saved: n.saved?.filter((t) => !weights.has(t.dataId)) })));
      return loss;
    },
    vars,
    undefined,
    true,
  );
  const out = { loss: value.dataSync()[0]!, grads: grads.map((g) => (g ? (g.dataSync() as Float32Array).slice() : undefined)), kept };
  [value, ...grads].forEach((t) => t?.dispose());
  params.dispose();
  return out;
}

describe('shape-only saves', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
    replaceKernels();
  });

  it("give a k3m-small step the stock gradients bit for bit, and the tape keeps none of the shape-only kernels' inputs: less memory held for the backward pass", () => {
    const stock = smallStep();
    expect(stock.kept.shapeOnly).toBeGreaterThan(0);
    saveShapesOnly();
    saveShapesOnly(); // idempotent
    const shapes = smallStep();
    expect(shapes.loss).toBe(stock.loss);
    expect(shapes.grads.length).toBe(stock.grads.length);
    shapes.grads.forEach((g, i) => {
      const want = stock.grads[i];
      expect(g === undefined, `gradient ${i}`).toBe(want === undefined);
      if (g && want) expect(Buffer.from(g.buffer).equals(Buffer.from(want.buffer)), `gradient ${i} bit for bit`).toBe(true);
    });
    expect(shapes.kept.shapeOnly).toBe(0);
    // What only those kernels held is freed: the rest is what the other gradients need.
    expect(shapes.kept.all).toBeLessThan(stock.kept.all);
    console.log(`k3m-small, 2 items: the tape keeps ${(stock.kept.all / 2 ** 20).toFixed(1)} MB stock, ${(shapes.kept.all / 2 ** 20).toFixed(1)} MB with shape-only saves`);
  });

  it('a gradient of a shape-only kernel whose call was not recorded says so', () => {
    saveShapesOnly();
    // The engine passes the call's attributes to the gradient; a call that bypassed the engine's runKernel has none.
    const grad = tf.getGradient('Reshape')!;
    expect(() => grad.gradFunc(tf.ones([2, 3]), [], { shape: [2, 3] })).toThrow(/Reshape kernel ran without its input shapes recorded/);
  });
});

describe('dropout', () => {
  it('its gradient is dy times the mask, the kernel gradient of tf.mul bit for bit, and its tape keeps the mask, not the input', async () => {
    await selectBackend('wasm');
    replaceKernels();
    const x = tf.variable(tf.randomNormal([6, 40], 0, 1, 'float32', 5));
    const c = tf.randomNormal([6, 40], 0, 1, 'float32', 6);
    let kept: tf.Tensor[] = [];
    let out: tf.Tensor | undefined;
    const { value, grads } = tf.engine().gradients(
      () => {
        out = tf.keep(dropout(x, 0.3, new ItemStreams(4, 0, 6)));
        kept = activeTape().flatMap((n) => n.saved ?? []);
        return tf.sum(tf.mul(out, c));
      },
      [x],
    );
    // dy · mask, the mask read off the output: 0 where dropped, else 1/(1-p).
    const want = tf.tidy(() => tf.mul(c, tf.where(tf.equal(out!, 0), tf.zerosLike(x), tf.fill(x.shape, 1 / 0.7))));
    expect(Buffer.from((grads[0]!.dataSync() as Float32Array).buffer).equals(Buffer.from((want.dataSync() as Float32Array).buffer))).toBe(true);
    // The tape keeps x only where the loss's product needs it, not for the dropout: nothing saved shares x's memory.
    expect(kept.some((t) => t.dataId === x.dataId)).toBe(false);
    [value, grads[0]!, out!, want, x, c].forEach((t) => t.dispose());
  });
});
