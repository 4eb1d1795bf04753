/**
 * @file The options `pretrain` gains for continual pretraining by domain (`--domains`): which
 * domains in which order, where domains come from, the reference run, and the budget of the
 * retrieval evaluation after each stage. Kept beside train/config.ts (the single-run options)
 * and merged with them by the CLI.
 */
import { z } from 'zod';
import { defineOptions, floatArg, intArg, optionsSchema, type OptionsOf } from '@k3m-kit/core';
import { parseDomains } from './domains.ts';
import type { PretrainConfig } from './config.ts';

export const CONTINUAL_OPTIONS = defineOptions({
  domains: {
    flags: '--domains <list>',
    description: "continual pretraining: train on these product domains one after another (a stage each, from the previous stage's weights), evaluating retrieval on every domain after each stage, next to joint training",
    schema: z.array(z.string().min(1)).min(1).optional(),
    parse: parseDomains,
  },
  domainMap: { flags: '--domain-map <file>', description: "category-to-domain map JSON, for records without a domain field (e.g. the sample's domains.json)", schema: z.string().optional() },
  skipJoint: { flags: '--skip-joint', description: '--domains: leave out the joint-training reference run', schema: z.boolean().default(false) },
  evalFitItems: { flags: '--eval-fit-items <n>', description: "--domains: seeded cap on each domain's training items the retrieval projection is fitted on (0 = all)", schema: z.number().int().nonnegative().default(0), parse: intArg('--eval-fit-items') },
  evalShrinkage: { flags: '--eval-shrinkage <r>', description: "--domains: covariance shrinkage of the retrieval projection's CCA fit, in (0, 1]", schema: z.number().gt(0).max(1).default(0.5), parse: floatArg('--eval-shrinkage', 1e-6, 1) },
});

export const ContinualOptionsSchema = optionsSchema(CONTINUAL_OPTIONS);

/** A continual run: the single-run options (every stage's) plus the ones above, domains given. */
export type ContinualConfig = PretrainConfig & Omit<OptionsOf<typeof CONTINUAL_OPTIONS>, 'domains'> & { domains: string[] };
