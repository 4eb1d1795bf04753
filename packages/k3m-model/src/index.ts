/**
 * @file k3m-model's library API: the K3M model in TensorFlow.js (k3m-reference.md 4-5),
 * pretraining (7), and the representation API evaluation builds on. The data path (tokenizer,
 * preprocessing, batches, corruption) is exported from `./data/index.ts`.
 */

// ---- Back end ----
export { startBackend, backendLine, describeBackend, BACKENDS, type BackendChoice, type BackendName } from './backend.ts';

// ---- Model ----
export { ModelConfigSchema, PRESETS, modelConfig, parseModelConfig, type ModelConfig, type PresetName } from './model/config.ts';
export { K3mParams, countParameters, parameterSpec, TIED_DECODER, WORD_EMBEDDINGS, type ParamSpec } from './model/params.ts';
export { ParamArena, ArenaLayout, sharedFloats, loadHfBert, type ArenaSlot, type InitFromReport } from './model/param-arena.ts';
export {
  forward,
  DEFAULT_FIXES,
  ORIGINAL_BEHAVIOUR,
  DEFAULT_LOSS_WEIGHTS,
  LOSS_NAMES,
  type AccuracyCounts,
  type ForwardOptions,
  type ForwardResult,
  type FusionMode,
  type LossName,
  type LossWeights,
  type ModelFixes,
} from './model/k3m.ts';
export { forwardFiles, type ForwardFilesOptions } from './model/forward-files.ts';
export { batchFromTensors, batchToTensors } from './model/batch-tensors.ts';

// ---- Representations (evaluation) ----
export { loadModel, represent, encodeRecords, REPRESENTATION_NAMES, type K3mModel, type Representations, type RepresentationName } from './model/represent.ts';

// ---- Ops (custom gradients, kernels) ----
export { linear, bmm } from './ops/matmul.ts';
export { ItemStreams, dropout } from './ops/nn.ts';
export { embedding } from './ops/segment-sum.ts';
export { registerKernels } from './ops/kernels.ts';
export { frugalGradients } from './ops/gradients.ts';

// ---- Training ----
export { AdamState, adamwUpdate, REFERENCE_ADAMW, decays, warmupLinear, sumOfSquares, clipFactor, type AdamWOptions, type AdamWUpdate } from './train/adamw.ts';
export { WorkerPool, type PoolOptions, type MicroResult } from './train/worker-pool.ts';
export { OptimizerStep, type OptimizerStepOptions, type StepResult } from './train/optimizer-step.ts';
export { checkTrainingMemory, estimateTrainingMemory, wasmKernels, WASM_HEAP_LIMIT, type MemoryEstimate, type WasmKernels } from './train/memory-estimate.ts';
export { createSharedTraining, sharedBytes, type SharedTraining } from './train/shared-training.ts';
export { DOMAIN_MAP_FILE, encodeDomainMap, decodeDomainMap, readDomainMap, type DomainMap } from './codecs/domain-map.ts';
export { continualPretrain, stageRunName, jointRunName, RUN_DONE_FILE, type ContinualResult } from './eval/continual.ts';
export { CONTINUAL_OPTIONS, ContinualOptionsSchema, type ContinualConfig } from './train/continual-config.ts';
export { domainOf, parseDomains, splitByDomain, type DomainSplit } from './train/domains.ts';
export { continualMeasures, finalAverageAccuracy, averageForgetting, backwardTransfer, type ContinualMeasures } from './eval/continual-metrics.ts';
export { DOMAIN_ACCURACY, openDomainItems, scoreDomains, type DomainScore, type DomainSide } from './eval/domain-retrieval.ts';
export { accuracyMatrix, accuracyMatrixSvg, renderContinualTables, writeContinualResults, RESULT_FILES as CONTINUAL_RESULT_FILES, type ContinualResults, type RunOutcome } from './eval/continual-results.ts';
export { CHECKPOINT_FILES, readCheckpoint, readModelFiles, writeCheckpoint, hasCheckpoint, type Checkpoint, type TrainerState } from './codecs/checkpoint.ts';
export { pretrain, pretrainStageName, plannedSteps, RUN_CONFIG_FILE, type EpochCounts, type PretrainIo, type PretrainResult, type StepMetrics, type ValidationMetrics } from './train/pretrain.ts';
export { PRETRAIN_OPTIONS, PretrainOptionsSchema, pretrainConfig, modalitySetup, corruptionOf, fixesOf, workersOf, sharesOf, defaultShares, type PretrainConfig } from './train/config.ts';
export { pretrainReport, pretrainTable, type PretrainReport } from './train/report.ts';
export { lmdbSource, workDirSources, arraySource, LMDB_FILES, type RecordSource } from './train/records.ts';

// ---- Evaluation ----
export { evaluate } from './eval/evaluate.ts';
export { evaluateModel } from './eval/model-run.ts';
export { EvaluateConfigSchema, EVAL_TASKS, type EvaluateConfig, type EvalTaskName } from './eval/config.ts';
export type { EvaluateReport } from './eval/report.ts';
export { addEvaluateCommand } from './eval/command.ts';

// ---- Data path ----
export * from './data/index.ts';
