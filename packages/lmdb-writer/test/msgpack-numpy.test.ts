import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { decodeNdarray, decodeRecord, encodeRecord, fromFloat16, ndarrayMap, toFloat16, type K3mRecord } from '../src/index.ts';
import { Rng } from '@k3m-kit/core';
import { PYTHON, pythonMissing } from './helpers.ts';
import { Packr, Unpackr } from 'msgpackr';

const bytes = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function specialFloats(): Float32Array {
  const a = new Float32Array(64);
  const u = new Uint32Array(a.buffer);
  const rng = new Rng(5);
  for (let i = 0; i < a.length; i++) a[i] = (rng.next() - 0.5) * 1e6;
  a[0] = -0;
  a[1] = Infinity;
  a[2] = -Infinity;
  u[3] = 0x7fc00001; // a NaN with a payload
  u[4] = 0x00000001; // smallest subnormal
  a[5] = 3.4028234663852886e38;
  return a;
}

function record(n: number, featureDim: number, numClasses: number): K3mRecord {
  const rng = new Rng(n + 1);
  const fill = (len: number) => Float32Array.from({ length: len }, () => rng.next());
  return {
    features: fill(n * featureDim),
    clsProb: fill(n * numClasses),
    boxes: fill(n * 4),
    numBoxes: n,
    imageH: 480,
    imageW: 640,
    imageId: `${n}_s0`,
    caption: '夏季新款纯棉T恤'.repeat(n % 5 + 1),
    pv: '颜色:红色;材质:棉;',
    category: 'cat1',
    featureDim,
    numClasses,
  };
}

describe('msgpack-numpy codec', () => {
  test('Float32Array survives the msgpack round trip byte for byte (NaN payloads, -0, subnormals)', () => {
    const a = specialFloats();
    const m = new Unpackr({ mapsAsObjects: false }).unpack(new Packr({ useRecords: false }).pack(ndarrayMap(a, 8, 8)));
    const back = decodeNdarray(m);
    expect(back.shape).toEqual([8, 8]);
    expect(bytes(back.data).equals(bytes(a))).toBe(true);
  });

  test('a whole record round trips, and 36-box arrays come back as aligned views', () => {
    for (const n of [0, 1, 17, 36]) {
      const r = record(n, 2048, 1601);
      const { record: back, zeroCopy } = decodeRecord(encodeRecord(r));
      expect(bytes(back.features).equals(bytes(r.features))).toBe(true);
      expect(bytes(back.clsProb).equals(bytes(r.clsProb))).toBe(true);
      expect(bytes(back.boxes).equals(bytes(r.boxes))).toBe(true);
      expect({ ...back, features: 0, clsProb: 0, boxes: 0 }).toEqual({ ...r, features: 0, clsProb: 0, boxes: 0 });
      if (n === 36) expect(zeroCopy).toBe(true);
    }
  });

  test('--no-cls-prob stores cls_prob as shape (num_boxes, 0)', () => {
    const { record: back } = decodeRecord(encodeRecord(record(3, 8, 5), { clsProb: false }));
    expect([back.clsProb.length, back.numClasses, back.features.length]).toEqual([0, 0, 24]);
  });

  test('float16 conversion rounds half to even and widens exactly', () => {
    const cases = new Float32Array([0, -0, 1, 65504, 65519.99, 65520, 1e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, NaN]);
    const h = toFloat16(cases);
    expect(Array.from(h.slice(0, 13))).toEqual([0x0000, 0x8000, 0x3c00, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x0000, 0x0002, 0x3c00, 0x3c02, 0x7c00]);
    expect(Number.isNaN(fromFloat16(h)[13])).toBe(true);
    expect(Array.from(fromFloat16(new Uint16Array([0x3c00, 0x0001, 0xfbff])))).toEqual([1, 2 ** -24, -65504]);
  });

  const missing = pythonMissing();
  if (missing) console.warn(`SKIP byte parity with Python msgpack_numpy: ${missing}`);
  test.skipIf(missing !== undefined)('values are byte-identical to Python msgpack + msgpack_numpy, fp16 equals numpy astype', () => {
    // Python decodes each of our values with msgpack_numpy and dumps it again the way tensorpack does.
    const script = [
      'import sys, msgpack, msgpack_numpy, numpy as np',
      'msgpack_numpy.patch()',
      'for dp in msgpack.Unpacker(sys.stdin.buffer, raw=False, max_bin_len=1 << 30, max_str_len=1 << 30):',
      '    sys.stdout.buffer.write(msgpack.dumps(dp, use_bin_type=True))',
    ].join('\n');
    // Text around every msgpack str size boundary (fixstr 31, str8 255, str16 65535 bytes of UTF-8),
    // in one- and three-byte characters.
    const texts = [0, 1, 31, 32, 255, 256, 65535, 65536].flatMap((n) => ['a'.repeat(n), '棉'.repeat(Math.floor(n / 3)) + 'a'.repeat(n % 3)]);
    const cases: [K3mRecord, boolean, boolean][] = [
      [record(36, 2048, 1601), false, true],
      [record(0, 2048, 1601), false, true],
      [record(5, 64, 9), true, false],
      ...texts.map((t, i): [K3mRecord, boolean, boolean] => [{ ...record(i % 3, 8, 3), caption: t, pv: texts[(i + 5) % texts.length]! }, i % 2 === 1, true]),
    ];
    const ours = cases.map(([r, fp16, clsProb]) => encodeRecord(r, { fp16, clsProb }));
    const py = spawnSync(PYTHON, ['-c', script], { input: Buffer.concat(ours), maxBuffer: 1 << 28 });
    expect(py.status, py.stderr?.toString()).toBe(0);
    expect(Buffer.compare(py.stdout, Buffer.concat(ours))).toBe(0);
    const f = specialFloats().subarray(0, 3);
    const more = Float32Array.from({ length: 4000 }, (_, i) => (i % 2 ? -1 : 1) * 2 ** (((i % 60) - 30) / 1.7) * (1 + i / 4001));
    // Random bit patterns (every exponent, subnormal halves, halfway cases), NaNs left out.
    const rng = new Rng(9);
    const bits = Uint32Array.from({ length: 200_000 }, () => Math.floor(rng.next() * 2 ** 32)).filter((b) => (b & 0x7fffffff) <= 0x7f800000);
    const all = Float32Array.from([...f, ...more, ...new Float32Array(bits.buffer, 0, bits.length)]);
    const half = spawnSync(PYTHON, ['-c', 'import sys, numpy as np; sys.stdout.buffer.write(np.frombuffer(sys.stdin.buffer.read(), np.float32).astype(np.float16).tobytes())'], { input: bytes(all) });
    expect(bytes(toFloat16(all)).equals(half.stdout)).toBe(true);
  });
});
