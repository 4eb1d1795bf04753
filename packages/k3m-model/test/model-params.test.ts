/**
 * Parameter names, shapes and counts: the golden state dict's 377 keys, the paper's 461.7 M
 * parameters for k3m-base (counted from shapes, never allocated), presets and config validation,
 * and `--init-from` with a tiny Hugging Face BERT file.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, f32 } from '@k3m-kit/core';
import { ownsMemory } from '@k3m-kit/core/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../src/backend.ts';
import { modelConfig, ModelConfigSchema } from '../src/model/config.ts';
import { countParameters, K3mParams, parameterSpec, TIED_DECODER } from '../src/model/params.ts';
import { loadHfBert, ParamArena } from '../src/model/param-arena.ts';
import { goldenDir, loadGoldenConfig } from '../src/testing.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = goldenDir(repoRoot);

beforeAll(async () => {
  await startBackend('wasm');
});

describe('parameters', () => {
  it('k3m-base has the paper\'s 461.7 M parameters (reference 4.8), counted without allocating', () => {
    const n = countParameters(modelConfig('k3m-base'));
    expect(Math.round(n / 1e5) / 10).toBe(461.7);
  });

  it('variables own their memory on wasm, from init, from values and from a state dict (the trainer reloads weights in place)', () => {
    const config = modelConfig('k3m-small', { vocab_size: 300 });
    const a = K3mParams.init(config, 1);
    const b = K3mParams.fromValues(config, (n) => a.get(n).dataSync() as Float32Array);
    const c = K3mParams.fromStateDict(config, new Map(parameterSpec(config).map((s) => [s.name, f32(s.shape, a.get(s.name).dataSync() as Float32Array)])));
    for (const p of [a, b, c]) {
      const vars = [...p.vars.values()];
      expect(vars.filter((v) => ownsMemory(v))).toHaveLength(vars.length);
      p.dispose();
    }
  });

  it('k3m-small is small', () => {
    expect(countParameters(modelConfig('k3m-small', { vocab_size: 3000 }))).toBeLessThan(15e6);
  });

  it('config validation names the key', () => {
    const r = ModelConfigSchema.safeParse({ ...modelConfig('k3m-small'), v_biattention_id: [0] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['v_biattention_id']);
  });

  it.skipIf(!dir)('the golden state dict: same 377 keys and shapes; a round trip keeps it', async () => {
    const config = await loadGoldenConfig(dir!);
    const sd = (await readSafetensors(join(dir!, 'weights.safetensors'))).tensors;
    const spec = parameterSpec(config);
    expect(spec.length).toBe(376);
    expect(countParameters(config)).toBe(1144710);
    expect(new Set([...spec.map((s) => s.name), TIED_DECODER])).toEqual(new Set(sd.keys()));
    for (const s of spec) expect(sd.get(s.name)!.shape).toEqual(s.shape);
    const p = K3mParams.fromStateDict(config, sd);
    const back = p.toStateDict();
    expect(back.size).toBe(377);
    for (const [k, t] of sd) expect(Buffer.from(back.get(k)!.bytes).equals(Buffer.from(t.bytes))).toBe(true);
    p.dispose();
  });

  it('--init-from maps a Hugging Face BERT file into the text stream and reports what loaded', () => {
    const config = modelConfig('k3m-small', { vocab_size: 50, hidden_size: 8, num_attention_heads: 2, intermediate_size: 16, bi_hidden_size: 8, bi_num_attention_heads: 2, v_hidden_size: 8, v_num_attention_heads: 2, v_intermediate_size: 16, max_position_embeddings: 64 });
    const p = ParamArena.init(config, 1);
    const t = (shape: number[], v: number) => f32(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v));
    const hf = new Map([
      ['bert.embeddings.word_embeddings.weight', t([50, 8], 0.5)],
      ['bert.embeddings.LayerNorm.gamma', t([8], 2)],
      ['bert.encoder.layer.1.attention.self.query.weight', t([8, 8], 0.25)],
      ['bert.encoder.layer.1.output.LayerNorm.beta', t([8], -1)],
      ['bert.pooler.dense.weight', t([8, 8], 1)],
      ['cls.predictions.bias', t([50], 0.125)],
      ['cls.predictions.decoder.weight', t([50, 8], 0.5)],
      ['bert.embeddings.position_embeddings.weight', t([512, 8], 1)],
    ]);
    const r = loadHfBert(p, hf);
    expect(r.loaded.sort()).toEqual(
      [
        'bert_tri.embeddings.word_embeddings.weight',
        'bert_tri.embeddings.LayerNorm.weight',
        'bert_tri.encoder_tri.layer.1.attention.self.query.weight',
        'bert_tri.encoder_tri.layer.1.output.LayerNorm.bias',
        'cls.predictions.bias',
      ].sort(),
    );
    expect(r.skipped.map((s) => s.name).sort()).toEqual(['bert.embeddings.position_embeddings.weight', 'bert.pooler.dense.weight', 'cls.predictions.decoder.weight']);
    expect(p.view('bert_tri.embeddings.LayerNorm.weight')[0]).toBe(2);
    expect(p.view('bert_tri.encoder_tri.layer.1.output.LayerNorm.bias')[0]).toBe(-1);
    // The arena starts from the same values as the variables of K3mParams.init.
    const vars = K3mParams.init(config, 1);
    const fresh = ParamArena.init(config, 1);
    for (const s of fresh.layout.slots) expect(Array.from(vars.get(s.name).dataSync())).toEqual(Array.from(fresh.view(s.name)));
    vars.dispose();
  });
});
