/**
 * @file `pretrain`'s configuration, spelled once: {@link PRETRAIN_OPTIONS} builds the CLI flags,
 * validates flags and `--config` files, and its output type ({@link PretrainConfig}) is what the
 * library's {@link pretrain} takes. Derived settings (corruption rates, model fixes, loss weights)
 * are functions of the config, never copies of it.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { defineOptions, enumOf, floatArg, intArg, optionsSchema, UsageError, type OptionsOf } from '@k3m-kit/core';
import { BACKENDS } from '@k3m-kit/core/backend';
import { MODALITIES, type CorruptionRates, type Modality } from '../data/corrupt.ts';
import { KNOWLEDGE_MASKING } from '../data/preprocess.ts';
import { PRESETS } from '../model/config.ts';
import type { FusionMode, LossWeights, ModelFixes } from '../model/k3m.ts';


const prob = (flag: string) => floatArg(flag, 0, 1);
const rate = z.number().min(0).max(1).default(0);

/** `title,image` → `['title', 'image']`, each checked. */
export function parseModalities(v: string): Modality[] {
  const parts = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of parts) if (!(MODALITIES as readonly string[]).includes(p)) throw new UsageError(`--modalities ${v}: each must be one of ${MODALITIES.join(', ')}`);
  return [...new Set(parts)] as Modality[];
}

export const PRETRAIN_OPTIONS = defineOptions({
  preset: { flags: '--preset <name>', description: 'model size', schema: enumOf(PRESETS).default('k3m-small'), choices: Object.keys(PRESETS) },
  model: { flags: '--model <json>', description: 'model config keys over the preset (config file only)', schema: z.record(z.string(), z.unknown()).optional(), fileOnly: true },
  modelConfig: { flags: '--model-config <file>', description: "model config JSON (BERT-style keys, e.g. the original's config file) over the preset", schema: z.string().optional() },
  name: { flags: '--name <name>', description: 'run name: outputs in <work-dir>/runs/<name>/', schema: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only').default('k3m-small') },
  steps: { flags: '--steps <n>', description: 'optimizer steps (overrides --epochs)', schema: z.number().int().positive().optional(), parse: intArg('--steps', 1) },
  epochs: { flags: '--epochs <n>', description: 'passes over the training records (reference 6; default sized for the embedded sample on 2 cores)', schema: z.number().int().positive().default(4), parse: intArg('--epochs', 1) },
  batchSize: { flags: '--batch-size <n>', description: 'records per micro-batch (>= 2)', schema: z.number().int().min(2).default(8), parse: intArg('--batch-size', 2) },
  lr: { flags: '--lr <x>', description: 'peak learning rate (reference 1e-4)', schema: z.number().positive().default(5e-4), parse: floatArg('--lr', 0) },
  warmup: { flags: '--warmup <x>', description: 'warm-up share of the steps', schema: z.number().min(0).max(1).default(0.1), parse: prob('--warmup') },
  accumulate: { flags: '--accumulate <n>', description: 'micro-batches per optimizer step', schema: z.number().int().positive().default(1), parse: intArg('--accumulate', 1) },
  clip: { flags: '--clip <x>', description: 'clip the global gradient norm (off by default, as the reference)', schema: z.number().positive().optional(), parse: floatArg('--clip', 0) },
  seed: { flags: '--seed <n>', description: 'seed of init, data order, masking, dropout, Gumbel noise', schema: z.number().int().nonnegative().default(42), parse: intArg('--seed') },
  workers: { flags: '--workers <n>', description: 'data-parallel training threads, each with its own back end (default: one per share, 1 on tensorflow back ends; at most --shares)', schema: z.number().int().positive().optional(), parse: intArg('--workers', 1) },
  shares: {
    flags: '--shares <n>',
    description: 'shares each micro-batch is cut into for the workers: the weights depend on it, not on --workers (default: the number of cores; 1 on tensorflow back ends)',
    schema: z.number().int().positive().optional(),
    parse: intArg('--shares', 1),
  },
  backend: { flags: '--backend <b>', description: 'TensorFlow.js back end (default: the first that loads)', schema: enumOf(BACKENDS).optional(), choices: Object.keys(BACKENDS) },
  vocab: { flags: '--vocab <file>', description: 'vocab.txt (e.g. bert-base-chinese); default: built from the training titles and knowledge', schema: z.string().optional() },
  initFrom: { flags: '--init-from <file>', description: 'Hugging Face BERT safetensors loaded into the text stream (reference 4.8)', schema: z.string().optional() },
  resume: { flags: '--resume', description: "continue from the run directory's last checkpoint", schema: z.boolean().default(false) },
  checkpointEvery: { flags: '--checkpoint-every <n>', description: 'optimizer steps between checkpoints', schema: z.number().int().positive().default(100), parse: intArg('--checkpoint-every', 1) },
  fusionMode: { flags: '--fusion-mode <m>', description: "IFFM: 0 mean (default, README 'The default budget'), 1 hard Gumbel (the reference's default), 2 soft, 3 interactive only", schema: z.coerce.number().int().min(0).max(3).default(0), choices: ['0', '1', '2', '3'] },
  modalities: { flags: '--modalities <list>', description: 'modalities to learn from (a missing one is always empty, its losses off)', schema: z.array(z.enum(MODALITIES)).min(1).default([...MODALITIES]), parse: parseModalities, defaultText: MODALITIES.join(',') },
  knowledgeMasking: { flags: '--knowledge-masking <m>', description: 'reference (deterministic, values of PVs 2..n) or random (15% of values)', schema: enumOf(KNOWLEDGE_MASKING).default('reference'), choices: ['reference', 'random'] },
  shuffleBuffer: { flags: '--shuffle-buffer <n>', description: 'records held for shuffling', schema: z.number().int().nonnegative().default(5000), parse: intArg('--shuffle-buffer') },
  dropTitle: { flags: '--drop-title <p>', description: "probability an item's title is blanked", schema: rate, parse: prob('--drop-title') },
  dropImage: { flags: '--drop-image <p>', description: "probability an item's image is blanked", schema: rate, parse: prob('--drop-image') },
  dropKnowledge: { flags: '--drop-knowledge <p>', description: "probability an item's knowledge is blanked", schema: rate, parse: prob('--drop-knowledge') },
  noiseTitle: { flags: '--noise-title <p>', description: "probability an item gets another item's title", schema: rate, parse: prob('--noise-title') },
  noiseImage: { flags: '--noise-image <p>', description: "probability an item gets another item's image", schema: rate, parse: prob('--noise-image') },
  noiseKnowledge: { flags: '--noise-knowledge <p>', description: "probability an item gets another item's knowledge", schema: rate, parse: prob('--noise-knowledge') },
  samStaleTriples: { flags: '--sam-stale-triples', description: "reference bug 5: an item without PV pairs reuses the previous item's triples", schema: z.boolean().default(false) },
  nanLosses: { flags: '--nan-losses', description: 'reference bug 11: a loss with no labelled position is NaN', schema: z.boolean().default(false) },
  samSharedNegative: {
    flags: '--sam-shared-negative',
    description: "reference: the structure negative shares the item's knowledge term under a linear classifier, so loss_tri cannot beat chance (README #23)",
    schema: z.boolean().default(false),
  },
});

/** Validates flags and config files (the common options are added by the CLI). */
export const PretrainOptionsSchema = optionsSchema(PRETRAIN_OPTIONS);

/** What {@link pretrain} takes: the validated options plus where and how quietly to run. */
export type PretrainConfig = OptionsOf<typeof PRETRAIN_OPTIONS> & { workDir: string; quiet: boolean };

/**
 * A config with every default filled in, for library callers and tests.
 * @example pretrainConfig({ workDir: 'work', steps: 10 })
 */
export function pretrainConfig(over: Partial<z.input<typeof PretrainOptionsSchema>> & { workDir: string; quiet?: boolean }): PretrainConfig {
  const { workDir, quiet, ...rest } = over;
  return { ...PretrainOptionsSchema.parse(rest), workDir, quiet: quiet ?? true };
}

/** Shares when `--shares` is not given: every core for wasm and cpu; one for the native back ends, which thread themselves. */
export function defaultShares(backend: string): number {
  return backend.startsWith('tensorflow') ? 1 : availableParallelism();
}

/**
 * Shares of each micro-batch: `--shares`, else {@link defaultShares}. Reference bug 5
 * (`--sam-stale-triples`) reaches from one item to the previous ones, so it takes the batch whole.
 */
export function sharesOf(c: Pick<PretrainConfig, 'shares' | 'samStaleTriples'>, backend: string): number {
  if (!c.samStaleTriples) return c.shares ?? defaultShares(backend);
  if ((c.shares ?? 1) > 1) throw new UsageError(`--shares ${c.shares}: --sam-stale-triples (reference bug 5) reaches across items and takes each batch whole; drop one of the two`);
  return 1;
}

/**
 * Training worker threads: `--workers`, else one per share (one on the native back ends, which
 * thread themselves); never more than the shares (a worker has at least one).
 */
export function workersOf(c: Pick<PretrainConfig, 'workers' | 'shares' | 'samStaleTriples'>, backend: string): number {
  const shares = sharesOf(c, backend);
  if (c.samStaleTriples && (c.workers ?? 1) > 1) throw new UsageError(`--workers ${c.workers}: --sam-stale-triples (reference bug 5) reaches across items and trains on one worker; drop one of the two`);
  return Math.min(c.workers ?? (backend.startsWith('tensorflow') ? 1 : shares), shares);
}

/** The model-fix switches of a config (design.md 7: fixes by default, flags restore the bugs). */
export const fixesOf = (c: Pick<PretrainConfig, 'samStaleTriples' | 'nanLosses' | 'samSharedNegative'>): ModelFixes => ({
  samEmptyKnowledge: !c.samStaleTriples,
  lossNanGuard: !c.nanLosses,
  samLearnableLoss: !c.samSharedNegative,
});

/** The corruption rates of a config, as the data pipeline takes them. */
export const corruptionOf = (c: Pick<PretrainConfig, keyof Required<CorruptionRates>>): CorruptionRates => ({
  dropTitle: c.dropTitle,
  dropImage: c.dropImage,
  dropKnowledge: c.dropKnowledge,
  noiseTitle: c.noiseTitle,
  noiseImage: c.noiseImage,
  noiseKnowledge: c.noiseKnowledge,
});

export const fusionModeOf = (c: Pick<PretrainConfig, 'fusionMode'>): FusionMode => c.fusionMode as FusionMode;

const WEIGHT_OF: Record<Modality, (keyof LossWeights)[]> = { title: ['t'], image: ['v'], knowledge: ['pv', 'tri'] };
const DROP_OF: Record<Modality, keyof CorruptionRates> = { title: 'dropTitle', image: 'dropImage', knowledge: 'dropKnowledge' };

/** Loss weights and corruption for a modality subset (an absent modality is dropped for every item). */
export function modalitySetup(modalities: readonly Modality[], corruption: CorruptionRates): { weights: LossWeights; corruption: CorruptionRates } {
  const weights: LossWeights = { t: 1, v: 1, pv: 1, tri: 1 };
  const c: CorruptionRates = { ...corruption };
  for (const m of MODALITIES) {
    if (modalities.includes(m)) continue;
    for (const k of WEIGHT_OF[m]) weights[k] = 0;
    c[DROP_OF[m]] = 1;
  }
  return { weights, corruption: c };
}

/** The model config keys over the preset: `--model-config` file first, `model` on top. */
export async function modelOverrides(c: Pick<PretrainConfig, 'model' | 'modelConfig'>): Promise<Record<string, unknown> | undefined> {
  if (!c.modelConfig) return c.model;
  try {
    const j = JSON.parse(await readFile(c.modelConfig, 'utf8')) as Record<string, unknown>;
    return { ...((j.config as Record<string, unknown>) ?? j), ...c.model };
  } catch (e) {
    throw new UsageError(`--model-config ${c.modelConfig}: ${(e as Error).message}`);
  }
}
