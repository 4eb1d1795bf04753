/**
 * @file The pipeline as scheduler steps: which stage command each step runs, whether it is an
 * array (one task per shard), what it waits for and which report says it is done. Slurm scripts
 * (sbatch-script.ts) and the Kubernetes manifests in docs/k8s/ are both rendered from this one
 * table, so the commands a cluster runs are the ones the stage CLIs document.
 *
 *   build-data ──> build-data-merge ──┬──> kg-triples ──────────────┬──> convert ──> convert-merge ──> pretrain
 *                                     └──> extract ──> extract-merge ┘
 *
 * With one shard the merge steps are dropped (a whole run finalizes itself) and their
 * dependants wait for what the merge waited for.
 */
import { parse } from 'shell-quote';
import { UsageError, shardSuffix, type Shard } from '@k3m-kit/core';

/** The steps in submission order (a step only waits for steps before it). */
export const STEP_NAMES = Object.freeze([
  'build-data',
  'build-data-merge',
  'kg-triples',
  'extract',
  'extract-merge',
  'convert',
  'convert-merge',
  'pretrain',
] as const);
export type StepName = (typeof STEP_NAMES)[number];

/** The stages whose options a user may pass through, by the name of their k3m-slurm flag. */
export const STAGE_ARG_FLAGS = Object.freeze({
  buildData: 'build-data',
  kgTriples: 'kg-triples',
  extract: 'extract',
  convert: 'convert',
  pretrain: 'pretrain',
} as const);
export type StageArgKey = keyof typeof STAGE_ARG_FLAGS;

interface StepDef {
  /** CLI bin and subcommand. */
  bin: string;
  sub: string;
  /** One array task per shard, or a single job. */
  sharded: boolean;
  /** Dropped with one shard: the sharded step before it finalizes by itself. */
  mergeOnly?: true;
  after: readonly StepName[];
  /** Runs on the GPU partition when one is given. */
  gpu: boolean;
  /** The user options it takes (`--<flag> '<args>'`). */
  args?: StageArgKey;
  /** Report file name (under reports/) of shard `shard`, or a pattern for single steps. */
  report: (shard: Shard) => string | RegExp;
  /** What the step does, for the script header and `status`. */
  what: string;
}

const sharded = (stage: string) => (shard: Shard) => `${stage}${shardSuffix(shard)}.json`;

/** The step registry. */
export const STEPS: Readonly<Record<StepName, StepDef>> = Object.freeze({
  'build-data': {
    bin: 'raw-ingest', sub: 'build-data', sharded: true, after: [], gpu: false, args: 'buildData',
    report: sharded('build-data'), what: 'validate, segment and fetch images: one shard of the segments',
  },
  'build-data-merge': {
    bin: 'raw-ingest', sub: 'merge', sharded: false, mergeOnly: true, after: ['build-data'], gpu: false,
    report: () => 'build-data.json', what: 'split tables, reject log and report of build-data from every shard',
  },
  'kg-triples': {
    bin: 'kg-triples', sub: 'build', sharded: false, after: ['build-data-merge'], gpu: false, args: 'kgTriples',
    report: () => 'kg-triples.json', what: 'knowledge triples, vocabularies and per-item knowledge',
  },
  extract: {
    bin: 'region-features', sub: 'extract', sharded: true, after: ['build-data-merge'], gpu: true, args: 'extract',
    report: sharded('region-features'), what: 'Faster R-CNN region features: one shard of the segments',
  },
  'extract-merge': {
    bin: 'region-features', sub: 'merge', sharded: false, mergeOnly: true, after: ['extract'], gpu: false,
    report: () => 'region-features.json', what: 'feature TSVs and report from every segment part',
  },
  convert: {
    bin: 'lmdb-writer', sub: 'convert', sharded: true, after: ['kg-triples', 'extract-merge'], gpu: false, args: 'convert',
    report: sharded('lmdb-writer'), what: 'tensorpack-layout LMDB of one shard of the segments',
  },
  'convert-merge': {
    bin: 'lmdb-writer', sub: 'merge', sharded: false, mergeOnly: true, after: ['convert'], gpu: false,
    report: () => 'lmdb-writer.merge.json', what: '*_feat_all.lmdb from the shard LMDBs, in single-run order',
  },
  pretrain: {
    bin: 'k3m-model', sub: 'pretrain', sharded: false, after: ['convert-merge'], gpu: true, args: 'pretrain',
    // k3m-model names the report after the run (--name): k3m-model-pretrain[-<name>].json.
    report: () => /^k3m-model-pretrain(-.+)?\.json$/, what: 'K3M pretraining',
  },
});

/** Options owned by k3m-slurm: a stage argument string must not set them. */
const RESERVED = Object.freeze(['--work-dir', '--shard', '--num-shards', '--input', '--config']);

export interface PipelineOptions {
  /** Absolute work directory on the shared filesystem. */
  workDir: string;
  /** build-data inputs as it takes them: `FILE[:train|:val]`, absolute. */
  inputs: readonly string[];
  shards: number;
  /** Extra arguments per stage, already split. */
  stageArgs: Partial<Record<StageArgKey, readonly string[]>>;
}

/** How a sharded step learns its shard: Slurm's array index, or Kubernetes' completion index. */
export type ShardSource = 'slurm' | 'kubernetes';

/** The shell word that expands to the shard of a Slurm array task. */
export const SLURM_SHARD_WORD = (n: number) => `"$SLURM_ARRAY_TASK_ID/${n}"`;

/** One step of a concrete pipeline. */
export interface PlannedStep {
  name: StepName;
  sharded: boolean;
  gpu: boolean;
  /** Steps it waits for (after merges dropped with one shard). */
  after: StepName[];
  what: string;
  /** Report file of shard i (sharded) or the report pattern (single). */
  report: (shard: Shard) => string | RegExp;
}

/**
 * The steps for `shards` shards, in submission order.
 * @example planSteps(3).map((s) => s.name) // all eight; planSteps(1) has no merge steps
 */
export function planSteps(shards: number): PlannedStep[] {
  const dropped = (n: StepName) => shards === 1 && STEPS[n].mergeOnly === true;
  const resolve = (n: StepName): StepName[] => (dropped(n) ? STEPS[n].after.flatMap(resolve) : [n]);
  return STEP_NAMES.filter((n) => !dropped(n)).map((name) => {
    const d = STEPS[name];
    return { name, sharded: d.sharded, gpu: d.gpu, after: [...new Set(d.after.flatMap(resolve))], what: d.what, report: d.report };
  });
}

/**
 * The argv of `step` (bin first). Sharded steps get `--shard "$SLURM_ARRAY_TASK_ID/N"` (a shell
 * word, so a resubmitted subset of the array still runs the right shards) or, for Kubernetes,
 * `--num-shards N` beside the pod's JOB_COMPLETION_INDEX. `resuming` adds `--resume` to pretrain.
 */
export function stepCommand(step: StepName, o: PipelineOptions, source: ShardSource, resuming = false): string[] {
  const d = STEPS[step];
  const argv = [d.bin, d.sub, '--work-dir', o.workDir];
  if (step === 'build-data') for (const i of o.inputs) argv.push('--input', i);
  if (d.sharded) argv.push(...(source === 'slurm' ? ['--shard', SLURM_SHARD_WORD(o.shards)] : ['--num-shards', String(o.shards)]));
  if (step === 'convert-merge') {
    argv.push('--num-shards', String(o.shards));
    // merge must cover the splits convert wrote.
    const convert = o.stageArgs.convert ?? [];
    const k = convert.findIndex((a) => a === '--split' || a.startsWith('--split='));
    if (k >= 0) argv.push(...(convert[k]!.includes('=') ? [convert[k]!] : ['--split', convert[k + 1] ?? '']));
  }
  if (d.args) argv.push(...(o.stageArgs[d.args] ?? []));
  if (step === 'pretrain' && resuming) argv.push('--resume');
  return argv;
}

/**
 * Splits one `--<stage> '<args>'` value into words (shell quoting rules, no expansion) and
 * refuses operators, globs and the options k3m-slurm sets itself.
 * @example splitStageArgs('--preset small-c4 --seed "1"', '--extract') // ['--preset', 'small-c4', '--seed', '1']
 */
export function splitStageArgs(text: string, flag: string): string[] {
  const words = parse(text, (name) => `$${name}`);
  const out: string[] = [];
  for (const w of words) {
    if (typeof w !== 'string') throw new UsageError(`${flag} ${JSON.stringify(text)}: only options and values, no shell operators or globs`);
    const name = w.split('=')[0]!;
    if (RESERVED.includes(name)) throw new UsageError(`${flag} ${JSON.stringify(text)}: ${name} is set by k3m-slurm`);
    out.push(w);
  }
  return out;
}

/**
 * One argv word for a shell script: bare when it is plain, else single-quoted. Words that are
 * already shell syntax (the Slurm shard word) pass unchanged.
 * @example shellWord('a b') // "'a b'"
 */
export function shellWord(w: string): string {
  if (/^"\$SLURM_ARRAY_TASK_ID\/\d+"$/.test(w)) return w;
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
  return `'${w.replace(/'/g, `'\\''`)}'`;
}
