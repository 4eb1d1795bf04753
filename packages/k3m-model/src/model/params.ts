/**
 * @file The parameters, named exactly as the original PyTorch state dict (design.md 6.4,
 * reference 4.8): `bert_tri.…`, `cls.…` and the top-level fusion/SAM layers. Linear weights keep
 * PyTorch's [out, in] layout, so a state dict moves both ways without transposes.
 * `cls.predictions.decoder.weight` is the word-embedding matrix (tied): one variable, two keys.
 * Every allocated-but-unused tensor of the original (q_dense*, poolers, seq_relationship,
 * map_individual_to_bi, soft_* in modes ≠ 2; reference 8 #15) is kept for checkpoint
 * compatibility, so a state dict has the original's 377 keys for the golden config.
 */
import * as tf from '@tensorflow/tfjs';
import { f32, toFloat32, type RawTensor } from '@k3m-kit/core';
import type { ModelConfig } from './config.ts';
import { Rng } from '@k3m-kit/core';

type Init = 'normal' | 'zeros' | 'ones' | 'torch-weight' | 'torch-bias';
export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /** fan-in for PyTorch's default Linear init (struc_* layers, reference 8 #16) */
  fanIn?: number;
}

export const TIED_DECODER = 'cls.predictions.decoder.weight';
export const WORD_EMBEDDINGS = 'bert_tri.embeddings.word_embeddings.weight';

/** Parameter specs in the original's state-dict order (the tied decoder excluded). */
export function parameterSpec(c: ModelConfig): ParamSpec[] {
  const out: ParamSpec[] = [];
  const lin = (name: string, o: number, i: number, torchInit = false) => {
    out.push({ name: `${name}.weight`, shape: [o, i], init: torchInit ? 'torch-weight' : 'normal', fanIn: i });
    out.push({ name: `${name}.bias`, shape: [o], init: torchInit ? 'torch-bias' : 'zeros', fanIn: i });
  };
  const ln = (name: string, d: number) => {
    out.push({ name: `${name}.weight`, shape: [d], init: 'ones' });
    out.push({ name: `${name}.bias`, shape: [d], init: 'zeros' });
  };
  const emb = (name: string, n: number, d: number) => out.push({ name: `${name}.weight`, shape: [n, d], init: 'normal' });
  const H = c.hidden_size;
  const vH = c.v_hidden_size;
  const bi = c.bi_hidden_size;
  const p = 'bert_tri';
  emb(`${p}.embeddings.word_embeddings`, c.vocab_size, H);
  emb(`${p}.embeddings.position_embeddings`, c.max_position_embeddings, H);
  emb(`${p}.embeddings.token_type_embeddings`, c.type_vocab_size, H);
  ln(`${p}.embeddings.LayerNorm`, H);
  lin(`${p}.v_embeddings.image_embeddings`, vH, c.v_feature_size);
  lin(`${p}.v_embeddings.image_location_embeddings`, vH, 5);
  ln(`${p}.v_embeddings.LayerNorm`, vH);
  const layer = (name: string, d: number, inter: number) => {
    for (const k of ['query', 'key', 'value']) lin(`${name}.attention.self.${k}`, d, d);
    lin(`${name}.attention.output.dense`, d, d);
    ln(`${name}.attention.output.LayerNorm`, d);
    lin(`${name}.intermediate.dense`, inter, d);
    lin(`${name}.output.dense`, d, inter);
    ln(`${name}.output.LayerNorm`, d);
  };
  for (let i = 0; i < c.num_hidden_layers; i++) layer(`${p}.encoder_tri.layer.${i}`, H, c.intermediate_size);
  for (let i = 0; i < c.v_num_hidden_layers; i++) layer(`${p}.encoder_tri.v_layer.${i}`, vH, c.v_intermediate_size);
  const coLayer = (name: string, a: number, b: number, biD: number, aInter: number, bInter: number) => {
    for (const k of ['query1', 'key1', 'value1']) lin(`${name}.biattention.${k}`, biD, a);
    for (const k of ['query2', 'key2', 'value2']) lin(`${name}.biattention.${k}`, biD, b);
    lin(`${name}.biOutput.dense1`, a, biD);
    ln(`${name}.biOutput.LayerNorm1`, a);
    lin(`${name}.biOutput.q_dense1`, a, biD);
    lin(`${name}.biOutput.dense2`, b, biD);
    ln(`${name}.biOutput.LayerNorm2`, b);
    lin(`${name}.biOutput.q_dense2`, b, biD);
    lin(`${name}.v_intermediate.dense`, aInter, a);
    lin(`${name}.v_output.dense`, a, aInter);
    ln(`${name}.v_output.LayerNorm`, a);
    lin(`${name}.t_intermediate.dense`, bInter, b);
    lin(`${name}.t_output.dense`, b, bInter);
    ln(`${name}.t_output.LayerNorm`, b);
  };
  const nCo = c.v_biattention_id.length;
  for (let k = 0; k < nCo; k++) coLayer(`${p}.encoder_tri.c_layer.${k}`, vH, H, bi, c.v_intermediate_size, c.intermediate_size);
  for (let k = 0; k < nCo; k++) coLayer(`${p}.encoder_tri.c_layer_pv_v.${k}`, vH, H, bi, c.v_intermediate_size, c.intermediate_size);
  // The title↔PV stack is text-sized on both sides, its PV FFN named v_* (golden README).
  for (let k = 0; k < nCo; k++) coLayer(`${p}.encoder_tri.c_layer_pv_t.${k}`, H, H, H, c.intermediate_size, c.intermediate_size);
  lin(`${p}.t_pooler.dense`, bi, H);
  lin(`${p}.v_pooler.dense`, bi, vH);
  out.push({ name: 'cls.predictions.bias', shape: [c.vocab_size], init: 'zeros' });
  lin('cls.predictions.transform.dense', H, H);
  ln('cls.predictions.transform.LayerNorm', H);
  lin('cls.seq_relationship', 2, H);
  lin('cls.imagePredictions.transform.dense', vH, vH);
  ln('cls.imagePredictions.transform.LayerNorm', vH);
  lin('cls.imagePredictions.decoder', c.v_target_size, vH);
  lin('map_individual_to_bi', bi, H);
  lin('map_bi_to_individual', H, vH);
  for (const [m, d] of [['v', vH], ['t', H], ['pv', H]] as const) {
    for (const k of ['self', 'cross1', 'cross2']) lin(`score_${k}_${m}`, d, 3 * d);
  }
  for (const [m, d] of [['v', vH], ['t', H], ['pv', H]] as const) lin(`soft_${m}`, d, 3 * d);
  lin('struc_w1', H, 3 * H, true);
  lin('struc_w2', 1, H, true);
  lin('struc_w3', H, H, true);
  lin('struc_w_loss', 2, H, true);
  return out;
}

/** Unique parameters (the tied matrix once), computed from shapes without allocating anything. */
export function countParameters(c: ModelConfig): number {
  return parameterSpec(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** Hands each parameter's initial values to `take`, in spec order, all drawn from one stream seeded `seed`. */
export function initialValues(config: ModelConfig, seed: number, take: (s: ParamSpec, values: Float32Array) => void): void {
  const rng = new Rng(seed);
  for (const s of parameterSpec(config)) take(s, initValues(s, rng, config.initializer_range));
}

function initValues(s: ParamSpec, rng: Rng, std: number): Float32Array {
  const n = s.shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  const bound = 1 / Math.sqrt(s.fanIn ?? 1);
  switch (s.init) {
    case 'ones':
      v.fill(1);
      break;
    case 'normal':
      for (let i = 0; i < n; i++) v[i] = rng.normal() * std;
      break;
    case 'torch-weight':
    case 'torch-bias':
      for (let i = 0; i < n; i++) v[i] = (rng.next() * 2 - 1) * bound;
      break;
    case 'zeros':
      break;
  }
  return v;
}

/** The model's variables by original name. */
/** What the forward pass reads: the config and each parameter's tensor by name. */
export interface ModelParams {
  readonly config: ModelConfig;
  get(name: string): tf.Tensor;
}

/** Parameters over the given tensors (e.g. one data-parallel share's copies of the variables). */
export function tensorParams(config: ModelConfig, tensors: ReadonlyMap<string, tf.Tensor>): ModelParams {
  return {
    config,
    get: (name) => {
      const t = tensors.get(name);
      if (!t) throw new Error(`no parameter ${name}`);
      return t;
    },
  };
}

/**
 * A trainable variable holding `values`. The variable takes the tensor's memory and the tensor is
 * released: left alive it kept a second reference, so the variable never owned its memory and the
 * trainer's in-place weight reload fell back to `assign`, which left a worker holding the weights
 * twice (k3m-base's 1.7 GiB: out of heap).
 */
function variableOf(values: Float32Array, shape: readonly number[]): tf.Variable {
  const t = tf.tensor(values, shape as number[]);
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

export class K3mParams implements ModelParams {
  private constructor(
    readonly config: ModelConfig,
    readonly vars: Map<string, tf.Variable>,
  ) {}

  /** Original initialisation (M:1921-1932): N(0, initializer_range), zero biases, LN 1/0, struc_* PyTorch default. */
  static init(config: ModelConfig, seed: number): K3mParams {
    const vars = new Map<string, tf.Variable>();
    initialValues(config, seed, (s, v) => vars.set(s.name, variableOf(v, s.shape)));
    return new K3mParams(config, vars);
  }

  /** Variables holding a copy of each parameter's values as `valuesOf` gives them (e.g. views of a {@link ParamArena}). */
  static fromValues(config: ModelConfig, valuesOf: (name: string) => Float32Array): K3mParams {
    const vars = new Map<string, tf.Variable>();
    for (const s of parameterSpec(config)) vars.set(s.name, variableOf(valuesOf(s.name), s.shape));
    return new K3mParams(config, vars);
  }

  /**
   * From a state dict (e.g. weights.safetensors or our checkpoint). Every parameter must be
   * present with its shape; the tied decoder key, when present, must equal the word embeddings.
   */
  static fromStateDict(config: ModelConfig, tensors: Map<string, RawTensor>): K3mParams {
    const vars = new Map<string, tf.Variable>();
    const problems: string[] = [];
    for (const s of parameterSpec(config)) {
      const t = tensors.get(s.name);
      if (!t) problems.push(`missing ${s.name}`);
      else if (t.shape.join() !== s.shape.join()) problems.push(`${s.name}: shape [${t.shape}] instead of [${s.shape}]`);
      else vars.set(s.name, variableOf(toFloat32(t), s.shape));
    }
    if (problems.length) {
      for (const v of vars.values()) v.dispose();
      throw new Error(`state dict does not fit the config: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
    }
    return new K3mParams(config, vars);
  }

  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  }

  /** The state dict with the original's keys, the tied decoder included. */
  toStateDict(): Map<string, RawTensor> {
    const out = new Map<string, RawTensor>();
    for (const [name, v] of this.vars) out.set(name, f32(v.shape, v.dataSync() as Float32Array));
    out.set(TIED_DECODER, out.get(WORD_EMBEDDINGS)!);
    return out;
  }

  /** Replaces every value from another state dict of the same config. */
  assign(tensors: Map<string, RawTensor>): void {
    for (const [name, v] of this.vars) {
      const t = tensors.get(name);
      if (!t) throw new Error(`state dict lacks ${name}`);
      v.assign(tf.tensor(toFloat32(t), v.shape));
    }
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
  }
}
