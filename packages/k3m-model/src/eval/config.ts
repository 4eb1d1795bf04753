/**
 * @file The evaluation's one typed config: the library's `evaluate(config)` and the CLI
 * (command.ts) both read it, validated by zod at the boundary.
 */
import { z } from 'zod';
import { CORRUPTION_KINDS, DEFAULT_RATES, type CorruptionKindName } from './grid.ts';

/** The retrieval projection's shrinkage grid, log-spaced (0.001: nearly plain CCA; 1: partial least squares). */
export const DEFAULT_SHRINKAGES = Object.freeze([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1]);

export const STAGE = 'k3m-model-evaluate';

export const EVAL_TASKS = Object.freeze({
  classification: 'item classification on the category field',
  retrieval: 'cross-modal retrieval title->image and image->title',
  completion: "knowledge completion on kg-triples' test triples",
  'instance-retrieval': 'instance-level product retrieval (Product1M): queries showing products, a gallery of single products',
});
export type EvalTaskName = keyof typeof EVAL_TASKS;

const kindNames = Object.keys(CORRUPTION_KINDS) as [CorruptionKindName, ...CorruptionKindName[]];
const taskNames = Object.keys(EVAL_TASKS) as [EvalTaskName, ...EvalTaskName[]];

export const EvaluateConfigSchema = z.object({
  workDir: z.string().min(1),
  /** The run pretrained with knowledge; results go to `runs/<run>/eval/`. */
  run: z.string().min(1).default('k3m-small'),
  /** The run pretrained with `--modalities title,image`. */
  baseline: z.string().min(1).default('k3m-small-noknow'),
  /** Where results go; default `runs/<run>/eval/`. */
  outDir: z.string().min(1).optional(),
  seed: z.number().int().default(42),
  /**
   * Tasks to run. Unset: every task the work directory has data for (completion needs kg/,
   * instance retrieval needs instance labels). A task named here without its data is refused.
   */
  tasks: z.array(z.enum(taskNames)).min(1).optional(),
  kinds: z.array(z.enum(kindNames)).default([...kindNames]),
  rates: z.array(z.number().min(0).max(1)).min(1).default([...DEFAULT_RATES]),
  /** Seeded cap on fit-side items (0 = all). */
  maxFitItems: z.number().int().nonnegative().default(0),
  /** Seeded cap on evaluation items, i.e. the retrieval gallery (0 = all). */
  maxEvalItems: z.number().int().nonnegative().default(0),
  /** Share of the fit items the probes see corrupted (kinds dealt round-robin), 0 = clean only. */
  fitCorruption: z.number().min(0).max(1).default(0.5),
  probeSteps: z.number().int().positive().default(300),
  probeBatch: z.number().int().nonnegative().default(128),
  probeLr: z.number().positive().default(0.003),
  /** L2 penalty on probe weights; strong, because the fit side has hundreds of items for 512-wide rows. */
  probeWeightDecay: z.number().nonnegative().default(0.05),
  /**
   * Covariance shrinkages the retrieval projection (regularised CCA) chooses from on held-out fit
   * pairs: how much a model's features need depends on them.
   */
  projectionShrinkages: z.array(z.number().gt(0).max(1)).min(1).default([...DEFAULT_SHRINKAGES]),
  /** Width of the retrieval projection space. */
  projectionDim: z.number().int().positive().default(64),
  /** Processes: 2 evaluates the two models side by side (the default opener only). */
  workers: z.number().int().min(1).max(2).default(2),
  /** Records per forward pass. */
  batchSize: z.number().int().positive().default(32),
  backend: z.string().optional(),
  quiet: z.boolean().default(false),
});
export type EvaluateConfig = z.input<typeof EvaluateConfigSchema>;
/** The config with every default filled in. */
export type ResolvedEvaluateConfig = z.output<typeof EvaluateConfigSchema>;
