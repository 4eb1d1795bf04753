/**
 * The trainer on in-memory records through the real data path: losses are logged per step,
 * checkpoints carry the original names, an interrupted run resumed from its checkpoint logs the
 * same losses as an uninterrupted one, and a title+image model trains without knowledge losses.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '@k3m-kit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../src/backend.ts';
import { makeRecord } from '../src/data/testing.ts';
import { TINY_MODEL } from '../src/testing.ts';
import { STOPPED_EARLY } from '../src/data/pipeline.ts';
import { modalitySetup, pretrainConfig } from '../src/train/config.ts';
import { pretrain, type PretrainIo } from '../src/train/pretrain.ts';
import { arraySource, type RecordSource } from '../src/train/records.ts';
import { encodeRecords, loadModel, REPRESENTATION_NAMES } from '../src/model/represent.ts';

const WORDS = ['红色', '蓝色', '棉', '麻', '连衣裙', '衬衫', '夏季', '新款', '女装', '男装'];
const PROPS = ['颜色', '材质', '风格', '尺码'];

function records(n: number, seed: number) {
  return Array.from({ length: n }, (_, i) => {
    const w = (k: number) => WORDS[(i * 7 + k * 3 + seed) % WORDS.length]!;
    return makeRecord({
      imageId: `item${seed}_${i}`,
      caption: `${w(0)}${w(1)}${w(2)}`,
      pv: PROPS.map((p, k) => `${p}:${w(k + 3)}`).join(';'),
      numBoxes: 1 + (i % 4),
      featureDim: 16,
      numClasses: 12,
      seed: i,
    });
  });
}

/** Records whose region classes follow the title's first word, so the image loss is learnable. */
function learnableRecords(n: number, seed: number) {
  return records(n, seed).map((r, i) => {
    const cls = ((i * 7 + seed) % WORDS.length) % r.numClasses;
    const clsProb = new Float32Array(r.numBoxes * r.numClasses);
    for (let b = 0; b < r.numBoxes; b++) clsProb[b * r.numClasses + cls] = 1;
    return { ...r, clsProb };
  });
}


let work: string;
beforeAll(async () => {
  await startBackend('wasm');
  work = await mkdtemp(join(tmpdir(), 'k3m-pretrain-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type RunOptions = Partial<Parameters<typeof pretrainConfig>[0]> & Partial<Pick<PretrainIo, 'signal' | 'onStep'>> & { train?: RecordSource; validation?: RecordSource };

/** A tiny run on in-memory records: 24 training and 8 validation records unless given. */
const run = ({ train, validation, signal, onStep, ...over }: RunOptions) =>
  pretrain(
    pretrainConfig({ workDir: work, name: 'run', model: TINY_MODEL, epochs: 1, batchSize: 4, lr: 1e-3, seed: 7, checkpointEvery: 3, shuffleBuffer: 8, fusionMode: 1, ...over }),
    { train: train ?? arraySource(records(24, 0)), validation: validation ?? arraySource(records(8, 1)), backend: 'wasm', signal, onStep },
  );

const stepLosses = async (dir: string) =>
  (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.type === 'step')
    .map((m) => [m.step, m.loss, m.losses]);

describe('pretrain', () => {
  it('an interrupted run resumed from its checkpoint logs the same losses as an uninterrupted one', async () => {
    const full = await run({ name: 'full', steps: 8, epochs: 2 });
    expect(full.steps).toBe(8);
    expect(full.validation.length).toBeGreaterThanOrEqual(2);
    const want = await stepLosses(full.runDir);
    expect(want).toHaveLength(8);
    for (const [, loss] of want) expect(Number.isFinite(loss)).toBe(true);

    const ctl = new AbortController();
    const cut = await run({ name: 'cut', steps: 8, epochs: 2, signal: ctl.signal, onStep: (m) => m.step === 5 && ctl.abort() });
    expect(cut.aborted).toBe(true);
    expect(cut.steps).toBe(5);
    const resumed = await run({ name: 'cut', steps: 8, epochs: 2, resume: true });
    expect(resumed.resumedFrom).toBe(3);
    expect(await stepLosses(resumed.runDir)).toEqual(want);

    const sd = (await readSafetensors(join(full.runDir, 'model.safetensors'))).tensors;
    expect(sd.has('bert_tri.encoder_tri.c_layer_pv_t.0.biOutput.LayerNorm1.weight')).toBe(true);
    expect(sd.has('cls.predictions.decoder.weight')).toBe(true);
  });

  it('trains on every record and counts each epoch independently of what it trained', async () => {
    const rs = records(22, 2);
    rs[5] = makeRecord({ imageId: 'bad', numBoxes: 2, featureDim: 9, numClasses: 12 });
    // 21 usable records at batch 4: four batches of 4 and one of 5 (the single one joins it)
    const r = await run({ name: 'count', epochs: 2, train: arraySource(rs) });
    expect(r.steps).toBe(10);
    expect(r.epochs.map((e) => [e.epoch, e.in, e.written, e.rejected, e.complete, e.reconciles])).toEqual([
      [0, rs.length, 21, 1, true, true],
      [1, rs.length, 21, 1, true, true],
    ]);
    expect(r.records).toMatchObject({ in: 22, written: 21, rejected: 1, reconciles: true });
    const lines = (await readFile(join(work, 'rejects', 'k3m-model-pretrain-count.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(['bad']);

    // a step budget that ends the epoch early: the records not reached are skipped, with why
    const cut = await run({ name: 'budget', steps: 2, train: arraySource(records(24, 2)) });
    const e = cut.epochs[0]!;
    expect(e.complete).toBe(false);
    expect(e.written).toBe(8);
    expect(e.skippedByReason?.[STOPPED_EARLY]).toBeGreaterThan(0);
    expect(e.in).toBe(e.written + e.skippedByReason![STOPPED_EARLY]!);
    expect(e.reconciles).toBe(true);
  });

  it('training lowers every validation loss (before training vs the last epoch)', async () => {
    const r = await run({ name: 'learn', epochs: 4, lr: 3e-3, train: arraySource(learnableRecords(48, 0)), validation: arraySource(learnableRecords(24, 0)) });
    const first = r.validation[0]!;
    const last = r.validation.at(-1)!;
    expect(first.epoch).toBe(-1);
    expect(last.epoch).toBe(3);
    for (const k of ['masked_loss_t', 'masked_loss_v', 'masked_loss_pv', 'loss_tri'] as const) {
      expect(last.losses[k]!, k).toBeLessThan(first.losses[k]!);
    }
  });

  it('modalities and corruption: an absent modality is always dropped and its losses weighted 0', () => {
    expect(modalitySetup(['title', 'image'], { noiseImage: 0.2 })).toEqual({ weights: { t: 1, v: 1, pv: 0, tri: 0 }, corruption: { noiseImage: 0.2, dropKnowledge: 1 } });
    expect(modalitySetup(['title', 'image', 'knowledge'], { dropImage: 0.3 })).toEqual({ weights: { t: 1, v: 1, pv: 1, tri: 1 }, corruption: { dropImage: 0.3 } });
  });

  it('--modalities title,image trains without knowledge losses; its representations ignore knowledge', async () => {
    const r = await run({ name: 'noknow', steps: 3, modalities: ['title', 'image'] });
    const last = r.stepMetrics.at(-1)!;
    expect(last.losses.masked_loss_pv).toBeUndefined();
    expect(last.losses.loss_tri).toBeUndefined();
    expect(last.losses.masked_loss_t).toBeGreaterThan(0);

    const items = records(5, 3);
    const otherKnowledge = items.map((it) => ({ ...it, pv: '颜色:黑色;材质:丝' }));
    const noKnow = await loadModel(r.runDir);
    expect(noKnow.modalities).toEqual(['title', 'image']);
    const a = await encodeRecords(noKnow, items, { batchSize: 2 });
    expect(a.batchSize).toBe(5);
    expect(a.rows.c_final).toHaveLength(5 * 16);
    // The same batches bit for bit: across batch sizes the sums may differ in the last bits (BLAS
    // kernels that pick their blocking by the row count, e.g. OpenBLAS on AVX-512), which the
    // batch-size check below allows for.
    expect(Array.from((await encodeRecords(noKnow, otherKnowledge, { batchSize: 2 })).rows.c_final)).toEqual(Array.from(a.rows.c_final));
    noKnow.dispose();

    const full = await loadModel(join(work, 'runs', 'full'));
    const b1 = await encodeRecords(full, items, { batchSize: 2 });
    const b2 = await encodeRecords(full, items, { batchSize: 3 });
    for (const n of REPRESENTATION_NAMES) {
      const x = b1.rows[n];
      const y = b2.rows[n];
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThan(1e-5);
    }
    const changed = await encodeRecords(full, otherKnowledge, { batchSize: 2 });
    expect(Array.from(changed.rows.pooled_pv)).not.toEqual(Array.from(b1.rows.pooled_pv));
    expect(Array.from(changed.rows.pooled_t)).not.toEqual(Array.from(b1.rows.pooled_t));
    full.dispose();
  });
});
