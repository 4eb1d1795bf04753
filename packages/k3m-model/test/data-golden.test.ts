/**
 * Parity of the data path with the original K3M: preprocess.jsonl (tokenisation, truncation,
 * knowledge masking, index pairs; title masking off) for all 400 rows, and the image side of the
 * golden model batch given the recorded region masking choices.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BATCH_FIELDS } from '../src/data/batch.ts';
import { collate } from '../src/data/collate.ts';
import { encodeRecord, imageSide, preprocess, resolvePreprocessOptions, type Sample } from '../src/data/preprocess.ts';
import { Rng } from '@k3m-kit/core';
import { goldenFiles, makeRecord, readGoldenImageBatch, readPreprocessGolden } from '../src/data/testing.ts';
import { K3mTokenizer } from '../src/data/tokenizer.ts';
import { toFloat32, toInt32 } from '@k3m-kit/core';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
const GOLDEN = resolve(repoRoot, '../shared/data/k3m-golden');
const text = goldenFiles(GOLDEN, ['vocab.txt', 'preprocess.jsonl']);
const image = goldenFiles(GOLDEN, ['image_raw.safetensors', 'inputs.safetensors']);
if (!text.ok) console.warn(`skipping preprocess.jsonl parity: ${text.reason}`);
if (!image.ok) console.warn(`skipping image-side parity: ${image.reason}`);

describe.skipIf(!text.ok)('preprocess.jsonl parity (400 rows, title masking off)', () => {
  it('tokenizer finds the reference special ids in vocab.txt', async () => {
    const tok = await K3mTokenizer.fromVocabFile(resolve(GOLDEN, 'vocab.txt'));
    expect(tok.ids).toEqual({ pad: 0, unk: 100, cls: 101, sep: 102, mask: 103, colon: 131, semicolon: 132 });
    expect(tok.vocabSize).toBe(21128);
  });

  it('matches every field of every row', async () => {
    const tok = await K3mTokenizer.fromVocabFile(resolve(GOLDEN, 'vocab.txt'));
    const rows = await readPreprocessGolden(GOLDEN);
    expect(rows).toHaveLength(400);
    const opts = resolvePreprocessOptions({ titleMaskProb: 0 });
    const fields = ['input_ids', 'input_mask', 'lm_label_ids', 'input_ids_pv', 'input_mask_pv', 'lm_label_ids_pv', 'index_p', 'index_v'] as const;
    const mismatches: string[] = [];
    for (const row of rows) {
      const record = makeRecord({ imageId: row.item_id, caption: row.title, pv: row.pv, numBoxes: 0 });
      const s = preprocess(record, await encodeRecord(tok, record), tok, opts, Rng.from('golden', row.row));
      const pairs = (a: Int32Array) => Array.from({ length: a.length / 2 }, (_, k) => [a[2 * k], a[2 * k + 1]]);
      const got: Record<(typeof fields)[number], unknown> = {
        input_ids: [...s.inputIds],
        input_mask: [...s.inputMask],
        lm_label_ids: [...s.lmLabelIds],
        input_ids_pv: [...s.inputIdsPv],
        input_mask_pv: [...s.inputMaskPv],
        lm_label_ids_pv: [...s.lmLabelIdsPv],
        index_p: pairs(s.indexP),
        index_v: pairs(s.indexV),
      };
      for (const f of fields) if (JSON.stringify(got[f]) !== JSON.stringify(row[f])) mismatches.push(`row ${row.row} ${f}`);
    }
    expect(mismatches).toEqual([]);
  });
});

describe.skipIf(!image.ok)('image side of the golden model batch', () => {
  it('reproduces image_feat (global row included), image_loc, image_mask, image_label, image_target and the overlap mask', async () => {
    const g = await readGoldenImageBatch(GOLDEN);
    const opts = resolvePreprocessOptions();
    const samples: Sample[] = g.records.map((r, b) => {
      const side = imageSide(r, g.choices[b]!, opts);
      // The text side is not under test here; take it from the golden inputs.
      const int = (name: string, len: number) => toInt32(g.inputs.get(name)!).slice(b * len, (b + 1) * len);
      return {
        imageId: r.imageId,
        inputIds: int('input_ids', 36),
        inputMask: int('input_mask', 36),
        lmLabelIds: int('lm_label_ids', 36),
        inputIdsPv: int('input_ids_pv', 48),
        inputMaskPv: int('input_mask_pv', 48),
        lmLabelIdsPv: int('lm_label_ids_pv', 48),
        ...side,
        indexP: int('index_p', 20),
        indexV: int('index_v', 20),
        numPairs: 0,
      };
    });
    expect(samples.flatMap((s) => [...s.maskedLabel])).toEqual([...g.maskedLabel]);
    const batch = collate(samples, opts);
    for (const [field, name] of Object.entries(BATCH_FIELDS)) {
      const t = g.inputs.get(name)!;
      const ours = batch[field as keyof typeof BATCH_FIELDS];
      const want = t.dtype === 'F32' ? toFloat32(t) : toInt32(t);
      expect(ours.length, name).toBe(want.length);
      let diff = 0;
      for (let i = 0; i < want.length; i++) if (ours[i] !== want[i]) diff++;
      expect(diff, `${name}: ${diff} elements differ`).toBe(0);
    }
  });
});
