/**
 * The `k3m-model` CLI end to end: `pretrain` on a small LMDB written with lmdb-writer's codec
 * (report, run directory, checkpoint names), `forward` on the golden files (the parity tool),
 * `build-vocab`, `--help` and exit codes.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { encodeRecord, TensorpackLmdbWriter } from '@k3m-kit/lmdb-writer';
import { readSafetensors, toFloat32 } from '@k3m-kit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRecord } from '../src/data/testing.ts';
import { LMDB_FILES } from '../src/train/records.ts';
import { goldenDir, TINY_MODEL } from '../src/testing.ts';

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = join(repoRoot, 'packages/k3m-model/bin/k3m-model.js');
const golden = goldenDir(repoRoot);
void pathToFileURL;

const cli = async (args: string[]) => {
  try {
    const r = await run(process.execPath, [bin, ...args], { cwd: repoRoot, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

async function writeLmdb(path: string, n: number, seed: number): Promise<void> {
  const { writer } = TensorpackLmdbWriter.open(path, 'test');
  const words = ['红色', '蓝色', '棉', '麻', '连衣裙', '衬衫', '夏季', '新款'];
  for (let i = 0; i < n; i++) {
    const w = (k: number) => words[(i * 5 + k * 3 + seed) % words.length]!;
    await writer.append(encodeRecord(makeRecord({ imageId: `${seed}_${i}`, caption: `${w(0)}${w(1)}${w(2)}`, pv: `颜色:${w(3)};材质:${w(4)};风格:${w(5)}`, numBoxes: 1 + (i % 3), featureDim: 16, numClasses: 10, seed: i })));
  }
  await writer.finish();
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'k3m-cli-'));
  await writeLmdb(join(work, LMDB_FILES.train), 16, 0);
  await writeLmdb(join(work, LMDB_FILES.validation), 8, 1);
  await writeFile(
    join(work, 'tiny.json'),
    JSON.stringify(TINY_MODEL),
  );
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('k3m-model CLI', () => {
  it('--help lists the subcommands; a bad option exits 2 naming it', async () => {
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/pretrain/);
    expect(h.stdout).toMatch(/build-vocab/);
    expect(h.stdout).toMatch(/forward/);
    const bad = await cli(['pretrain', '--work-dir', work, '--modalities', 'title,smell']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--modalities/);
  });

  it('pretrain writes the run directory and reports/k3m-model-pretrain.json', async () => {
    const r = await cli(['pretrain', '--work-dir', work, '--quiet', '--json', '--model-config', join(work, 'tiny.json'), '--steps', '3', '--batch-size', '4', '--checkpoint-every', '2', '--backend', 'wasm', '--shuffle-buffer', '4']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ stage: 'k3m-model-pretrain', backend: 'wasm', steps: 3, in: 16, reconciles: true });
    expect(report.validationLast.accuracy.structure).not.toBeNull();
    const runDir = join(work, 'runs', 'k3m-small');
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'config.json', 'vocab.txt', 'trainer-state.json', 'metrics.jsonl', 'loss-curve.svg', 'run-config.json', 'report.json']) {
      expect(existsSync(join(runDir, f)), f).toBe(true);
    }
    expect(existsSync(join(work, 'reports', 'k3m-model-pretrain.json'))).toBe(true);
    const lines = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === 'step')).toHaveLength(3);
    expect(lines.filter((l) => l.type === 'validation').length).toBeGreaterThanOrEqual(2);
  });

  it('pretrain --preset k3m-base on wasm at a batch its heaps cannot hold exits 2 with one line: the config, the memory it needs, the limit, what to do', async () => {
    // 32 items per worker; the paper config itself trains on wasm with a few (packages/k3m-model/README.md, Memory).
    const r = await cli(['pretrain', '--work-dir', work, '--quiet', '--preset', 'k3m-base', '--batch-size', '64', '--name', 'base', '--steps', '1', '--backend', 'wasm']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--preset k3m-base \(\d+\.\d M parameters\) at --batch-size 64 on \d+ workers? needs about \d+\.\d GiB in each wasm worker's heap.*limit is 4 GiB per heap: lower --batch-size \(with --accumulate to keep the batch\)/);
  });

  it('build-vocab writes a vocab.txt from the training records', async () => {
    const r = await cli(['build-vocab', '--work-dir', work, '--quiet', '--json']);
    expect(r.code).toBe(0);
    const vocab = (await readFile(join(work, 'vocab.txt'), 'utf8')).split('\n');
    expect(vocab[0]).toBe('[PAD]');
    expect(vocab).toContain('红');
  });

  it.skipIf(!golden)('forward reproduces the golden mode-1 losses and intermediates from the files', async () => {
    const out = join(work, 'forward.safetensors');
    const r = await cli(['forward', '--config', join(golden!, 'config.json'), '--weights', join(golden!, 'weights.safetensors'), '--inputs', join(golden!, 'inputs.safetensors'), '--gumbel-noise', join(golden!, 'gumbel_noise.safetensors'), '--fusion-mode', '1', '--out', out, '--backend', 'wasm', '--json']);
    expect(r.code).toBe(0);
    const got = (await readSafetensors(out)).tensors;
    const want = (await readSafetensors(join(golden!, 'outputs_mode1.safetensors'))).tensors;
    for (const [name, t] of want) {
      const a = toFloat32(got.get(name)!);
      const b = toFloat32(t);
      let scale = 1;
      let d = 0;
      for (let i = 0; i < b.length; i++) {
        scale = Math.max(scale, Math.abs(b[i]!));
        d = Math.max(d, Math.abs(a[i]! - b[i]!));
      }
      expect(d, name).toBeLessThanOrEqual(1e-4 * scale);
    }
  });
});
