import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, TensorpackLmdbWriter, type K3mRecord } from '@k3m-kit/lmdb-writer';
import { addEvaluateCommand } from '../src/eval/command.ts';
import { evaluate } from '../src/eval/evaluate.ts';
import type { EvalResults } from '../src/eval/results.ts';
import { LMDB_FILES } from '../src/train/records.ts';
import { COLOURS, FakeEncoder, instanceRecords, makeRecords } from './eval-fixtures.ts';

async function writeLmdb(path: string, records: readonly K3mRecord[]): Promise<void> {
  const { writer } = TensorpackLmdbWriter.open(path, 'test');
  for (const r of records) await writer.append(encodeRecord(r));
  await writer.finish();
}

const openke = (rows: string[]) => `${rows.length}\n${rows.join('\n')}\n`;

let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'k3m-eval-'));
  const all = makeRecords(60);
  await writeLmdb(join(work, LMDB_FILES.train), all.slice(0, 40));
  await writeLmdb(join(work, LMDB_FILES.validation), all.slice(40));
  // KG: values = colours, items img0..img59, relation 颜色; every 5th item's colour is a test
  // triple, every 3rd other item's a training triple (the rest keep their colour in their text).
  await mkdir(join(work, 'kg'));
  const entities = [...COLOURS, ...all.map((r) => `item:${r.imageId}`)];
  await writeFile(join(work, 'kg', 'entity2id.txt'), openke(entities.map((e, i) => `${e}\t${i}`)));
  await writeFile(join(work, 'kg', 'relation2id.txt'), openke(['颜色\t0']));
  const triple = (i: number) => `${COLOURS.length + i} ${i % 4} 0`;
  const ids = [...all.keys()];
  await writeFile(join(work, 'kg', 'train2id.txt'), openke(ids.filter((i) => i % 5 !== 0 && i % 3 === 0).map(triple)));
  await writeFile(join(work, 'kg', 'valid2id.txt'), openke([]));
  await writeFile(join(work, 'kg', 'test2id.txt'), openke(ids.filter((i) => i % 5 === 0).map(triple)));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('evaluate', () => {
  it('writes results.json, the markdown tables and one plot per metric for both models', async () => {
    const opened: string[] = [];
    const report = await evaluate(
      {
        workDir: work,
        kinds: ['missing-title', 'noisy-image', 'missing-title-image'],
        rates: [0, 0.5, 1],
        probeSteps: 60,
        probeLr: 0.03,
        projectionDim: 8,
        backend: 'cpu',
        quiet: true,
      },
      async (runDir, role) => {
        opened.push(`${role}:${runDir}`);
        return { encoder: new FakeEncoder(), modalities: role === 'with-knowledge' ? ['title', 'image', 'knowledge'] : ['title', 'image'] };
      },
    );
    expect(opened).toEqual([`with-knowledge:${join(work, 'runs', 'k3m-small')}`, `without-knowledge:${join(work, 'runs', 'k3m-small-noknow')}`]);
    expect(report).toMatchObject({ in: 60, written: 60, rejected: 0, reconciles: true });
    const evalDir = join(work, 'runs', 'k3m-small', 'eval');
    const results = JSON.parse(readFileSync(join(evalDir, 'results.json'), 'utf8')) as EvalResults;
    expect(results.cells.map((c) => c.id)).toEqual([
      'clean',
      'missing-title@50',
      'missing-title@100',
      'noisy-image@50',
      'noisy-image@100',
      'missing-title-image@50',
      'missing-title-image@100',
    ]);
    const clean = results.cells[0]!.values;
    for (const m of ['with-knowledge', 'without-knowledge'] as const) {
      for (const k of ['classification.accuracy', 'classification.macroF1', 'title-to-image.rank@10', 'image-to-title.meanRank', 'completion.hits@1', 'completion.hits@10']) {
        expect(typeof clean[m][k], `${m} ${k}`).toBe('number');
      }
    }
    expect(results.splits).toMatchObject({
      items: { fit: { items: 40 }, eval: { items: 20 } },
      completion: { evalQuestions: 4, fitQuestions: 11, valueVocabulary: 4 },
      instance: { skipped: 'no evaluation item carries instance labels, or no fit item shows exactly one product' },
    });
    expect(results.chance['title-to-image.rank@10']).toBeCloseTo(0.5, 12);
    // The model without knowledge cannot tell anything once title and image are gone.
    const gone = results.cells.find((c) => c.id === 'missing-title-image@100')!.values;
    expect(gone['with-knowledge']['classification.accuracy']!).toBeGreaterThan(gone['without-knowledge']['classification.accuracy']!);
    expect(gone['without-knowledge']['title-to-image.rank@10']).toBeCloseTo(0.5, 6);

    const md = readFileSync(join(evalDir, 'results.md'), 'utf8');
    expect(md).toContain('| setting | Acc w/ K | Acc w/o K | macro-F1 w/ K | macro-F1 w/o K |');
    expect(md).toContain('| missing title+image 100% |');
    const plots = readdirSync(join(evalDir, 'plots'));
    expect(plots).toContain('title-to-image-rank10.svg');
    expect(plots).toHaveLength(13);
    const svg = readFileSync(join(evalDir, 'plots', 'classification-accuracy.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('with knowledge');
    expect(svg.match(/<polyline/g)!.length).toBe(3 * 2);
    const split = JSON.parse(readFileSync(join(evalDir, 'split.json'), 'utf8'));
    expect(split.eval).toHaveLength(20);
    expect(existsSync(join(work, 'reports', 'k3m-model-evaluate.json'))).toBe(true);
  });

  it('refuses a task named without its data, naming it', async () => {
    const opener = async () => ({ encoder: new FakeEncoder(), modalities: ['title', 'image'] as const });
    await expect(evaluate({ workDir: work, tasks: ['instance-retrieval'], kinds: [], backend: 'cpu', quiet: true }, opener)).rejects.toThrow(
      /^--tasks instance-retrieval: no evaluation item carries instance labels/,
    );
    const noKg = mkdtempSync(join(tmpdir(), 'k3m-eval-nokg-'));
    try {
      const all = makeRecords(10);
      await writeLmdb(join(noKg, LMDB_FILES.train), all);
      await expect(evaluate({ workDir: noKg, tasks: ['classification', 'completion'], kinds: [], backend: 'cpu', quiet: true }, opener)).rejects.toThrow(
        /^--tasks completion: no kg-triples OpenKE files in .*kg \(run kg-triples build\)$/,
      );
    } finally {
      rmSync(noKg, { recursive: true, force: true });
    }
  });

  it('refuses a baseline that was pretrained with knowledge', async () => {
    const all = ['title', 'image', 'knowledge'] as const;
    await expect(
      evaluate({ workDir: work, tasks: ['classification'], kinds: [], backend: 'cpu', quiet: true }, async () => ({ encoder: new FakeEncoder(), modalities: all })),
    ).rejects.toThrow(/--baseline k3m-small-noknow: pretrained with knowledge/);
  });
});

describe('evaluate --tasks instance-retrieval', () => {
  it('reads instance labels from the LMDB records and writes the Product1M table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k3m-eval-instance-'));
    try {
      const { gallery, queries } = instanceRecords();
      // A fit item showing two products is not a gallery item.
      await writeLmdb(join(dir, LMDB_FILES.train), [...gallery, { ...queries[8]!, imageId: 'fit01' }]);
      await writeLmdb(join(dir, LMDB_FILES.validation), queries);
      const report = await evaluate(
        { workDir: dir, tasks: ['instance-retrieval'], kinds: ['missing-image'], rates: [0, 1], backend: 'cpu', quiet: true },
        async (_runDir, role) => ({ encoder: new FakeEncoder(), modalities: role === 'with-knowledge' ? ['title', 'image', 'knowledge'] : ['title', 'image'] }),
      );
      expect(report).toMatchObject({ in: 36, written: 36, rejected: 0, reconciles: true });
      const results = report.results;
      expect(results.splits.instance).toEqual({
        source: 'queries: evaluation items with instance labels; gallery: fit items showing exactly one product',
        queries: 11,
        gallery: 24,
        multiProductQueries: 2,
      });
      const clean = results.cells.find((c) => c.id === 'clean')!.values;
      for (const m of ['with-knowledge', 'without-knowledge'] as const) {
        expect(clean[m]['instance.mAP@10']).toBeCloseTo(10 / 11, 6);
        expect(clean[m]['instance.prec@100']).toBeCloseTo(10 / 11, 6);
        expect(clean[m]['classification.accuracy']).toBeUndefined();
      }
      // Chance: 8 queries with 3 relevant of 24, 2 with 6, 1 with none.
      expect(results.chance['instance.prec@10']).toBeCloseTo((8 * (3 / 24) + 2 * (6 / 24)) / 11, 12);
      expect(results.chance['instance.mAP@10']).toBeGreaterThan(0);
      const evalDir = join(dir, 'runs', 'k3m-small', 'eval');
      const md = readFileSync(join(evalDir, 'results.md'), 'utf8');
      expect(md).toContain('### Instance retrieval');
      expect(md).toContain('| setting | mAP@10 w/ K | mAP@10 w/o K | mAP@50 w/ K |');
      expect(readdirSync(join(evalDir, 'plots')).sort()).toEqual(
        ['mAP10', 'mAP50', 'mAP100', 'prec10', 'prec50', 'prec100'].map((m) => `instance-${m}.svg`).sort(),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('k3m-model evaluate CLI', () => {
  it('documents its options and rejects a bad rate with the option named', async () => {
    const program = new Command().exitOverride();
    addEvaluateCommand(program);
    const sub = program.commands.find((c) => c.name() === 'evaluate')!;
    const help = sub.helpInformation();
    for (const flag of ['--run', '--baseline', '--kinds', '--rates', '--tasks', '--max-eval-items', '--fit-corruption', '--work-dir']) expect(help).toContain(flag);
    sub.exitOverride();
    await expect(program.parseAsync(['node', 'k3m-model', 'evaluate', '--rates', '0,150'])).rejects.toThrow(/--rates 0,150: expected percentages/);
  });
});
