/**
 * @file What a run starts from: a fresh run builds (or reads) its vocabulary, sizes the model from
 * the first record and initialises it from the seed (optionally loading BERT weights); a resumed
 * run takes vocabulary, model config, parameters, optimizer moments and trainer state from its
 * last checkpoint.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors, Rng } from '@k3m-kit/core';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { K3mTokenizer } from '../data/tokenizer.ts';
import { buildVocab, readVocabFile, recordTexts } from '../data/vocab.ts';
import { hasCheckpoint, readCheckpoint, type TrainerState } from '../codecs/checkpoint.ts';
import { modelConfig, type ModelConfig } from '../model/config.ts';
import { loadHfBert, ParamArena, sharedFloats, type InitFromReport } from '../model/param-arena.ts';
import { AdamState } from './adamw.ts';
import { modelOverrides, type PretrainConfig } from './config.ts';
import { checkTrainingMemory } from './memory-estimate.ts';
import type { RecordSource } from './records.ts';

export interface RunStart {
  runDir: string;
  tokens: string[];
  tokenizer: K3mTokenizer;
  vocabBuilt: boolean;
  /** The first training record: feature width and class count size the model. */
  first: K3mRecord;
  config: ModelConfig;
  /** Weights and optimizer state, in shared memory for the training workers. */
  params: ParamArena;
  adam: AdamState;
  /** Trainer state to continue from: a fresh one (step 0) or the checkpoint's. */
  state: TrainerState;
  /** Set when a checkpoint was loaded. */
  resumed: boolean;
  initFrom?: InitFromReport;
}

async function firstRecord(src: RecordSource): Promise<K3mRecord> {
  for await (const r of src.records()) return r;
  throw new Error('the training set is empty');
}

/** The config's name in messages: the file or preset it came from. */
const configName = (c: PretrainConfig) => `${c.modelConfig ? `--model-config ${c.modelConfig}` : `--preset ${c.preset}`}${c.model ? ' with model overrides' : ''}`;

/**
 * Opens `<workDir>/runs/<name>/` and everything training needs to start or continue. Before
 * allocating the model it checks that training it fits `backend` over `workers` workers.
 */
export async function startRun(c: PretrainConfig, train: RecordSource, totalSteps: number, on: { backend: string; workers: number; shares: number }, log: (l: string) => void): Promise<RunStart> {
  const fits = (config: ModelConfig, name: string) => checkTrainingMemory(config, { name, backend: on.backend, batchSize: c.batchSize, workers: on.workers, shares: on.shares });
  const runDir = join(c.workDir, 'runs', c.name);
  await mkdir(runDir, { recursive: true });
  const ckpt = c.resume && hasCheckpoint(runDir) ? await readCheckpoint(runDir) : undefined;
  if (c.resume && !ckpt) log(`resume: no checkpoint in ${runDir}, starting from scratch`);
  const first = await firstRecord(train);

  if (ckpt) {
    fits(ckpt.config, `the checkpoint's model in ${runDir}`);
    const params = ParamArena.fromStateDict(ckpt.config, ckpt.model, sharedFloats);
    const adam = AdamState.create(params.layout, sharedFloats);
    adam.load(ckpt.optimizer, ckpt.state.adamSteps);
    log(`resume: step ${ckpt.state.step} of ${ckpt.state.totalSteps} (epoch ${ckpt.state.epoch}, batch ${ckpt.state.batchInEpoch})`);
    return {
      runDir,
      tokens: ckpt.vocab,
      tokenizer: K3mTokenizer.fromVocab(ckpt.vocab),
      vocabBuilt: false,
      first,
      config: ckpt.config,
      params,
      adam,
      state: ckpt.state,
      resumed: true,
    };
  }

  let tokens: string[];
  let vocabBuilt = false;
  if (c.vocab) tokens = await readVocabFile(c.vocab);
  else {
    tokens = (await buildVocab(recordTexts(train.records()))).tokens;
    vocabBuilt = true;
  }
  const config = modelConfig(c.preset, { vocab_size: tokens.length, v_feature_size: first.featureDim, v_target_size: first.numClasses || 1601, ...(await modelOverrides(c)) });
  if (config.vocab_size !== tokens.length) throw new Error(`model vocab_size ${config.vocab_size} differs from the vocabulary's ${tokens.length} tokens`);
  fits(config, configName(c));
  const params = ParamArena.init(config, c.seed, sharedFloats);
  let initFrom: InitFromReport | undefined;
  if (c.initFrom) {
    initFrom = loadHfBert(params, (await readSafetensors(c.initFrom)).tensors);
    log(`init-from ${c.initFrom}: ${initFrom.loaded.length} tensors loaded, ${initFrom.skipped.length} skipped`);
  }
  const state: TrainerState = { step: 0, epoch: 0, batchInEpoch: 0, rng: new Rng(c.seed ^ 0x5eed).state, adamSteps: {}, metricsLines: 0, totalSteps };
  const adam = AdamState.create(params.layout, sharedFloats);
  return { runDir, tokens, tokenizer: K3mTokenizer.fromVocab(tokens), vocabBuilt, first, config, params, adam, state, resumed: false, initFrom };
}
