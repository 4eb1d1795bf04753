/**
 * Each pretraining objective can learn (issue 11 part 4). A tiny model is pretrained through
 * the real trainer and data path on a synthetic catalogue where every answer is learnable:
 * title words and masked knowledge values name the same attributes, region features and
 * detector classes follow the item's category and colour, and each item's knowledge belongs to
 * it. On held-out items each objective must end well past chance, chance computed from the
 * same validation batches as the best constant predictor: of the masked title/knowledge tokens
 * (majority share, label entropy), of the masked regions' class distributions (the mean KL to
 * their mean), and 1/2 and ln 2 for the structure pairs (B positives, B negatives). "Well past":
 * the MLMs at least twice chance accuracy and a loss at least ln 2 below chance (twice the
 * likelihood of the right token); the masked-region KL and the structure error rate at most half
 * of chance, the structure loss at most half of ln 2.
 *
 * The original's structure loss (`--sam-shared-negative`) cannot learn, for any parameters: its
 * classifier is linear in c + knowledge and the negative shares the item's knowledge term, so
 * the logit margins of positives minus negatives sum to zero over every batch, and by
 * convexity its loss is at least ln 2 (README "Why the default run did not learn").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@k3m-kit/core';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../src/backend.ts';
import type { Batch } from '../src/data/batch.ts';
import { batches } from '../src/data/pipeline.ts';
import { makeRecord } from '../src/data/testing.ts';
import { DEFAULT_FIXES, DEFAULT_LOSS_WEIGHTS, forward, ORIGINAL_BEHAVIOUR } from '../src/model/k3m.ts';
import { K3mParams } from '../src/model/params.ts';
import { loadModel, type K3mModel } from '../src/model/represent.ts';
import { pretrainConfig } from '../src/train/config.ts';
import { pretrain } from '../src/train/pretrain.ts';
import { arraySource } from '../src/train/records.ts';
import { lossValues, validate, type BatchEval } from '../src/train/validate.ts';

const COLOURS = ['红色', '蓝色', '绿色', '黄色', '黑色', '白色'];
/** Categories: product word (3 characters) and two own properties with their values. */
const CATEGORIES = [
  { word: '连衣裙', props: [['领型', ['圆领', '方领', '立领']], ['袖长', ['长袖', '短袖', '无袖']]] },
  { word: '运动鞋', props: [['鞋底', ['橡胶', '泡棉', '气垫']], ['闭合', ['系带', '魔术', '套脚']]] },
  { word: '双肩包', props: [['容量', ['大号', '中号', '小号']], ['面料', ['尼龙', '帆布', '牛皮']]] },
  { word: '保温杯', props: [['容积', ['半升', '一升', '两升']], ['杯盖', ['弹盖', '旋盖', '吸管']]] },
  { word: '护眼灯', props: [['光源', ['暖光', '冷光', '三色']], ['开关', ['触摸', '按键', '遥控']]] },
  { word: '折叠伞', props: [['伞面', ['晴雨', '防晒', '透明']], ['伞骨', ['钢骨', '纤维', '铝合']]] },
] as const;
const FEATURE_DIM = 24;
const CLASSES = CATEGORIES.length + COLOURS.length;

/** Items whose title, knowledge and image agree (see the file header). */
function catalogue(n: number, seed: number): K3mRecord[] {
  const rng = new Rng(seed);
  const proto = (k: number) => {
    const r = new Rng(1000 + k);
    return Float32Array.from({ length: FEATURE_DIM }, () => r.normal());
  };
  const catP = CATEGORIES.map((_, i) => proto(i));
  const colP = COLOURS.map((_, i) => proto(100 + i));
  return Array.from({ length: n }, (_, i) => {
    const cat = rng.int(CATEGORIES.length);
    const col = rng.int(COLOURS.length);
    const { word, props } = CATEGORIES[cat]!;
    const vals = props.map(([, vs]) => vs[rng.int(vs.length)]!);
    const r = makeRecord({
      imageId: `syn${seed}_${i}`,
      caption: `${word}${COLOURS[col]}${vals[0]}${vals[1]}`,
      pv: `类别:${word};颜色:${COLOURS[col]};${props.map(([p], k) => `${p}:${vals[k]}`).join(';')}`,
      numBoxes: 8 + rng.int(5),
      featureDim: FEATURE_DIM,
      numClasses: CLASSES,
      seed: i,
    });
    for (let b = 0; b < r.numBoxes; b++) {
      for (let k = 0; k < FEATURE_DIM; k++) r.features[b * FEATURE_DIM + k] = catP[cat]![k]! + colP[col]![k]! + 0.5 * rng.normal();
      r.clsProb.fill(0, b * CLASSES, (b + 1) * CLASSES);
      r.clsProb[b * CLASSES + cat] = 0.6;
      r.clsProb[b * CLASSES + CATEGORIES.length + col] = 0.4;
    }
    return r;
  });
}

/** A tiny model: two text layers (co-attention on the second), one image layer. */
const TINY = {
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 64,
  v_hidden_size: 32,
  v_num_hidden_layers: 1,
  v_num_attention_heads: 2,
  v_intermediate_size: 64,
  v_biattention_id: [0],
  t_biattention_id: [1],
  bi_hidden_size: 32,
  bi_num_attention_heads: 2,
  max_position_embeddings: 64,
};
const STEPS = 260;

/** The best constant predictor of integer labels: majority share and label entropy (nats). */
function labelChance(labels: number[]): { accuracy: number; loss: number } {
  const counts = new Map<number, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  const n = labels.length;
  return { accuracy: Math.max(...counts.values()) / n, loss: [...counts.values()].reduce((a, c) => a - (c / n) * Math.log(c / n), 0) };
}

/** The best constant predictor of the masked regions' distributions: mean KL to their mean. */
function regionChance(bs: Batch[]): number {
  const rows: Float32Array[] = [];
  for (const b of bs) {
    const C = b.shape.numClasses;
    b.imageLabel.forEach((l, r) => l === 1 && rows.push(b.imageTarget.subarray(r * C, (r + 1) * C)));
  }
  const mean = rows[0]!.map((_, k) => rows.reduce((a, t) => a + t[k]!, 0) / rows.length);
  const kl = (t: Float32Array) => t.reduce((a, x, k) => (x > 0 ? a + x * Math.log(x / mean[k]!) : a), 0);
  return rows.reduce((a, t) => a + kl(t), 0) / rows.length;
}

let work: string;
let model: K3mModel;
let valBatches: Batch[];
const validation = catalogue(64, 2);

beforeAll(async () => {
  await startBackend('wasm');
  work = await mkdtemp(join(tmpdir(), 'k3m-learning-'));
  const r = await pretrain(pretrainConfig({ workDir: work, name: 'learn', model: TINY, steps: STEPS, batchSize: 8, lr: 5e-3, seed: 3 }), {
    train: arraySource(catalogue(240, 1)),
    backend: 'wasm',
  });
  expect(r.steps).toBe(STEPS);
  model = await loadModel(r.runDir);
  valBatches = [];
  for await (const b of batches(validation, { tokenizer: model.tokenizer, batchSize: 8, mode: 'validation', featureDim: FEATURE_DIM, numClasses: CLASSES })) valBatches.push(b);
}, 900_000);

afterAll(async () => {
  model?.dispose();
  await rm(work, { recursive: true, force: true });
});

async function* replay(bs: Batch[]) {
  yield* bs;
}

describe('every objective learns on a learnable synthetic catalogue', () => {
  it(`title MLM, knowledge MLM, masked-region KL and structure end well past chance after ${STEPS} steps`, async () => {
    expect(model.fixes).toEqual(DEFAULT_FIXES);
    const evaluate = async (b: Batch): Promise<BatchEval> => {
      let out: BatchEval | undefined;
      tf.tidy(() => {
        const r = forward(model.params, b, { fusionMode: model.fusionMode, gumbel: 'argmax', fixes: model.fixes, weights: DEFAULT_LOSS_WEIGHTS, accuracy: true });
        out = { losses: lossValues(r.losses), accuracy: r.accuracy! };
      });
      return out!;
    };
    const v = (await validate(replay(valBatches), evaluate, { weights: DEFAULT_LOSS_WEIGHTS, parallel: 1 }))!;
    const title = labelChance(valBatches.flatMap((b) => [...b.lmLabelIds].filter((l) => l >= 0)));
    const knowledge = labelChance(valBatches.flatMap((b) => [...b.lmLabelIdsPv].filter((l) => l >= 0)));
    const region = regionChance(valBatches);
    const rows = [
      ['title MLM', v.accuracy.title_mlm!, title.accuracy, v.losses.masked_loss_t!, title.loss],
      ['knowledge MLM', v.accuracy.knowledge_mlm!, knowledge.accuracy, v.losses.masked_loss_pv!, knowledge.loss],
      ['structure', v.accuracy.structure!, 0.5, v.losses.loss_tri!, Math.LN2],
    ] as const;
    for (const [name, acc, accChance, loss, lossChance] of rows) {
      console.log(`learning: ${name}: accuracy ${acc.toFixed(3)} (chance ${accChance.toFixed(3)}), loss ${loss.toFixed(3)} (chance ${lossChance.toFixed(3)})`);
    }
    console.log(`learning: masked-region KL ${v.losses.masked_loss_v!.toFixed(3)} (chance ${region.toFixed(3)})`);
    for (const [name, acc, accChance, loss, lossChance] of rows.slice(0, 2)) {
      expect(acc, `${name} accuracy`).toBeGreaterThan(2 * accChance);
      expect(loss, `${name} loss`).toBeLessThan(lossChance - Math.LN2);
    }
    const [, structureAcc, , structureLoss] = rows[2];
    expect(1 - structureAcc, 'structure error rate').toBeLessThan(0.5 / 2);
    expect(structureLoss, 'structure loss').toBeLessThan(Math.LN2 / 2);
    expect(v.losses.masked_loss_v!, 'masked-region KL').toBeLessThan(region / 2);
  });

  it('the MLM accuracy "answer hidden" counts exactly the labelled positions whose input is not the answer, and the title MLM learns there too', () => {
    let hidden = 0;
    let kept = 0;
    const counts = { t: [0, 0], tHidden: [0, 0] };
    for (const b of valBatches) {
      b.lmLabelIds.forEach((l, i) => {
        if (l < 0) return;
        if (b.inputIds[i] === l) kept++;
        else hidden++;
      });
      tf.tidy(() => {
        const a = forward(model.params, b, { fusionMode: model.fusionMode, gumbel: 'argmax', fixes: model.fixes, weights: DEFAULT_LOSS_WEIGHTS, accuracy: true }).accuracy!;
        for (const k of ['t', 'tHidden'] as const) for (const j of [0, 1]) counts[k][j]! += a[k][j]!;
      });
    }
    const chance = labelChance(valBatches.flatMap((b) => [...b.lmLabelIds].filter((l, i) => l >= 0 && b.inputIds[i] !== l)));
    console.log(`learning: title MLM where the input hides the answer ${(counts.tHidden[0]! / counts.tHidden[1]!).toFixed(3)} over ${hidden} positions (chance ${chance.accuracy.toFixed(3)}); ${kept} labelled positions show their answer`);
    expect(kept).toBeGreaterThan(0);
    expect(counts.tHidden[1]).toBe(hidden);
    expect(counts.t[1]).toBe(hidden + kept);
    expect(counts.tHidden[0]! / counts.tHidden[1]!).toBeGreaterThan(2 * chance.accuracy);
  });

  it("the original's structure loss is never below ln 2: its logit margins sum to zero over every batch, trained or not", () => {
    const fresh = K3mParams.init(model.config, 11);
    for (const params of [fresh, model.params]) {
      for (const b of valBatches) {
        tf.tidy(() => {
          const r = forward(params, b, { fusionMode: model.fusionMode, gumbel: 'argmax', outputs: 'all', fixes: ORIGINAL_BEHAVIOUR });
          const logits = r.outputs.sam_logits!.arraySync() as number[][];
          const B = b.shape.batchSize;
          const margin = (k: number) => logits[k]![1]! - logits[k]![0]!;
          let sum = 0;
          let scale = 0;
          for (let i = 0; i < B; i++) {
            sum += margin(i) - margin(B + i);
            scale += Math.abs(margin(i)) + Math.abs(margin(B + i));
          }
          expect(Math.abs(sum)).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1));
          expect(r.losses.loss_tri!.dataSync()[0]!).toBeGreaterThanOrEqual(Math.LN2 - 1e-6);
        });
      }
    }
    fresh.dispose();
  });
});
