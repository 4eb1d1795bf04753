/**
 * AdamW against a hand-computed pytorch_transformers update (eps before bias correction,
 * decoupled decay after the step, the reference's exclusion rule), the warm-up/decay schedule,
 * and gradient clipping.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../src/backend.ts';
import { AdamW, clipByGlobalNorm, decays, REFERENCE_ADAMW, warmupLinear } from '../src/train/adamw.ts';

beforeAll(async () => {
  await startBackend('wasm');
});

describe('AdamW (reference 7.2)', () => {
  it('two steps equal the hand-computed pytorch_transformers update, decay only where the rule says', () => {
    const w0 = [0.5, -1.5];
    const b0 = [0.25];
    const params = new Map([
      ['layer.dense.weight', tf.variable(tf.tensor1d(w0))],
      ['layer.dense.bias', tf.variable(tf.tensor1d(b0))],
      ['frozen.weight', tf.variable(tf.tensor1d([3]))],
    ]);
    const opt = new AdamW(REFERENCE_ADAMW);
    const lr = 0.1;
    const g1 = [0.2, -0.4];
    const g2 = [-0.1, 0.3];
    opt.step(params, new Map([['layer.dense.weight', tf.tensor1d(g1)], ['layer.dense.bias', tf.tensor1d([1])]]), lr);
    opt.step(params, new Map([['layer.dense.weight', tf.tensor1d(g2)], ['layer.dense.bias', tf.tensor1d([-2])]]), lr);

    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = REFERENCE_ADAMW;
    const expected = (p0: number, gs: number[], decay: boolean) => {
      let p = p0;
      let m = 0;
      let v = 0;
      gs.forEach((g, i) => {
        const t = i + 1;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        const step = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
        p -= (step * m) / (Math.sqrt(v) + eps);
        if (decay) p -= lr * wd * p;
      });
      return p;
    };
    const w = params.get('layer.dense.weight')!.dataSync();
    expect(w[0]).toBeCloseTo(expected(w0[0]!, [g1[0]!, g2[0]!], true), 6);
    expect(w[1]).toBeCloseTo(expected(w0[1]!, [g1[1]!, g2[1]!], true), 6);
    expect(params.get('layer.dense.bias')!.dataSync()[0]).toBeCloseTo(expected(b0[0]!, [1, -2], false), 6);
    // No gradient: untouched, not even decayed (PyTorch skips p.grad is None).
    expect(params.get('frozen.weight')!.dataSync()[0]).toBe(3);
    expect(opt.stateDict().steps).toEqual({ 'layer.dense.weight': 2, 'layer.dense.bias': 2 });
  });

  it('weight decay exclusions: bias and LayerNorm.{weight,bias}, but the co-attention LayerNorm1/2 weights decay', () => {
    expect(decays('bert_tri.encoder_tri.layer.0.attention.self.query.weight')).toBe(true);
    expect(decays('bert_tri.encoder_tri.layer.0.attention.self.query.bias')).toBe(false);
    expect(decays('bert_tri.embeddings.LayerNorm.weight')).toBe(false);
    expect(decays('bert_tri.encoder_tri.c_layer.0.biOutput.LayerNorm1.weight')).toBe(true);
    expect(decays('bert_tri.encoder_tri.c_layer.0.biOutput.LayerNorm2.bias')).toBe(false);
  });

  it('schedule: linear warm-up over 10% then linear decay to 0; the first update has factor 0', () => {
    expect(warmupLinear(0, 100)).toBe(0);
    expect(warmupLinear(5, 100)).toBeCloseTo(0.5);
    expect(warmupLinear(10, 100)).toBeCloseTo(1);
    expect(warmupLinear(55, 100)).toBeCloseTo(0.5);
    expect(warmupLinear(100, 100)).toBe(0);
  });

  it('clipping scales the gradients to the global norm', () => {
    const grads = new Map([
      ['a', tf.tensor1d([3, 0])],
      ['b', tf.tensor1d([4])],
    ]);
    expect(clipByGlobalNorm(grads, 1)).toBeCloseTo(5);
    expect(Array.from(grads.get('a')!.dataSync())[0]).toBeCloseTo(0.6, 5);
    expect(Array.from(grads.get('b')!.dataSync())[0]).toBeCloseTo(0.8, 5);
  });
});
