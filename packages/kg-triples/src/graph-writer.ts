/**
 * @file The knowledge graph's files, as the merge's last pass writes them, each atomically:
 * `relation2id.txt` and `entity2id.txt` (value entities, then one entity per item that keeps a
 * triple, numbered as items stream past), `{train,valid,test}2id.txt` (OpenKE puts the count
 * first, so their bodies go to a temp dir until the count is known), `triples.tsv`,
 * `knowledge.tsv` and the reject log (both copied from the parts, plus the threshold rejects).
 * It tells the ledger of every triple it writes (`wrote`) and every reject it adds (`rejected`).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AtomicWriter, IoError, type Ledger } from '@k3m-kit/core';
import { BatchWriter } from './batch-writer.ts';
import { KNOWLEDGE_FILE } from './codecs/knowledge-tsv.ts';
import { ENTITY_FILE, RELATION_FILE, TEST_FILE, TRAIN_FILE, VALID_FILE, encodeTriple2idLine, encodeVocabLine, itemEntity } from './codecs/openke.ts';
import { TRIPLES_FILE, TRIPLES_HEADER, encodeTripleLine, type PartTriple } from './codecs/triples-tsv.ts';
import type { Hashed, HoldoutSet } from './holdout.ts';
import type { PairReject } from './segment-pass.ts';
import type { Vocabulary } from './vocabulary.ts';

const SETS = ['train', 'valid', 'test'] as const;
const SET_FILES: Record<HoldoutSet, string> = { train: TRAIN_FILE, valid: VALID_FILE, test: TEST_FILE };

async function copyInto(w: BatchWriter, path: string): Promise<void> {
  await w.flush();
  const stream = createReadStream(path);
  try {
    for await (const chunk of stream) await w.writer.write(chunk as Buffer);
  } catch (e) {
    throw new IoError(path, e);
  }
}

const open = async (path: string) => new BatchWriter(await AtomicWriter.create(path));

export class GraphWriter {
  /** Triples written to each held-out set. */
  readonly counts: Record<HoldoutSet, number> = { train: 0, valid: 0, test: 0 };
  private nextItem: number;

  private constructor(
    private readonly kgDir: string,
    private readonly tmpDir: string,
    private readonly files: { entity: BatchWriter; relation: BatchWriter; triples: BatchWriter; knowledge: BatchWriter; rejects: BatchWriter },
    private readonly bodies: Record<HoldoutSet, BatchWriter>,
    private readonly ledger: Ledger,
    vocab: Vocabulary,
  ) {
    this.nextItem = vocab.valId.size;
  }

  /**
   * Opens every output and writes the vocabularies; `itemEntities` is how many items will get
   * an entity (entity2id.txt starts with the total).
   */
  static async open(workDir: string, rejectsFile: string, vocab: Vocabulary, itemEntities: number, ledger: Ledger): Promise<GraphWriter> {
    const kgDir = join(workDir, 'kg');
    // pid alone can repeat across pods sharing a volume (often pid 1 in each).
    const tmpDir = join(kgDir, `.merge-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmpDir, { recursive: true });
    const files = {
      entity: await open(join(kgDir, ENTITY_FILE)),
      relation: await open(join(kgDir, RELATION_FILE)),
      triples: await open(join(kgDir, TRIPLES_FILE)),
      knowledge: await open(join(kgDir, KNOWLEDGE_FILE)),
      rejects: await open(join(workDir, 'rejects', rejectsFile)),
    };
    const bodies = { train: await open(join(tmpDir, 'train.body')), valid: await open(join(tmpDir, 'valid.body')), test: await open(join(tmpDir, 'test.body')) };
    const w = new GraphWriter(kgDir, tmpDir, files, bodies, ledger, vocab);
    await files.relation.write(`${vocab.relId.size}\n`);
    for (const [name, id] of vocab.relId) await files.relation.write(encodeVocabLine(name, id) + '\n');
    await files.entity.write(`${vocab.valId.size + itemEntities}\n`);
    for (const [name, id] of vocab.valId) await files.entity.write(encodeVocabLine(name, id) + '\n');
    await files.triples.write(TRIPLES_HEADER + '\n');
    return w;
  }

  /** A segment's knowledge lines and cleaning rejects, copied from its part files. */
  async copyPart(paths: { knowledge: string; rejects: string }): Promise<void> {
    await copyInto(this.files.knowledge, paths.knowledge);
    await copyInto(this.files.rejects, paths.rejects);
  }

  async reject(recs: readonly PairReject[]): Promise<void> {
    let chunk = '';
    for (const r of recs) {
      chunk += JSON.stringify(r) + '\n';
      this.ledger.rejected(r.reason);
    }
    if (chunk) await this.files.rejects.write(chunk);
  }

  /** One item's kept triples: its entity, its lines of triples.tsv and of the held-out sets. */
  async writeItem(imageId: string, placed: readonly (Hashed<PartTriple> & { set: HoldoutSet })[]): Promise<void> {
    const head = this.nextItem++;
    await this.files.entity.write(encodeVocabLine(itemEntity(imageId), head) + '\n');
    let tsv = '';
    const lines: Record<HoldoutSet, string> = { train: '', valid: '', test: '' };
    for (const k of placed) {
      tsv += encodeTripleLine(k.t) + '\n';
      lines[k.set] += encodeTriple2idLine(head, k.v, k.r) + '\n';
      this.counts[k.set]++;
    }
    await this.files.triples.write(tsv);
    for (const s of SETS) if (lines[s]) await this.bodies[s].write(lines[s]);
    this.ledger.wrote(placed.length);
  }

  /** Writes each held-out file (its count, then its body) and puts every file in place. */
  async commit(): Promise<void> {
    try {
      for (const s of SETS) await this.bodies[s].commit();
      for (const s of SETS) {
        const w = await open(join(this.kgDir, SET_FILES[s]));
        await w.write(`${this.counts[s]}\n`);
        await copyInto(w, join(this.tmpDir, `${s}.body`));
        await w.commit();
      }
      for (const w of Object.values(this.files)) await w.commit();
    } finally {
      await rm(this.tmpDir, { recursive: true, force: true });
    }
  }

  async abort(): Promise<void> {
    for (const w of [...Object.values(this.files), ...Object.values(this.bodies)]) await w.abort();
    await rm(this.tmpDir, { recursive: true, force: true });
  }
}
