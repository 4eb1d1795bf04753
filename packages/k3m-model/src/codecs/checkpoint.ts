/**
 * @file The run directory's checkpoint (design.md 4 `runs/<name>/`, 6.4):
 *
 *   model.safetensors      state dict with the original PyTorch names (377 keys for the golden
 *                          config, tied decoder included); metadata {producer, step}
 *   optimizer.safetensors  AdamW moments `exp_avg.<name>`, `exp_avg_sq.<name>`; metadata {step}
 *   config.json            the model config, BERT-style keys (loads in the original)
 *   vocab.txt              the tokenizer's vocabulary, one token a line
 *   trainer-state.json     step, epoch, batch within the epoch, RNG state, per-tensor Adam steps,
 *                          metrics lines written; written LAST, so it marks a complete checkpoint
 *
 * Every file is written atomically; a checkpoint whose files disagree on the step is refused.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readSafetensors, writeSafetensors, type RawTensor, writeFileAtomic } from '@k3m-kit/core';
import { parseModelConfig, type ModelConfig } from '../model/config.ts';

export const CHECKPOINT_FILES = Object.freeze({
  model: 'model.safetensors',
  optimizer: 'optimizer.safetensors',
  config: 'config.json',
  vocab: 'vocab.txt',
  state: 'trainer-state.json',
});

export const TrainerStateSchema = z.object({
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  /** batches of `epoch` already consumed (micro-batches) */
  batchInEpoch: z.number().int().nonnegative(),
  rng: z.array(z.number().int()).length(4),
  adamSteps: z.record(z.string(), z.number().int()),
  /** lines of metrics.jsonl that belong to this checkpoint (later ones are dropped on resume) */
  metricsLines: z.number().int().nonnegative(),
  totalSteps: z.number().int().positive(),
});
export type TrainerState = z.infer<typeof TrainerStateSchema>;

export interface Checkpoint {
  state: TrainerState;
  config: ModelConfig;
  vocab: string[];
  model: Map<string, RawTensor>;
  optimizer: Map<string, RawTensor>;
}

export async function writeCheckpoint(dir: string, c: Checkpoint): Promise<void> {
  const meta = { producer: 'k3m-kit k3m-model', step: String(c.state.step) };
  await writeSafetensors(join(dir, CHECKPOINT_FILES.model), c.model, meta);
  await writeSafetensors(join(dir, CHECKPOINT_FILES.optimizer), c.optimizer, meta);
  await writeFileAtomic(join(dir, CHECKPOINT_FILES.config), JSON.stringify(c.config, null, 2) + '\n');
  await writeFileAtomic(join(dir, CHECKPOINT_FILES.vocab), c.vocab.join('\n') + '\n');
  await writeFileAtomic(join(dir, CHECKPOINT_FILES.state), JSON.stringify(c.state, null, 2) + '\n');
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_FILES.state));
}

/** Model config, vocabulary and weights of a run directory (what evaluation needs). */
export async function readModelFiles(dir: string): Promise<Pick<Checkpoint, 'config' | 'vocab' | 'model'> & { step?: string }> {
  const config = parseModelConfig(JSON.parse(await readFile(join(dir, CHECKPOINT_FILES.config), 'utf8')));
  const vocab = (await readFile(join(dir, CHECKPOINT_FILES.vocab), 'utf8')).split('\n');
  if (vocab.at(-1) === '') vocab.pop();
  const model = await readSafetensors(join(dir, CHECKPOINT_FILES.model));
  return { config, vocab, model: model.tensors, step: model.metadata.step };
}

export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  const state = TrainerStateSchema.parse(JSON.parse(await readFile(join(dir, CHECKPOINT_FILES.state), 'utf8')));
  const { step: modelStep, ...files } = await readModelFiles(dir);
  const opt = await readSafetensors(join(dir, CHECKPOINT_FILES.optimizer));
  if (modelStep !== String(state.step) || opt.metadata.step !== String(state.step)) {
    throw new Error(`${dir}: checkpoint files disagree on the step (state ${state.step}, model ${modelStep}, optimizer ${opt.metadata.step})`);
  }
  return { state, ...files, optimizer: opt.tensors };
}
