import { execFile } from 'node:child_process';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readItems } from '@k3m-kit/raw-ingest';
import { afterAll, describe, expect, it } from 'vitest';
import {
  build,
  itemEntity,
  merge,
  parsePv,
  partPaths,
  readKnowledge,
  readTriples2id,
  readTriplesTsv,
  readVocab,
  type KgReport,
  type PairReject,
} from '../src/index.ts';
import { tempWorkDir, writeSegments, type TestItem, type TestSegment } from '../src/testing.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = join(repoRoot, 'packages/kg-triples/bin/kg-triples.js');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function fresh(): Promise<string> {
  const d = await tempWorkDir();
  dirs.push(d);
  return d;
}

/** A deterministic catalogue with every kind of fault the cleaner handles. */
function catalogue(): TestSegment[] {
  let x = 12345;
  const rnd = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const props = ['颜色', '材质', '风格', '尺码', '适用年龄', '产地', '品牌', '稀有属性'];
  const values = ['红色', '蓝色', '棉', '简约', 'XL', '3岁', '5岁', '中国大陆', 'ＡＢＣ', '10:30', 'S;M'];
  const segs: TestSegment[] = [];
  let id = 1000;
  for (let s = 0; s < 7; s++) {
    const items: TestItem[] = [];
    for (let k = 0; k < 12; k++) {
      const n = rnd(14);
      const pairs: string[] = [];
      for (let j = 0; j < n; j++) {
        const p = props[rnd(props.length - 1)]!;
        const v = rnd(9) === 0 ? `独有值${id}-${j}` : values[rnd(values.length)]!;
        pairs.push(`${p}#:#${v}`);
      }
      if (rnd(5) === 0) pairs.push('品名#:#请填写');
      if (rnd(6) === 0 && pairs.length) pairs.push(pairs[0]!);
      if (rnd(8) === 0) pairs.push('稀有属性#:# ');
      if (k === 3 && s === 2) pairs.push('稀有属性#:#孤值');
      items.push({ itemId: String(id++), kg: pairs.join('#;#') });
    }
    segs.push({ split: s === 5 ? 'val' : 'train', items });
  }
  return segs;
}

async function filesUnder(dir: string, base = dir): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) for (const [k, v] of await filesUnder(p, base)) out.set(k, v);
    else out.set(p.slice(base.length + 1), await readFile(p));
  }
  return out;
}

async function outputs(workDir: string): Promise<Map<string, Buffer>> {
  const m = await filesUnder(join(workDir, 'kg'));
  m.set('rejects', await readFile(join(workDir, 'rejects', 'kg-triples.jsonl')));
  return m;
}

function withoutSeconds(r: object): object {
  const { seconds: _, ...rest } = r as { seconds: number };
  return rest;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('build', async () => {
  const segs = catalogue();
  const one = await fresh();
  await writeSegments(one, segs);
  const report = (await build({ workDir: one, quiet: true, holdoutRatio: 0.3 })) as KgReport;

  it('merges in a single run and the counts reconcile', async () => {
    expect(report.merged).toBe(true);
    expect(report.reconciles).toBe(true);
    expect(report.in).toBe(report.written + report.rejected);
    const rejects = (await readFile(join(one, 'rejects', 'kg-triples.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as PairReject);
    expect(rejects).toHaveLength(report.rejected);
    const byReason: Record<string, number> = {};
    for (const r of rejects) byReason[r.reason] = (byReason[r.reason] ?? 0) + 1;
    expect(byReason).toEqual(report.rejectedByReason);
    expect(Object.keys(byReason).sort()).toEqual(['duplicate-pair', 'empty-value', 'placeholder']);
    expect(rejects.every((r) => r.source.startsWith('id_title_pvs_cls.txt') && r.line! > 0 && r.id)).toBe(true);
    const tsv = await collect(readTriplesTsv(join(one, 'kg', 'triples.tsv')));
    expect(tsv).toHaveLength(report.written);
    expect(report.triples.train + report.triples.valid + report.triples.test).toBe(report.written);
    expect(report.items).toBe(segs.reduce((a, s) => a + s.items.length, 0));
    expect(report.steps.map((s) => s.step)).toEqual(['parse', 'nfkc', 'whitespace', 'empty', 'placeholders', 'separators', 'dedupe', 'thresholds']);
    expect(report.steps.find((s) => s.step === 'separators')!.changed).toBeGreaterThan(0);
    expect(report.topProperties.length).toBeGreaterThan(0);
    expect(report.pairsPerItem.before.items).toBe(report.items);
  });

  it('writes OpenKE files with dense ids that all resolve', async () => {
    const kg = join(one, 'kg');
    const entities = await readVocab(join(kg, 'entity2id.txt'));
    const relations = await readVocab(join(kg, 'relation2id.txt'));
    expect(new Set(entities).size).toBe(entities.length);
    expect(new Set(relations).size).toBe(relations.length);
    expect(entities.length).toBe(report.entities.total);
    const sets: Record<string, [number, number, number][]> = {};
    for (const f of ['train2id.txt', 'valid2id.txt', 'test2id.txt']) {
      sets[f] = await collect(readTriples2id(join(kg, f)));
      for (const [h, t, r] of sets[f]!) {
        expect(h).toBeLessThan(entities.length);
        expect(t).toBeLessThan(entities.length);
        expect(r).toBeLessThan(relations.length);
        expect(entities[h]!.startsWith('item:')).toBe(true);
        expect(entities[t]!.startsWith('item:')).toBe(false);
      }
    }
    const train = sets['train2id.txt']!;
    const held = [...sets['valid2id.txt']!, ...sets['test2id.txt']!];
    expect(held.length).toBeGreaterThan(0);
    expect(train.length + held.length).toBe(report.written);
    // No item, value or relation appears only in valid/test.
    const heads = new Set(train.map((t) => t[0]));
    const tails = new Set(train.map((t) => t[1]));
    const rels = new Set(train.map((t) => t[2]));
    for (const [h, t, r] of held) {
      expect(heads.has(h)).toBe(true);
      expect(tails.has(t)).toBe(true);
      expect(rels.has(r)).toBe(true);
    }
    // triples.tsv and train/valid/test name the same triples.
    const named = new Set([...train, ...held].map(([h, t, r]) => `${entities[h]}\t${relations[r]}\t${entities[t]}`));
    for await (const t of readTriplesTsv(join(kg, 'triples.tsv'))) expect(named.has(`${itemEntity(t.imageId)}\t${t.p}\t${t.v}`)).toBe(true);
  });

  it('writes one knowledge line per item, in manifest order, that merge-joins with readItems', async () => {
    for (const split of ['train', 'val'] as const) {
      const items = await collect(readItems(one, split));
      const know = await collect(readKnowledge(one, split));
      expect(know.map((k) => k.imageId)).toEqual(items.map((i) => i.imageId));
      expect(know.map((k) => k.itemId)).toEqual(items.map((i) => i.itemId));
    }
    const all = await collect(readKnowledge(one));
    expect(all).toHaveLength(report.items);
    const tsv = await collect(readTriplesTsv(join(one, 'kg', 'triples.tsv')));
    for (const k of all) {
      expect(k.pairs.length).toBeLessThanOrEqual(10);
      expect(parsePv(k.pv)).toEqual(k.pairs);
      const mine = tsv.filter((t) => t.imageId === k.imageId).map(({ p, v }) => ({ p, v }));
      expect(k.pairs).toEqual(mine.slice(0, 10));
    }
    expect(all.some((k) => k.pv === '')).toBe(true);
    expect(all.some((k) => k.pv.includes('10：30'))).toBe(true);
  });

  it('applies the vocabulary thresholds in the merge and rejects what they drop', async () => {
    const r = await merge(one, { minRelationFreq: 2, minEntityFreq: 2, quiet: true });
    expect(r.reconciles).toBe(true);
    expect(r.rejectedByReason['rare-relation']).toBe(1);
    expect(r.rejectedByReason['rare-entity']).toBeGreaterThan(0);
    expect(r.relations.droppedByThreshold).toBe(1);
    const values = await readVocab(join(one, 'kg', 'entity2id.txt'));
    expect(values).not.toContain('孤值');
    const rejects = await readFile(join(one, 'rejects', 'kg-triples.jsonl'), 'utf8');
    expect(rejects).toContain('"reason":"rare-relation","property":"稀有属性","value":"孤值"');
    // The knowledge strings do not depend on the thresholds.
    const r1 = await merge(one, { quiet: true, holdoutRatio: 0.3 });
    expect(withoutSeconds(r1)).toEqual(withoutSeconds(report));
  });

  it('gives byte-identical files from 3 shards', async () => {
    const sharded = await fresh();
    await writeSegments(sharded, segs);
    const a = await build({ workDir: sharded, quiet: true, holdoutRatio: 0.3, shard: { index: 1, count: 3 } });
    expect(a.merged).toBe(false);
    if (!a.merged) expect(a.segmentsPending).toEqual([0, 2, 3, 5, 6]);
    expect(a.reconciles).toBe(true);
    expect((await build({ workDir: sharded, quiet: true, holdoutRatio: 0.3, shard: { index: 0, count: 3 } })).merged).toBe(false);
    const last = await build({ workDir: sharded, quiet: true, holdoutRatio: 0.3, shard: { index: 2, count: 3 } });
    expect(last.merged).toBe(true);
    expect(withoutSeconds(last)).toEqual(withoutSeconds(report));
    const want = await outputs(one);
    const got = await outputs(sharded);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, v] of want) expect(got.get(k)!.equals(v), k).toBe(true);
  });

  it('resumes an interrupted run and redoes only unfinished or stale segments', async () => {
    const dir = await fresh();
    await writeSegments(dir, segs);
    // A run that finished the even segments, died inside segment 1 and made segment 3 with other options.
    await build({ workDir: dir, quiet: true, shard: { index: 0, count: 2 } });
    await build({ workDir: dir, quiet: true, maxPairs: 3, shard: { index: 1, count: 2 } });
    const kg = join(dir, 'kg');
    await rm(partPaths(kg, 1).marker);
    await writeFile(partPaths(kg, 1).triples, 'half a line');
    await writeFile(join(kg, 'parts', '.seg-1.triples.tsv.999.dead.tmp'), 'junk');
    const before = await stat(partPaths(kg, 0).marker);
    const r = await build({ workDir: dir, quiet: true, holdoutRatio: 0.3 });
    expect(r.merged).toBe(true);
    expect((await stat(partPaths(kg, 0).marker)).mtimeMs).toBe(before.mtimeMs);
    const want = await outputs(one);
    const got = await outputs(dir);
    for (const [k, v] of want) expect(got.get(k)!.equals(v), k).toBe(true);
    // A second identical run changes nothing, not even the report.
    const report1 = await readFile(join(dir, 'reports', 'kg-triples.json'));
    await build({ workDir: dir, quiet: true, holdoutRatio: 0.3 });
    expect((await readFile(join(dir, 'reports', 'kg-triples.json'))).equals(report1)).toBe(true);
  });

  it('merge refuses while segments are pending', async () => {
    const dir = await fresh();
    await writeSegments(dir, segs);
    await build({ workDir: dir, quiet: true, shard: { index: 0, count: 2 } });
    await expect(merge(dir, { quiet: true })).rejects.toThrow(/segments 1, 3, 5 have no current part/);
  });
});

describe('kg-triples CLI', () => {
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, [BIN, ...args], { cwd: repoRoot }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  it('exits 2 with a one-line message naming the option on bad configuration', async () => {
    const dir = await fresh();
    const cfg = join(dir, 'cfg.json');
    await writeFile(cfg, JSON.stringify({ minEntityFreq: 0 }));
    const cases: [string[], RegExp][] = [
      [['build', '--work-dir', dir, '--holdout-ratio', '0.9'], /--holdout-ratio 0\.9: expected a number in \[0, 0\.5\]/],
      [['build', '--work-dir', dir, '--config', cfg], /--min-entity-freq 0:/],
      [['merge', '--work-dir', dir, '--shard', '3/2'], /--shard 3\/2: i must be below N/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => {
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(cases[i]![1]);
    });
  });

  it('runs build with --json', async () => {
    const dir = await fresh();
    await writeSegments(dir, [{ split: 'train', items: [{ itemId: '1', kg: '颜色#:#红#;#品名#:#请填写' }, { itemId: '2', kg: '' }] }]);
    const r = await run(['build', '--work-dir', dir, '--json', '--no-drop-placeholders']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as KgReport;
    expect(rep).toMatchObject({ in: 2, written: 2, rejected: 0, reconciles: true, itemsWithoutKnowledge: 1 });
  });
});
