/**
 * AdamW against a hand-computed pytorch_transformers update (eps before bias correction,
 * decoupled decay after the step, the reference's exclusion rule), over any split of the
 * elements (as the data-parallel workers split it), the warm-up/decay schedule, and gradient
 * clipping.
 */
import { describe, expect, it } from 'vitest';
import { modelConfig } from '../src/model/config.ts';
import { ArenaLayout } from '../src/model/param-arena.ts';
import { AdamState, adamwUpdate, clipFactor, decays, REFERENCE_ADAMW, sumOfSquares, warmupLinear } from '../src/train/adamw.ts';

/** A two-tensor-kind slice of a real layout: a decayed weight, a bias, and one never reached. */
const layout = new ArenaLayout(modelConfig('k3m-small', { vocab_size: 8, hidden_size: 4, num_attention_heads: 2, intermediate_size: 4, v_hidden_size: 4, v_num_attention_heads: 2, v_intermediate_size: 4, bi_hidden_size: 4, bi_num_attention_heads: 2, v_feature_size: 3, v_target_size: 3, max_position_embeddings: 8 }));
const W = layout.byName.get('bert_tri.encoder_tri.layer.0.attention.self.query.weight')!;
const Bias = layout.byName.get('bert_tri.encoder_tri.layer.0.attention.self.query.bias')!;
const Frozen = layout.byName.get('bert_tri.t_pooler.dense.weight')!;

describe('AdamW (reference 7.2)', () => {
  it('two steps equal the hand-computed pytorch_transformers update, decay only where the rule says, for any split of the elements', () => {
    const lr = 0.1;
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
    const p0 = Float32Array.from({ length: layout.total }, (_, i) => Math.sin(i + 1));
    const g1 = Float32Array.from({ length: layout.total }, (_, i) => Math.cos(3 * i) * 0.4);
    const g2 = Float32Array.from({ length: layout.total }, (_, i) => Math.sin(5 * i) * 0.3);
    const has = new Uint8Array(layout.slots.length).fill(1);
    has[Frozen.index] = 0;
    const run = (splits: number) => {
      const p = p0.slice();
      const state = AdamState.create(layout);
      for (const g of [g1, g2]) {
        layout.slots.forEach((s) => has[s.index] && state.steps[s.index]!++);
        for (let k = 0; k < splits; k++) {
          // gradients given at twice their size and scaled by 1/2, as the mean of two micro-batches
          const twice = g.map((x) => 2 * x);
          adamwUpdate(p, state, { grads: twice, scale: 0.5, hasGrad: has, lr }, Math.floor((layout.total * k) / splits), Math.floor((layout.total * (k + 1)) / splits));
        }
      }
      return { p, state };
    };
    const { p, state } = run(1);
    for (const [slot, decay] of [[W, true], [Bias, false]] as const) {
      for (const j of [slot.offset, slot.offset + slot.size - 1]) expect(p[j]).toBeCloseTo(expected(p0[j]!, [g1[j]!, g2[j]!], decay), 6);
    }
    // No gradient: untouched, not even decayed (PyTorch skips p.grad is None), and no state.
    expect(Array.from(p.subarray(Frozen.offset, Frozen.offset + Frozen.size))).toEqual(Array.from(p0.subarray(Frozen.offset, Frozen.offset + Frozen.size)));
    const sd = state.stateDict();
    expect(sd.steps[W.name]).toBe(2);
    expect(sd.steps[Frozen.name]).toBeUndefined();
    expect(sd.tensors.has(`exp_avg.${Frozen.name}`)).toBe(false);
    // Split in three element ranges (cutting through tensors), the result is the same bits.
    expect(Buffer.from(run(3).p.buffer).equals(Buffer.from(p.buffer))).toBe(true);
    // The state survives a round trip through its state dict.
    const back = AdamState.create(layout);
    back.load(sd.tensors, sd.steps);
    expect(Array.from(back.m)).toEqual(Array.from(state.m));
    expect(Array.from(back.steps)).toEqual(Array.from(state.steps));
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

  it('clipping: Σg² adds up over element ranges to the global norm, and the factor scales it to the bound', () => {
    const g = Float32Array.from({ length: layout.total }, (_, i) => (i === W.offset ? 3 : i === Bias.offset ? 4 : i === Frozen.offset ? 100 : 0));
    const has = new Uint8Array(layout.slots.length).fill(1);
    has[Frozen.index] = 0;
    const half = Math.floor(layout.total / 2);
    const norm = Math.sqrt(sumOfSquares(g, layout, has, 0, half) + sumOfSquares(g, layout, has, half));
    expect(norm).toBeCloseTo(5, 6);
    expect(clipFactor(norm, 1) * 3).toBeCloseTo(0.6, 5);
    expect(clipFactor(norm, 1) * 4).toBeCloseTo(0.8, 5);
    expect(clipFactor(norm, 10)).toBe(1);
  });
});
