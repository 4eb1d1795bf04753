/**
 * @file The LMDB file itself, in LMDB 0.9's data format version 1: the format Python's `lmdb`
 * (Debian python3-lmdb, liblmdb 0.9) and therefore tensorpack read. Single file (`subdir=False`):
 * `X.lmdb`, plus an empty `X.lmdb-lock` that LMDB initialises on first open.
 *
 * Why not lmdb-js: its prebuilt binary writes data format 2, which liblmdb 0.9 refuses
 * ("MDB_INVALID: File is not an LMDB file"); only a from-source build can write format 1.
 *
 * Layout (64-bit, little-endian, 4096-byte pages):
 * - page header (16 bytes): pgno u64, pad u16, flags u16 (1 branch, 2 leaf, 4 overflow,
 *   8 meta), then lower u16 + upper u16, or for overflow pages the page count u32.
 * - pages 0 and 1 are meta pages: at offset 16 magic 0xBEEFC0DE u32, version 1 u32, address
 *   u64, mapsize u64, two 48-byte db records (free list, main: pad u32 [page size for the
 *   free db], flags u16, depth u16, branch/leaf/overflow pages u64, entries u64, root u64
 *   [~0 = empty]), last page u64, txnid u64. The meta with the larger txnid is current.
 * - leaf/branch pages: u16 node offsets from byte 16 up, nodes packed from the page end down,
 *   each at an even offset. Node: dsize lo u16, dsize hi u16, flags u16 (1 = value in overflow
 *   pages), ksize u16, key, then the value or the u64 first overflow page. Branch nodes keep the
 *   child page number in lo/hi/flags (48 bits); the first key of a branch page is empty.
 * - overflow pages: a header, then the value across ceil((16 + size) / 4096) contiguous pages.
 *
 * The writer bulk-loads keys in ascending order and appends pages only. A commit writes the
 * open right edge of the tree as new pages, syncs, then writes the meta page with the next
 * txnid: like LMDB's own commit, a kill at any point leaves the previous commit readable.
 * Replaced right-edge pages are left unreferenced (a few pages per commit).
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, readSync, writeFileSync, writeSync, writevSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const PAGE_SIZE = 4096;
const PAGEHDRSZ = 16;
const NODESIZE = 8;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const P_META = 0x08;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
const F_DUPDATA = 0x04;
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 1;
const MDB_INTEGERKEY = 0x08;
const P_INVALID = 0xffffffffffffffffn;
/** LMDB puts a value in overflow pages when its leaf node would exceed this (psize 4096). */
const NODEMAX = (((PAGE_SIZE - PAGEHDRSZ) / 2) & -2) - 2;
export const MAX_KEY_SIZE = 511;

export class LmdbFormatError extends Error {
  override name = 'LmdbFormatError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const even = (n: number) => (n + 1) & ~1;

/** The current meta page: what a reader trusts. */
export interface LmdbMeta {
  psize: number;
  txnid: number;
  lastPg: number;
  entries: number;
  depth: number;
  root: number | undefined;
  branchPages: number;
  leafPages: number;
  overflowPages: number;
}

function readMeta(buf: Buffer, path: string): LmdbMeta | undefined {
  if (buf.readUInt32LE(16) !== MDB_MAGIC) return undefined;
  const version = buf.readUInt32LE(20);
  if (version !== MDB_DATA_VERSION) throw new LmdbFormatError(path, `LMDB data format ${version}; only format 1 (LMDB 0.9) is supported`);
  const root = buf.readBigUInt64LE(128);
  return {
    psize: buf.readUInt32LE(40),
    depth: buf.readUInt16LE(94),
    branchPages: Number(buf.readBigUInt64LE(96)),
    leafPages: Number(buf.readBigUInt64LE(104)),
    overflowPages: Number(buf.readBigUInt64LE(112)),
    entries: Number(buf.readBigUInt64LE(120)),
    root: root === P_INVALID ? undefined : Number(root),
    lastPg: Number(buf.readBigUInt64LE(136)),
    txnid: Number(buf.readBigUInt64LE(144)),
  };
}

function metaPage(pgno: number, m: Omit<LmdbMeta, 'psize'>): Buffer {
  const b = Buffer.alloc(PAGE_SIZE);
  b.writeBigUInt64LE(BigInt(pgno), 0);
  b.writeUInt16LE(P_META, 10);
  b.writeUInt32LE(MDB_MAGIC, 16);
  b.writeUInt32LE(MDB_DATA_VERSION, 20);
  b.writeBigUInt64LE(BigInt((m.lastPg + 1) * PAGE_SIZE), 32);
  // free-list db: empty; its pad holds the page size, its flags the env flags.
  b.writeUInt32LE(PAGE_SIZE, 40);
  b.writeUInt16LE(MDB_INTEGERKEY, 44);
  b.writeBigUInt64LE(P_INVALID, 80);
  b.writeUInt16LE(m.depth, 94);
  b.writeBigUInt64LE(BigInt(m.branchPages), 96);
  b.writeBigUInt64LE(BigInt(m.leafPages), 104);
  b.writeBigUInt64LE(BigInt(m.overflowPages), 112);
  b.writeBigUInt64LE(BigInt(m.entries), 120);
  b.writeBigUInt64LE(m.root === undefined ? P_INVALID : BigInt(m.root), 128);
  b.writeBigUInt64LE(BigInt(m.lastPg), 136);
  b.writeBigUInt64LE(BigInt(m.txnid), 144);
  return b;
}

/** A leaf entry as stored: the key and either the inline value or its overflow page. */
export interface LeafNode {
  key: Buffer;
  size: number;
  inline?: Buffer;
  overflowPg?: number;
}

/** A single-file LMDB opened for reading (never locks; reads pages with pread). */
export class LmdbFileReader {
  readonly meta: LmdbMeta;
  private readonly fd: number;
  private readonly pages = new Map<number, Buffer>();

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    const first = Buffer.alloc(PAGE_SIZE);
    readSync(fd, first, 0, PAGE_SIZE, 0);
    const m0 = readMeta(first, path);
    const psize = m0?.psize ?? PAGE_SIZE;
    const second = Buffer.alloc(PAGE_SIZE);
    readSync(fd, second, 0, PAGE_SIZE, psize);
    const m1 = readMeta(second, path);
    const meta = !m0 ? m1 : !m1 ? m0 : m1.txnid > m0.txnid ? m1 : m0;
    if (!meta) throw new LmdbFormatError(path, 'not an LMDB file (no valid meta page)');
    if (meta.psize !== PAGE_SIZE) throw new LmdbFormatError(path, `page size ${meta.psize}; only ${PAGE_SIZE} is supported`);
    this.meta = meta;
  }

  /** Opens `path`; a directory means LMDB's `subdir` layout (`path/data.mdb`). */
  static open(path: string): LmdbFileReader {
    const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'data.mdb') : path;
    return new LmdbFileReader(file, openSync(file, 'r'));
  }

  private page(pgno: number): Buffer {
    let p = this.pages.get(pgno);
    if (p) return p;
    if (pgno > this.meta.lastPg) throw new LmdbFormatError(this.path, `page ${pgno} beyond last page ${this.meta.lastPg}`);
    p = Buffer.alloc(PAGE_SIZE);
    readSync(this.fd, p, 0, PAGE_SIZE, pgno * PAGE_SIZE);
    // Branch pages are few and hot; leaf pages are read once per ~150 records.
    if (this.pages.size > 4096) this.pages.clear();
    this.pages.set(pgno, p);
    return p;
  }

  private nodeCount(p: Buffer): number {
    return (p.readUInt16LE(12) - PAGEHDRSZ) >> 1;
  }

  private nodeAt(p: Buffer, i: number): number {
    return p.readUInt16LE(PAGEHDRSZ + 2 * i);
  }

  private childOf(p: Buffer, i: number): number {
    const o = this.nodeAt(p, i);
    return p.readUInt16LE(o) + p.readUInt16LE(o + 2) * 0x10000 + p.readUInt16LE(o + 4) * 0x100000000;
  }

  private keyOf(p: Buffer, i: number): Buffer {
    const o = this.nodeAt(p, i);
    return p.subarray(o + NODESIZE, o + NODESIZE + p.readUInt16LE(o + 6));
  }

  private leafNode(p: Buffer, i: number, pgno: number): LeafNode {
    const o = this.nodeAt(p, i);
    const size = p.readUInt16LE(o) + p.readUInt16LE(o + 2) * 0x10000;
    const flags = p.readUInt16LE(o + 4);
    const ksize = p.readUInt16LE(o + 6);
    const key = Buffer.from(p.subarray(o + NODESIZE, o + NODESIZE + ksize));
    if (flags & (F_SUBDATA | F_DUPDATA)) throw new LmdbFormatError(this.path, `page ${pgno}: sub-databases and duplicate keys are not supported`);
    if (flags & F_BIGDATA) return { key, size, overflowPg: Number(p.readBigUInt64LE(o + NODESIZE + ksize)) };
    return { key, size, inline: Buffer.from(p.subarray(o + NODESIZE + ksize, o + NODESIZE + ksize + size)) };
  }

  private kind(p: Buffer, pgno: number): number {
    const flags = p.readUInt16LE(10);
    if (flags & P_LEAF) return P_LEAF;
    if (flags & P_BRANCH) return P_BRANCH;
    throw new LmdbFormatError(this.path, `page ${pgno}: flags 0x${flags.toString(16)} where a tree page was expected`);
  }

  /**
   * The value of a leaf node, in its own buffer (starting at offset 0, so aligned), or in
   * `scratch` when given and large enough (the caller then owns the reuse).
   */
  value(n: LeafNode, scratch?: Buffer): Buffer {
    if (n.inline) return n.inline;
    const out = scratch && scratch.length >= n.size ? scratch.subarray(0, n.size) : Buffer.allocUnsafeSlow(n.size);
    const got = readSync(this.fd, out, 0, n.size, n.overflowPg! * PAGE_SIZE + PAGEHDRSZ);
    if (got !== n.size) throw new LmdbFormatError(this.path, `overflow page ${n.overflowPg}: short read`);
    return out;
  }

  /** Finds a key (binary search down the tree, as LMDB compares: memcmp, then length). */
  find(key: Buffer): LeafNode | undefined {
    let pgno = this.meta.root;
    if (pgno === undefined) return undefined;
    for (let depth = 0; depth < 64; depth++) {
      const p = this.page(pgno);
      const n = this.nodeCount(p);
      if (this.kind(p, pgno) === P_LEAF) {
        let lo = 0;
        let hi = n - 1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          const c = Buffer.compare(this.keyOf(p, mid), key);
          if (c === 0) return this.leafNode(p, mid, pgno);
          if (c < 0) lo = mid + 1;
          else hi = mid - 1;
        }
        return undefined;
      }
      // Last child whose key <= key; slot 0 has no key and covers everything below slot 1.
      let lo = 1;
      let hi = n - 1;
      let at = 0;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (Buffer.compare(this.keyOf(p, mid), key) <= 0) {
          at = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      pgno = this.childOf(p, at);
    }
    throw new LmdbFormatError(this.path, 'tree deeper than 64 levels');
  }

  get(key: Buffer, scratch?: Buffer): Buffer | undefined {
    const n = this.find(key);
    return n && this.value(n, scratch);
  }

  /** Every leaf node in key order. */
  *nodes(): Generator<LeafNode> {
    if (this.meta.root === undefined) return;
    const stack: [number, number][] = [[this.meta.root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const p = this.page(top[0]);
      const n = this.nodeCount(p);
      if (this.kind(p, top[0]) === P_LEAF) {
        for (let i = 0; i < n; i++) yield this.leafNode(p, i, top[0]);
        stack.pop();
        continue;
      }
      if (top[1] >= n) {
        stack.pop();
        continue;
      }
      stack.push([this.childOf(p, top[1]++), 0]);
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

interface Entry {
  key: Buffer;
  node: Buffer;
}

/**
 * Bulk-loads a single-file LMDB: `put` keys in strictly ascending order, `commit` to make
 * everything so far durable and visible, `close` after the last commit.
 */
export class LmdbFileWriter {
  private nextPg: number;
  private txnid: number;
  private entries = 0;
  private readonly pending: Buffer[] = [];
  private pendingFrom: number;
  private pendingBytes = 0;
  private leaf: Entry[] = [];
  private leafUsed = PAGEHDRSZ;
  /** Full pages already written, per branch level above the leaves: [firstKey, pgno]. */
  private levels: { key: Buffer; pgno: number }[][] = [];
  private lastKey: Buffer | undefined;
  private counts = { branch: 0, leaf: 0, overflow: 0 };

  private constructor(
    readonly path: string,
    private readonly fd: number,
    nextPg: number,
    txnid: number,
  ) {
    this.nextPg = nextPg;
    this.pendingFrom = nextPg;
    this.txnid = txnid;
  }

  /** Creates (or truncates) `path` as an empty database. */
  static create(path: string): LmdbFileWriter {
    const fd = openSync(path, 'w+');
    const empty = { txnid: 0, lastPg: 1, entries: 0, depth: 0, root: undefined, branchPages: 0, leafPages: 0, overflowPages: 0 };
    writevSync(fd, [metaPage(0, empty), metaPage(1, empty)], 0);
    return new LmdbFileWriter(path, fd, 2, 0);
  }

  /** Writes the empty `<path>-lock` beside a database; LMDB initialises it on first open. */
  static touchLock(path: string): void {
    writeFileSync(`${path}-lock`, '');
  }

  /**
   * Reopens a database this writer committed, to append after its last commit: the leaf
   * entries are re-read (values stay where they are) and anything after the last committed
   * page is cut off. `keep(key)` says which committed keys to carry over (progress markers
   * written beside the data are dropped this way).
   */
  static resume(path: string, keep: (key: Buffer) => boolean): LmdbFileWriter {
    const reader = LmdbFileReader.open(path);
    const { lastPg, txnid } = reader.meta;
    const fd = openSync(path, 'r+');
    ftruncateSync(fd, (lastPg + 1) * PAGE_SIZE);
    const w = new LmdbFileWriter(path, fd, lastPg + 1, txnid);
    try {
      for (const n of reader.nodes()) {
        if (!keep(n.key)) continue;
        if (n.overflowPg !== undefined) {
          w.counts.overflow += overflowPages(n.size);
          w.addNode(n.key, bigNode(n.key, n.size, n.overflowPg));
        } else w.addNode(n.key, inlineNode(n.key, n.inline!));
      }
    } finally {
      reader.close();
    }
    return w;
  }

  /** Records visible after the next commit. */
  get count(): number {
    return this.entries;
  }

  private alloc(pages: number): number {
    const pg = this.nextPg;
    this.nextPg += pages;
    return pg;
  }

  private queue(chunks: Buffer[]): void {
    for (const c of chunks) {
      this.pending.push(c);
      this.pendingBytes += c.length;
    }
    if (this.pendingBytes >= 8 << 20) this.flush();
  }

  private flush(): void {
    let pos = this.pendingFrom * PAGE_SIZE;
    // writev takes at most IOV_MAX (1024) buffers at a time.
    for (let i = 0; i < this.pending.length; i += 1024) {
      const part = this.pending.slice(i, i + 1024);
      const want = part.reduce((a, b) => a + b.length, 0);
      let done = writevSync(this.fd, part, pos);
      if (done < want) {
        // A short write (rare, e.g. a signal): finish from where it stopped.
        const all = Buffer.concat(part);
        while (done < want) done += writeSync(this.fd, all, done, want - done, pos + done);
      }
      pos += want;
    }
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.pendingFrom = this.nextPg;
  }

  /** Appends `key` → `value`; keys must ascend strictly. */
  put(key: Buffer, value: Uint8Array): void {
    if (key.length === 0 || key.length > MAX_KEY_SIZE) throw new LmdbFormatError(this.path, `key of ${key.length} bytes`);
    if (this.lastKey && Buffer.compare(key, this.lastKey) <= 0) throw new LmdbFormatError(this.path, `key ${key.toString('latin1')} does not ascend`);
    if (NODESIZE + key.length + value.byteLength <= NODEMAX) {
      this.addNode(key, inlineNode(key, value));
      return;
    }
    const pages = overflowPages(value.byteLength);
    const pg = this.alloc(pages);
    const head = Buffer.alloc(PAGEHDRSZ);
    head.writeBigUInt64LE(BigInt(pg), 0);
    head.writeUInt16LE(P_OVERFLOW, 10);
    head.writeUInt32LE(pages, 12);
    const pad = pages * PAGE_SIZE - PAGEHDRSZ - value.byteLength;
    const v = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    this.queue(pad ? [head, v, Buffer.alloc(pad)] : [head, v]);
    this.counts.overflow += pages;
    this.addNode(key, bigNode(key, value.byteLength, pg));
  }

  private addNode(key: Buffer, node: Buffer): void {
    const need = even(node.length) + 2;
    if (this.leafUsed + need > PAGE_SIZE) this.closeLeaf();
    this.leaf.push({ key, node });
    this.leafUsed += need;
    this.lastKey = key;
    this.entries++;
  }

  private closeLeaf(): void {
    const pg = this.alloc(1);
    this.queue([pageImage(pg, P_LEAF, this.leaf.map((e) => e.node))]);
    this.counts.leaf++;
    this.pushUp(0, { key: this.leaf[0]!.key, pgno: pg });
    this.leaf = [];
    this.leafUsed = PAGEHDRSZ;
  }

  private pushUp(level: number, child: { key: Buffer; pgno: number }): void {
    const entries = (this.levels[level] ??= []);
    const candidate = [...entries, child];
    if (branchSize(candidate) > PAGE_SIZE) {
      const pg = this.alloc(1);
      this.queue([pageImage(pg, P_BRANCH, branchNodes(entries))]);
      this.counts.branch++;
      this.levels[level] = [child];
      this.pushUp(level + 1, { key: entries[0]!.key, pgno: pg });
    } else entries.push(child);
  }

  /**
   * Makes every put so far durable and visible. `tail` entries (keys above every key put so
   * far, for example a progress marker) are part of this commit only.
   */
  commit(tail: { key: Buffer; value: Buffer }[] = []): void {
    const counts = { ...this.counts };
    let leafNodes = this.leaf.map((e) => e.node);
    for (const t of tail) {
      if (this.lastKey && Buffer.compare(t.key, this.lastKey) <= 0) throw new LmdbFormatError(this.path, 'commit tail keys must sort after the data');
      if (NODESIZE + t.key.length + t.value.length > NODEMAX) throw new LmdbFormatError(this.path, 'commit tail values must fit in a leaf');
      leafNodes = [...leafNodes, inlineNode(t.key, t.value)];
    }
    // The right edge of the tree as of now: the open leaf, then at each height the entries
    // of full pages not yet under a parent plus the pages made just below.
    const snapshot: Buffer[] = [];
    let carry: { key: Buffer; pgno: number }[] = [];
    for (const chunk of leafNodes.length ? splitPage(leafNodes, leafFits) : []) {
      const pg = this.alloc(1);
      snapshot.push(pageImage(pg, P_LEAF, chunk));
      counts.leaf++;
      carry.push({ key: nodeKey(chunk[0]!), pgno: pg });
    }
    let root: number | undefined;
    let depth = 0;
    for (let h = 0; ; h++) {
      const entries = [...(this.levels[h] ?? []), ...carry];
      if (h >= this.levels.length && entries.length <= 1) {
        root = entries[0]?.pgno;
        depth = entries.length ? h + 1 : 0;
        break;
      }
      carry = [];
      for (const part of splitPage(entries, branchFits)) {
        const pg = this.alloc(1);
        snapshot.push(pageImage(pg, P_BRANCH, branchNodes(part)));
        counts.branch++;
        carry.push({ key: part[0]!.key, pgno: pg });
      }
    }
    this.queue(snapshot);
    this.flush();
    fdatasyncSync(this.fd);
    this.txnid++;
    const meta = {
      txnid: this.txnid,
      lastPg: this.nextPg - 1,
      entries: this.entries + tail.length,
      depth,
      root,
      branchPages: counts.branch,
      leafPages: counts.leaf,
      overflowPages: counts.overflow,
    };
    writevSync(this.fd, [metaPage(this.txnid & 1, meta)], (this.txnid & 1) * PAGE_SIZE);
  }

  /** Syncs and closes the file (commit first: uncommitted puts are lost). */
  close(): void {
    fdatasyncSync(this.fd);
    closeSync(this.fd);
  }
}

function overflowPages(size: number): number {
  return Math.floor((PAGEHDRSZ - 1 + size) / PAGE_SIZE) + 1;
}

function nodeHeader(size: number, flags: number, ksize: number): Buffer {
  const h = Buffer.alloc(NODESIZE);
  h.writeUInt16LE(size & 0xffff, 0);
  h.writeUInt16LE(Math.floor(size / 0x10000) & 0xffff, 2);
  h.writeUInt16LE(flags, 4);
  h.writeUInt16LE(ksize, 6);
  return h;
}

function inlineNode(key: Buffer, value: Uint8Array): Buffer {
  return Buffer.concat([nodeHeader(value.byteLength, 0, key.length), key, value]);
}

function bigNode(key: Buffer, size: number, pg: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(BigInt(pg), 0);
  return Buffer.concat([nodeHeader(size, F_BIGDATA, key.length), key, p]);
}

function branchNode(key: Buffer, pgno: number): Buffer {
  const h = Buffer.alloc(NODESIZE);
  h.writeUInt16LE(pgno & 0xffff, 0);
  h.writeUInt16LE(Math.floor(pgno / 0x10000) & 0xffff, 2);
  h.writeUInt16LE(Math.floor(pgno / 0x100000000) & 0xffff, 4);
  h.writeUInt16LE(key.length, 6);
  return Buffer.concat([h, key]);
}

function branchNodes(entries: { key: Buffer; pgno: number }[]): Buffer[] {
  return entries.map((e, i) => branchNode(i === 0 ? Buffer.alloc(0) : e.key, e.pgno));
}

function branchSize(entries: { key: Buffer }[]): number {
  return entries.reduce((a, e, i) => a + even(NODESIZE + (i === 0 ? 0 : e.key.length)) + 2, PAGEHDRSZ);
}

const leafFits = (nodes: Buffer[]) => nodes.reduce((a, n) => a + even(n.length) + 2, PAGEHDRSZ) <= PAGE_SIZE;
const branchFits = (entries: { key: Buffer }[]) => branchSize(entries) <= PAGE_SIZE;

/** Greedy split of ordered items into pages that fit. */
function splitPage<T>(items: T[], fits: (page: T[]) => boolean): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  for (const it of items) {
    if (cur.length && !fits([...cur, it])) {
      out.push(cur);
      cur = [];
    }
    cur.push(it);
  }
  if (cur.length) out.push(cur);
  return out;
}

function nodeKey(node: Buffer): Buffer {
  return node.subarray(NODESIZE, NODESIZE + node.readUInt16LE(6));
}

function pageImage(pgno: number, flags: number, nodes: Buffer[]): Buffer {
  const p = Buffer.alloc(PAGE_SIZE);
  p.writeBigUInt64LE(BigInt(pgno), 0);
  p.writeUInt16LE(flags, 10);
  let upper = PAGE_SIZE;
  nodes.forEach((n, i) => {
    upper -= even(n.length);
    n.copy(p, upper);
    p.writeUInt16LE(upper, PAGEHDRSZ + 2 * i);
  });
  p.writeUInt16LE(PAGEHDRSZ + 2 * nodes.length, 12);
  p.writeUInt16LE(upper, 14);
  return p;
}
