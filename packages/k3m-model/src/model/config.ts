/**
 * @file The model configuration: the original's BERT-style config keys (snake_case, as in
 * `config/bert_base_6layer_6conect.json` and `k3m-golden/config.json`), so its files load
 * unchanged and ours load in the original. Unknown keys are kept and ignored (reference 8 #20).
 * Presets: `k3m-base` (the paper, ≈461.7 M parameters), `k3m-medium` (105 M, the largest that
 * trains on wasm) and `k3m-small` (CPU minutes).
 */
import { z } from 'zod';

export const ModelConfigSchema = z
  .object({
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    hidden_act: z.literal('gelu').default('gelu'),
    hidden_dropout_prob: z.number().min(0).max(1).default(0.1),
    attention_probs_dropout_prob: z.number().min(0).max(1).default(0.1),
    max_position_embeddings: z.number().int().positive().default(512),
    type_vocab_size: z.number().int().positive().default(2),
    initializer_range: z.number().positive().default(0.02),
    v_feature_size: z.number().int().positive().default(2048),
    v_hidden_size: z.number().int().positive(),
    v_num_hidden_layers: z.number().int().positive(),
    v_num_attention_heads: z.number().int().positive(),
    v_intermediate_size: z.number().int().positive(),
    v_attention_probs_dropout_prob: z.number().min(0).max(1).default(0.1),
    v_hidden_act: z.literal('gelu').default('gelu'),
    v_hidden_dropout_prob: z.number().min(0).max(1).default(0.1),
    v_biattention_id: z.array(z.number().int().nonnegative()),
    t_biattention_id: z.array(z.number().int().nonnegative()),
    v_target_size: z.number().int().positive().default(1601),
    bi_hidden_size: z.number().int().positive(),
    bi_num_attention_heads: z.number().int().positive(),
    layer_norm_eps: z.number().positive().default(1e-12),
  })
  .loose()
  .superRefine((c, ctx) => {
    const fail = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.v_biattention_id.length !== c.t_biattention_id.length) fail('v_biattention_id', 'must have as many entries as t_biattention_id');
    const mono = (a: number[]) => a.every((v, i) => i === 0 || v >= a[i - 1]!);
    if (!mono(c.v_biattention_id) || c.v_biattention_id.some((v) => v > c.v_num_hidden_layers)) {
      fail('v_biattention_id', `must be non-decreasing layer indices <= v_num_hidden_layers (${c.v_num_hidden_layers})`);
    }
    if (!mono(c.t_biattention_id) || c.t_biattention_id.some((v) => v > c.num_hidden_layers)) {
      fail('t_biattention_id', `must be non-decreasing layer indices <= num_hidden_layers (${c.num_hidden_layers})`);
    }
    const div = (k: string, a: number, b: number) => a % b !== 0 && fail(k, `${a} is not divisible by the head count ${b}`);
    div('hidden_size', c.hidden_size, c.num_attention_heads);
    div('hidden_size', c.hidden_size, c.bi_num_attention_heads);
    div('v_hidden_size', c.v_hidden_size, c.v_num_attention_heads);
    div('bi_hidden_size', c.bi_hidden_size, c.bi_num_attention_heads);
  });

export type ModelConfig = z.output<typeof ModelConfigSchema>;

const BASE = {
  vocab_size: 21128,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  v_feature_size: 2048,
  v_hidden_size: 1024,
  v_num_hidden_layers: 6,
  v_num_attention_heads: 8,
  v_intermediate_size: 1024,
  v_biattention_id: [0, 1, 2, 3, 4, 5],
  t_biattention_id: [6, 7, 8, 9, 10, 11],
  v_target_size: 1601,
  bi_hidden_size: 1024,
  bi_num_attention_heads: 8,
};

/**
 * `k3m-small`: text 128 wide x 4 layers (2 before the co-attention), image 128 x 2, two
 * co-attention layers per pair. `vocab_size`, `v_feature_size` and `v_target_size` are set from
 * the data (vocabulary, feature width, detector classes) when a run starts.
 */
const SMALL = {
  ...BASE,
  hidden_size: 128,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 256,
  v_hidden_size: 128,
  v_num_hidden_layers: 2,
  v_num_attention_heads: 4,
  v_intermediate_size: 256,
  v_biattention_id: [0, 1],
  t_biattention_id: [2, 3],
  bi_hidden_size: 128,
  bi_num_attention_heads: 4,
};

/**
 * `k3m-medium`: k3m-base's layout at 512 wide (text 6 layers, the last 3 with co-attention; image
 * 3 layers; 8 heads; FFN 2048 text, 1024 image): 105 M parameters with a 21128-word vocabulary,
 * the largest preset that trains on the wasm back end (each worker's heap is at most 4 GiB: shares
 * of at most 2 items per worker).
 */
const MEDIUM = {
  ...BASE,
  hidden_size: 512,
  num_hidden_layers: 6,
  num_attention_heads: 8,
  intermediate_size: 2048,
  v_hidden_size: 512,
  v_num_hidden_layers: 3,
  v_num_attention_heads: 8,
  v_intermediate_size: 1024,
  v_biattention_id: [0, 1, 2],
  t_biattention_id: [3, 4, 5],
  bi_hidden_size: 512,
  bi_num_attention_heads: 8,
};

export const PRESETS = Object.freeze({ 'k3m-base': BASE, 'k3m-medium': MEDIUM, 'k3m-small': SMALL });
export type PresetName = keyof typeof PRESETS;

/** A preset, optionally overridden key by key, validated. */
export function modelConfig(preset: PresetName, overrides: Record<string, unknown> = {}): ModelConfig {
  return ModelConfigSchema.parse({ ...PRESETS[preset], ...overrides });
}

/** Reads a BERT-style config object (e.g. `k3m-golden/config.json`'s `config`, or the whole file). */
export function parseModelConfig(json: unknown): ModelConfig {
  const obj = (json && typeof json === 'object' && 'config' in json ? (json as { config: unknown }).config : json) as Record<string, unknown>;
  return ModelConfigSchema.parse(obj);
}
