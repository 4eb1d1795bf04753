/**
 * The Kubernetes manifests in docs/k8s/: valid YAML of the batch/v1 Job (and PersistentVolumeClaim)
 * fields they use, checked by strict schemas so a misspelt field fails; Indexed Jobs for the
 * sharded stages; and each container command equal to the stage command k3m-slurm runs for the
 * same step (with --num-shards beside JOB_COMPLETION_INDEX instead of --shard).
 *
 * No kubectl validates a manifest offline (Debian's kubernetes-client and kubectl both need an
 * API server for schemas and kinds), so the structure is checked here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { STEPS, planSteps, stepCommand, type PipelineOptions } from '@k3m-kit/tools';

const DIR = resolve(import.meta.dirname, '../../docs/k8s');
const SHARDS = 4;
const PIPELINE: PipelineOptions = { workDir: '/data/work', inputs: ['/data/raw/train.tsv:train', '/data/raw/valid.tsv:val'], shards: SHARDS, stageArgs: {} };

const Labels = z.record(z.string(), z.string());
const Container = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/),
    image: z.string().min(1),
    workingDir: z.string().startsWith('/'),
    command: z.array(z.string()).min(2),
    resources: z.object({ limits: z.object({ 'nvidia.com/gpu': z.number().int().positive() }).strict() }).strict().optional(),
    volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string().startsWith('/') }).strict()).min(1),
  })
  .strict();
const JobSchema = z
  .object({
    apiVersion: z.literal('batch/v1'),
    kind: z.literal('Job'),
    metadata: z.object({ name: z.string().regex(/^[a-z0-9-]{1,63}$/), labels: Labels }).strict(),
    spec: z
      .object({
        completionMode: z.literal('Indexed').optional(),
        completions: z.number().int().positive().optional(),
        parallelism: z.number().int().positive().optional(),
        backoffLimit: z.number().int().nonnegative(),
        template: z
          .object({
            metadata: z.object({ labels: Labels }).strict(),
            spec: z
              .object({
                restartPolicy: z.enum(['OnFailure', 'Never']),
                containers: z.array(Container).length(1),
                volumes: z.array(z.object({ name: z.string(), persistentVolumeClaim: z.object({ claimName: z.string() }).strict() }).strict()).min(1),
              })
              .strict(),
          })
          .strict(),
      })
      .strict(),
  })
  .strict();
const ClaimSchema = z
  .object({
    apiVersion: z.literal('v1'),
    kind: z.literal('PersistentVolumeClaim'),
    metadata: z.object({ name: z.string(), labels: Labels }).strict(),
    spec: z.object({ accessModes: z.array(z.literal('ReadWriteMany')).length(1), resources: z.object({ requests: z.object({ storage: z.string() }).strict() }).strict() }).strict(),
  })
  .strict();

/** The one document of a file, parsed strictly (YAML errors and warnings fail). */
function load(file: string): unknown {
  const docs = parseAllDocuments(readFileSync(join(DIR, file), 'utf8'), { strict: true, uniqueKeys: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: no YAML document`);
  expect(docs).toHaveLength(1);
  expect([...docs[0]!.errors, ...docs[0]!.warnings].map((e) => e.message)).toEqual([]);
  return docs[0]!.toJS();
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
const stepFiles = files.filter((f) => !f.startsWith('00-'));

describe('docs/k8s manifests', () => {
  it('one claim for the shared filesystem, then one Job per pipeline step, in order', () => {
    expect(files[0]).toBe('00-data-volume.yaml');
    ClaimSchema.parse(load(files[0]!));
    expect(stepFiles.map((f) => f.replace(/^\d\d-|\.yaml$/g, ''))).toEqual(planSteps(SHARDS).map((s) => s.name));
  });

  for (const [i, step] of planSteps(SHARDS).entries()) {
    it(`${step.name}: ${step.sharded ? 'an Indexed Job of 4' : 'a single Job'} running the k3m-slurm command`, () => {
      const job = JobSchema.parse(load(stepFiles[i]!));
      expect(job.metadata.name).toBe(`k3m-${step.name}`);
      const pod = job.spec.template.spec;
      const c = pod.containers[0]!;
      if (step.sharded) {
        expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: SHARDS, parallelism: SHARDS });
      } else {
        expect(job.spec.completionMode).toBeUndefined();
        expect(job.spec.completions ?? 1).toBe(1);
      }
      // A restarted pretrain pod continues from its checkpoint.
      expect(c.command).toEqual(['npx', ...stepCommand(step.name, PIPELINE, 'kubernetes', step.name === 'pretrain')]);
      expect(c.command).not.toContain('--shard');
      expect(c.resources?.limits['nvidia.com/gpu'] !== undefined).toBe(STEPS[step.name].gpu);
      expect(pod.volumes[0]!.persistentVolumeClaim.claimName).toBe('k3m-data');
      const mount = c.volumeMounts.find((m) => m.name === pod.volumes[0]!.name)!;
      expect(PIPELINE.workDir.startsWith(mount.mountPath + '/')).toBe(true);
    });
  }
});
