/**
 * @file detectron2 checkpoints as pickles (`.pkl`): `{'model': {name: ndarray}}` (the form
 * detectron2's model zoo and py-bottom-up-attention ship, often with `__author__` and
 * `matching_heuristics` beside it) or a flat `{name: ndarray}`.
 *
 * Parsing is pickleparser's (protocols 0-5); this module teaches it the few globals such files
 * use: numpy's array reconstruction (`numpy.core.multiarray._reconstruct` + `__setstate__`,
 * protocols 2-4, and `numpy.core.numeric._frombuffer`, protocol 5; `numpy._core.*` in numpy 2),
 * `numpy.dtype`, `_codecs.encode` (Python 3 writes bytes that way under protocol 2) and
 * `collections.OrderedDict`. Any other global is an error naming it, never silently an object.
 * Arrays come back as float32 with their shape (float16/float64/int arrays are converted).
 *
 * Files of other kinds get a message saying which kind they are: a Caffe2 / Detectron 1 pickle
 * (`{'blobs': {...}}`, names such as `res2_0_branch2a_w`) or a `torch.save` zip archive.
 */
import { readFile } from 'node:fs/promises';
import { NameRegistry, Parser } from 'pickleparser';
import { halfToFloat, IoError } from '@k3m-kit/core';

export interface PickledArray {
  shape: number[];
  data: Float32Array;
}

export class PickleFormatError extends Error {
  override name = 'PickleFormatError';
}

class Dtype {
  descr = '';
  order = '<';
  constructor(code: string) {
    this.descr = code;
  }
  __setstate__(state: unknown[]): void {
    if (typeof state[1] === 'string') this.order = state[1];
  }
}

class NdArray {
  shape: number[] = [];
  dtype?: Dtype;
  fortran = false;
  raw?: Uint8Array;
  __setstate__(state: unknown[]): void {
    // (version, shape, dtype, is_fortran, rawdata); version is omitted by very old numpy.
    const s = state.length === 5 ? state.slice(1) : state;
    this.shape = (s[0] as (number | bigint)[]).map(Number);
    this.dtype = s[1] as Dtype;
    this.fortran = Boolean(s[2]);
    this.raw = toBytes(s[3]);
  }
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v, 'latin1');
  if (Array.isArray(v)) return Uint8Array.from(v as number[]);
  throw new PickleFormatError(`array data is neither bytes nor a latin-1 string (${typeof v})`);
}

function toFloat32(a: NdArray): PickledArray {
  const dt = a.dtype;
  const raw = a.raw;
  if (!dt || !raw) throw new PickleFormatError('ndarray without dtype or data');
  if (a.fortran && a.shape.length > 1) throw new PickleFormatError(`Fortran-ordered array of shape [${a.shape}] is not supported`);
  const code = dt.descr.replace(/^[<>|=]/, '');
  const big = dt.order === '>' || dt.descr.startsWith('>');
  const n = a.shape.reduce((x, y) => x * y, 1);
  const size: Record<string, number> = { f4: 4, f8: 8, f2: 2, i8: 8, i4: 4, i2: 2, i1: 1, u1: 1, b1: 1 };
  const bytes = size[code];
  if (!bytes) throw new PickleFormatError(`unsupported dtype ${dt.descr}`);
  if (raw.byteLength !== n * bytes) throw new PickleFormatError(`array of shape [${a.shape}] ${dt.descr} has ${raw.byteLength} bytes, expected ${n * bytes}`);
  const out = new Float32Array(n);
  if (code === 'f4' && !big) {
    // The common case (every tensor of a detectron2 zoo file): one copy, no per-value decode.
    new Uint8Array(out.buffer).set(raw);
    return { shape: a.shape, data: out };
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = !big;
  const read: Record<string, (i: number) => number> = {
    f4: (i) => dv.getFloat32(i * 4, le),
    f8: (i) => dv.getFloat64(i * 8, le),
    f2: (i) => halfToFloat(dv.getUint16(i * 2, le)),
    i8: (i) => Number(dv.getBigInt64(i * 8, le)),
    i4: (i) => dv.getInt32(i * 4, le),
    i2: (i) => dv.getInt16(i * 2, le),
    i1: (i) => dv.getInt8(i),
    u1: (i) => dv.getUint8(i),
    b1: (i) => dv.getUint8(i),
  };
  const r = read[code]!;
  for (let i = 0; i < n; i++) out[i] = r(i);
  return { shape: a.shape, data: out };
}

class StrictRegistry extends NameRegistry {
  override onMissingName(module: string, name: string): never {
    throw new PickleFormatError(`uses ${module}.${name}, which a detectron2 weight file should not contain`);
  }
}

function registry(): NameRegistry {
  const r = new StrictRegistry();
  const reconstruct = () => new NdArray();
  const frombuffer = (buf: unknown, dtype: Dtype, shape: (number | bigint)[], order: string) => {
    const a = new NdArray();
    a.raw = toBytes(buf);
    a.dtype = dtype;
    a.shape = shape.map(Number);
    a.fortran = order === 'F';
    return a;
  };
  for (const core of ['numpy.core', 'numpy._core']) {
    r.register(`${core}.multiarray`, '_reconstruct', reconstruct);
    r.register(`${core}.numeric`, '_frombuffer', frombuffer);
  }
  r.register('numpy', 'ndarray', NdArray);
  r.register('numpy', 'dtype', (code: string) => new Dtype(code));
  r.register('_codecs', 'encode', (s: string, enc: string) => Buffer.from(s, enc === 'latin1' || enc === 'latin-1' ? 'latin1' : 'utf8'));
  r.register('collections', 'OrderedDict', () => new Map());
  return r;
}

function entries(v: unknown): [string, unknown][] | undefined {
  if (v instanceof Map) return [...v.entries()].map(([k, x]) => [String(k), x]);
  if (v && typeof v === 'object' && !(v instanceof NdArray) && !ArrayBuffer.isView(v)) return Object.entries(v);
  return undefined;
}

/**
 * Decodes a detectron2 pickle into named float32 arrays. Non-array entries inside the model
 * dict are an error; top-level bookkeeping beside `model` is ignored.
 */
export function decodeDetectron2Pickle(buf: Uint8Array): Map<string, PickledArray> {
  if (buf[0] === 0x50 && buf[1] === 0x4b) {
    throw new PickleFormatError('is a zip archive (torch.save of a state dict), not a detectron2 pickle: save the model dict with pickle.dump, or convert the .pkl checkpoint instead');
  }
  let root: unknown;
  try {
    root = new Parser({ nameResolver: registry(), unpicklingTypeOfDictionary: 'Map' }).parse(buf);
  } catch (e) {
    if (e instanceof PickleFormatError) throw e;
    throw new PickleFormatError(`not a readable pickle: ${(e as Error).message}`);
  }
  const top = entries(root);
  if (!top) throw new PickleFormatError('does not hold a dict');
  const model = top.find(([k]) => k === 'model');
  if (!model && top.some(([k]) => k === 'blobs')) {
    throw new PickleFormatError(
      "is a Caffe2 / Detectron 1 weight file ({'blobs': {...}}, Caffe2 names such as res2_0_branch2a_w), not a detectron2 checkpoint; " +
        "convert-weights reads detectron2's {'model': {name: array}} layout, as py-bottom-up-attention's faster_rcnn_from_caffe.pkl has it",
    );
  }
  const items = model ? entries(model[1]) : top;
  if (!items) throw new PickleFormatError("'model' is not a dict");
  const out = new Map<string, PickledArray>();
  for (const [name, v] of items) {
    if (!(v instanceof NdArray)) throw new PickleFormatError(`${name}: not a numpy array`);
    out.set(name, toFloat32(v));
  }
  return out;
}

/** Reads and decodes a pickle file; format errors name the file, I/O errors are {@link IoError}. */
export async function readDetectron2Pickle(path: string): Promise<Map<string, PickledArray>> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new IoError(path, e);
  }
  try {
    return decodeDetectron2Pickle(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (e) {
    if (e instanceof PickleFormatError) throw new PickleFormatError(`${path}: ${e.message}`);
    throw e;
  }
}
