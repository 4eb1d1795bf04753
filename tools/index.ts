/**
 * @file The workspace tools' library API: the embedded-sample generator (design.md section 9)
 * and what tests need to read its output back, and k3m-slurm (the pipeline as Slurm jobs).
 */
export { makeSample, SAMPLE_DEFAULTS, type SampleOptions } from './sample/generate.ts';
export { makeFormatSample, FORMAT_SAMPLE_DEFAULTS, SAMPLE_FORMATS, type FormatFault, type FormatFaultsFile, type FormatSampleOptions, type SampleFormat } from './sample/formats.ts';
export {
  FAULT_KINDS,
  FAULT_KIND_NAMES,
  FAULTS_FILE,
  PLACEHOLDER,
  faultCount,
  readFaults,
  type FaultKindName,
  type FaultRecord,
  type FaultsFile,
  type SampleExpectation,
  type SampleFile,
} from './sample/faults.ts';
export { BRANDS, CATEGORIES, COLOURS, COLOUR_NAMES, DOMAINS, SHAPE_BY_VALUE, categoryDomains, shapeFor, type Category, type ColourName, type Shape } from './sample/catalogue.ts';
export { MIN_PAIRS, MAX_PAIRS } from './sample/item.ts';
export { centreColour, nearestColour, MIN_SIDE, MAX_SIDE } from './sample/image.ts';
export { STEPS, STEP_NAMES, STAGE_ARG_FLAGS, planSteps, stepCommand, splitStageArgs, shellWord, type PipelineOptions, type PlannedStep, type StepName } from './slurm/pipeline.ts';
export { renderScript, logPattern, SLURM_DIR, type ClusterOptions } from './slurm/sbatch-script.ts';
export { submit, type SubmitOptions, type SubmittedStep } from './slurm/submit.ts';
export { status, type StepStatus } from './slurm/status.ts';
export { resume, resumePlan, type ResumeStep } from './slurm/resume.ts';
export { readJobsFile, decodeJobsFile, encodeJobsFile, jobsFilePath, type JobsFile } from './slurm/jobs-file.ts';
