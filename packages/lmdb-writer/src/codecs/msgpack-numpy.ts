/**
 * @file The record value: tensorpack's msgpack datapoint with msgpack_numpy arrays
 * (design.md 6.3, k3m-reference.md 2.5), both directions, through msgpackr.
 *
 * A value is a msgpack array of 10 fields in the reference order:
 *
 *   features, cls_prob, boxes, num_boxes, image_h, image_w, image_id, caption, pv, category
 *
 * Arrays are msgpack_numpy 0.4.8 maps, keys as msgpack bin (Python `bytes`), in this order:
 *
 *   { b'nd': true, b'type': '<f4' | '<f2' (str), b'kind': b'' (bin), b'shape': [rows, cols],
 *     b'data': <raw little-endian C-order bytes> (bin) }
 *
 * num_boxes, image_h, image_w are decimal strings; text fields are msgpack str. msgpackr with
 * `useRecords: false` packs a `Map` with Buffer keys and Buffer data into exactly what Python
 * `msgpack.dumps(dp, use_bin_type=True)` with msgpack_numpy emits: smallest int, str (fixstr,
 * str8/16/32 by UTF-8 length) and bin (bin8/16/32) forms, so values are byte-identical to the
 * reference writer's (tested against Python, boundary lengths included). With 36 rows the
 * `data` payload of features and cls_prob starts 4-byte aligned in the value, which lets the
 * reader hand out Float32Array views without copying.
 *
 * Extra fields (P9D domain, Product1M instance labels, TaiSu caption source) ride in the boxes
 * array's map, after `data`, under keys msgpack_numpy does not read, so the original loader
 * still unpacks exactly 10 fields and gets the same ndarray; a record without extras is
 * byte-identical to before:
 *
 *   { ..., b'data': ..., b'domain': str, b'instance_labels': [str, ...], b'caption_source': str }
 *
 * The decoder (msgpackr, maps as Map so binary keys survive) also accepts what older Python
 * writers produce: str keys, float NaN for empty text (pandas), missing `kind`.
 */
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';
import type { ItemExtra } from '@k3m-kit/raw-ingest';
import type { K3mRecord } from './record.ts';
import { toFloat16Wasm } from './float16-wasm.ts';

/** numpy dtype strings this codec reads and writes. */
export const DTYPES = Object.freeze({ float32: '<f4', float16: '<f2' });
export type DtypeName = keyof typeof DTYPES;

/** Where the 10 fields sit in the datapoint (k3m-reference.md 2.5). */
export const FIELDS = Object.freeze([
  'features',
  'cls_prob',
  'boxes',
  'num_boxes',
  'image_h',
  'image_w',
  'image_id',
  'caption',
  'pv',
  'category',
] as const);

export class MsgpackNumpyError extends Error {
  override name = 'MsgpackNumpyError';
}

/** Packs as Python's msgpack does: plain maps and arrays, no msgpackr record extension. */
const packr = new Packr({ useRecords: false });
/** The same, into one buffer that every transient value reuses (see {@link encodeStoredRecord}). */
const transientPackr = new Packr({ useRecords: false });

const KEY = {
  nd: Buffer.from('nd'),
  type: Buffer.from('type'),
  kind: Buffer.from('kind'),
  shape: Buffer.from('shape'),
  data: Buffer.from('data'),
};
const EMPTY = Buffer.alloc(0);

/** The map keys of the extra fields, in the order they are written. */
export const EXTRA_KEYS = Object.freeze({ domain: 'domain', instanceLabels: 'instance_labels', captionSource: 'caption_source' } as const);
const EXTRA_KEY_BYTES = { domain: Buffer.from(EXTRA_KEYS.domain), instanceLabels: Buffer.from(EXTRA_KEYS.instanceLabels), captionSource: Buffer.from(EXTRA_KEYS.captionSource) };

/** Appends the extra fields present in `extra` to an array map (after `data`, so no payload moves). */
function withExtra(m: Map<Buffer, unknown>, extra: ItemExtra | undefined): Map<Buffer, unknown> {
  if (extra?.domain !== undefined) m.set(EXTRA_KEY_BYTES.domain, extra.domain);
  if (extra?.instanceLabels !== undefined) m.set(EXTRA_KEY_BYTES.instanceLabels, extra.instanceLabels);
  if (extra?.captionSource !== undefined) m.set(EXTRA_KEY_BYTES.captionSource, extra.captionSource);
  return m;
}

// float32 -> float16 bits in JavaScript (where WebAssembly SIMD is missing; float16-wasm.ts
// otherwise), round half to even (what numpy's astype(float16) does), in integer arithmetic on
// the bits, driven by a table over the 9 sign and exponent bits: the half's sign and exponent,
// and how far the significand (with its implicit bit where the half is subnormal) is shifted
// right. Adding half an ulp less one, plus the lowest kept bit, before the shift rounds half to
// even; a carry out of the significand steps the exponent up, to infinity above 65504.
// Branch-free but for infinity and NaN (a quiet NaN), so values that mix zeros, subnormal halves
// and normal ones (a detector's features and class probabilities) cost no mispredictions: 2x
// the former per-value branches on such rows. Equal to them for all 2^32 float32 bit patterns
// (checked 2026-12-01).
const HALF_ROUNDING = new Int32Array(512);
for (let se = 0; se < 512; se++) {
  const e = se & 0xff;
  // Normal half: rebias the exponent, drop 13 bits. Subnormal half: drop 126 - e bits of the
  // significand with its implicit bit (14 to 24). Below 2^-25: shift everything out (0).
  const [base, shift] = e >= 113 ? [(e - 112) << 10, 13] : e >= 102 ? [0, 126 - e] : [0, 25];
  HALF_ROUNDING[se] = (se & 0x100 ? 0x8000 : 0) | base | (shift << 16);
}

let HALF_TABLE: Float32Array | undefined;
function halfTable(): Float32Array {
  if (HALF_TABLE) return HALF_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (HALF_TABLE = t);
}

/**
 * float32 values to IEEE half-precision bits (little-endian when viewed as bytes), into `out`
 * when given: in WebAssembly SIMD (float16-wasm.ts) where the runtime has it, else {@link toFloat16Js}.
 */
export function toFloat16(a: Float32Array, out = new Uint16Array(a.length)): Uint16Array {
  if (out.length !== a.length) throw new RangeError(`toFloat16: ${a.length} values into ${out.length}`);
  return toFloat16Wasm(a, out) ? out : toFloat16Js(a, out);
}

/** {@link toFloat16} in JavaScript (the same bits). */
export function toFloat16Js(a: Float32Array, out = new Uint16Array(a.length)): Uint16Array {
  if (out.length !== a.length) throw new RangeError(`toFloat16: ${a.length} values into ${out.length}`);
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const table = HALF_ROUNDING;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    const f = x & 0x7fffffff;
    if (f >= 0x47800000) {
      out[i] = ((x >>> 16) & 0x8000) | (f > 0x7f800000 ? 0x7e00 : 0x7c00);
      continue;
    }
    const t = table[x >>> 23]!;
    const shift = t >>> 16;
    // The implicit bit joins the significand when the shift drops more than 13 bits (a subnormal half).
    const m = (x & 0x7fffff) | (((13 - shift) >> 31) & 0x800000);
    out[i] = (t & 0xffff) + ((m + ((1 << shift) >>> 1) - 1 + ((m >>> shift) & 1)) >>> shift);
  }
  return out;
}

/** Half-precision bits widened to float32 (exact). */
export function fromFloat16(h: Uint16Array): Float32Array {
  const t = halfTable();
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = t[h[i]!]!;
  return out;
}

const bytesOf = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * One 2-D numpy array as msgpack_numpy's map (for msgpackr to pack). `cols` is the second
 * dimension, kept even for 0 rows so an image-missing record still says `(0, 2048)`. Float16
 * data is given as its bits (see {@link toFloat16}).
 * @example packr.pack(ndarrayMap(new Float32Array(8), 2, 4))
 */
export function ndarrayMap(a: Float32Array | Uint16Array, rows: number, cols: number): Map<Buffer, unknown> {
  if (a.length !== rows * cols) throw new MsgpackNumpyError(`ndarray: ${a.length} values for shape (${rows}, ${cols})`);
  const dtype = a instanceof Uint16Array ? DTYPES.float16 : DTYPES.float32;
  return new Map<Buffer, unknown>([
    [KEY.nd, true],
    [KEY.type, dtype],
    [KEY.kind, EMPTY],
    [KEY.shape, [rows, cols]],
    [KEY.data, a.length === 0 ? EMPTY : bytesOf(a)],
  ]);
}

/** A decoded numpy array, widened to float32; `dtype` tells what was stored. */
export interface Ndarray {
  data: Float32Array;
  shape: number[];
  dtype: DtypeName;
  /** True when `data` is a view into the value buffer (no copy was made). */
  view: boolean;
}

function mapGet(m: Map<unknown, unknown>, name: string): unknown {
  for (const [k, v] of m) {
    const key = typeof k === 'string' ? k : k instanceof Uint8Array ? Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1') : undefined;
    if (key === name) return v;
  }
  return undefined;
}

/** Decodes a msgpack_numpy map (as msgpackr returns it with `mapsAsObjects: false`). */
export function decodeNdarray(m: unknown, field = 'ndarray'): Ndarray {
  if (!(m instanceof Map) || mapGet(m, 'nd') !== true) throw new MsgpackNumpyError(`${field}: not a msgpack_numpy array map`);
  const type = mapGet(m, 'type');
  const shape = mapGet(m, 'shape');
  const data = mapGet(m, 'data');
  const kind = mapGet(m, 'kind');
  if (kind instanceof Uint8Array && kind.byteLength > 0) throw new MsgpackNumpyError(`${field}: structured dtypes are not supported`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new MsgpackNumpyError(`${field}: bad shape`);
  if (!(data instanceof Uint8Array)) throw new MsgpackNumpyError(`${field}: data is not binary`);
  const count = shape.reduce((a: number, b: number) => a * b, 1);
  const typeStr = typeof type === 'string' ? type : type instanceof Uint8Array ? Buffer.from(type).toString('latin1') : '';
  if (typeStr === DTYPES.float32) {
    if (data.byteLength !== count * 4) throw new MsgpackNumpyError(`${field}: ${data.byteLength} bytes for shape (${shape.join(', ')}) <f4`);
    if (data.byteOffset % 4 === 0) return { data: new Float32Array(data.buffer, data.byteOffset, count), shape, dtype: 'float32', view: true };
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(data);
    return { data: out, shape, dtype: 'float32', view: false };
  }
  if (typeStr === DTYPES.float16) {
    if (data.byteLength !== count * 2) throw new MsgpackNumpyError(`${field}: ${data.byteLength} bytes for shape (${shape.join(', ')}) <f2`);
    const bits = data.byteOffset % 2 === 0 ? new Uint16Array(data.buffer, data.byteOffset, count) : new Uint16Array(new Uint8Array(data).buffer);
    return { data: fromFloat16(bits), shape, dtype: 'float16', view: false };
  }
  throw new MsgpackNumpyError(`${field}: dtype ${JSON.stringify(typeStr)} is not one of ${Object.values(DTYPES).join(', ')}`);
}

/** How a record's arrays are stored. */
export interface RecordEncoding {
  /** features and cls_prob as float16 (boxes stay float32). */
  fp16?: boolean;
  /** false: cls_prob stored as shape (num_boxes, 0). */
  clsProb?: boolean;
}

/** A record's arrays in the form they are stored in (float16 bits with `fp16`). */
export interface StoredArrays {
  features: Float32Array | Uint16Array;
  clsProb: Float32Array | Uint16Array;
  /** 0 when cls_prob is not stored (shape (num_boxes, 0)). */
  numClasses: number;
}

/**
 * A record's arrays as they are stored: features and cls_prob as float16 bits with `fp16`,
 * cls_prob empty without `clsProb` (boxes stay float32). Workers call this, so the conversion
 * runs off the main thread. `alloc` gives the float16 arrays' memory (a caller's pool).
 */
export function storedArrays(r: Pick<K3mRecord, 'features' | 'clsProb' | 'numClasses'>, enc: RecordEncoding, alloc?: (bytes: number) => ArrayBuffer): StoredArrays {
  const keepCls = enc.clsProb !== false;
  const clsProb = keepCls ? r.clsProb : new Float32Array(0);
  const numClasses = keepCls ? r.numClasses : 0;
  const half = (a: Float32Array) => toFloat16(a, alloc && a.length ? new Uint16Array(alloc(2 * a.length), 0, a.length) : undefined);
  return enc.fp16 ? { features: half(r.features), clsProb: half(clsProb), numClasses } : { features: r.features, clsProb, numClasses };
}

/** A record whose arrays are already in their stored form ({@link storedArrays}). */
export type StoredRecord = Omit<K3mRecord, 'features' | 'clsProb' | 'numClasses'> & StoredArrays;

/**
 * The value of a record whose arrays are in stored form. With `transient`, the value is packed
 * into a buffer the next transient call overwrites: for a caller that copies it at once (the
 * LMDB writer does), it saves allocating ~0.5 MB for every record.
 */
export function encodeStoredRecord(r: StoredRecord, o: { transient?: boolean } = {}): Buffer {
  const fields = [
    ndarrayMap(r.features, r.numBoxes, r.featureDim),
    ndarrayMap(r.clsProb, r.numBoxes, r.numClasses),
    // Extras go last in the last array, so the payloads before them keep their alignment.
    withExtra(ndarrayMap(r.boxes, r.numBoxes, 4), r.extra),
    String(r.numBoxes),
    String(r.imageH),
    String(r.imageW),
    r.imageId,
    r.caption,
    r.pv,
    r.category,
  ];
  return o.transient ? transientPackr.pack(fields, RESET_BUFFER_MODE) : packr.pack(fields);
}

/**
 * One datapoint value, exactly as tensorpack 0.9.4 + msgpack_numpy would write it. The value
 * shares memory with msgpackr's output buffer: treat it as read-only.
 * @example encodeRecord(record, { fp16: false, clsProb: true })
 */
export function encodeRecord(r: K3mRecord, enc: RecordEncoding = {}): Buffer {
  return encodeStoredRecord({ ...r, ...storedArrays(r, enc) });
}

const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false, int64AsType: 'number' });

function text(v: unknown, field: string): string {
  if (typeof v === 'string') return v;
  // pandas writes empty cells as float NaN; older writers may leave nil.
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '';
  if (typeof v === 'number') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  throw new MsgpackNumpyError(`${field}: expected text, got ${typeof v}`);
}

function intText(v: unknown, field: string): number {
  const s = text(v, field);
  if (!/^\d+$/.test(s)) throw new MsgpackNumpyError(`${field}: ${JSON.stringify(s)} is not a non-negative integer`);
  return Number(s);
}

/** The extra fields in the boxes map, as `{ extra }`, or nothing when there are none. */
function decodeExtra(m: Map<unknown, unknown>): { extra?: ItemExtra } {
  const domain = mapGet(m, EXTRA_KEYS.domain);
  const labels = mapGet(m, EXTRA_KEYS.instanceLabels);
  const source = mapGet(m, EXTRA_KEYS.captionSource);
  if (domain === undefined && labels === undefined && source === undefined) return {};
  if (labels !== undefined && !Array.isArray(labels)) throw new MsgpackNumpyError(`boxes: ${EXTRA_KEYS.instanceLabels} is not a list`);
  if (source !== undefined && source !== 'w' && source !== 'g') throw new MsgpackNumpyError(`boxes: ${EXTRA_KEYS.captionSource} ${JSON.stringify(source)} is not w or g`);
  return {
    extra: {
      ...(domain !== undefined ? { domain: text(domain, EXTRA_KEYS.domain) } : {}),
      ...(labels !== undefined ? { instanceLabels: (labels as unknown[]).map((l, i) => text(l, `${EXTRA_KEYS.instanceLabels}[${i}]`)) } : {}),
      ...(source !== undefined ? { captionSource: source } : {}),
    },
  };
}

/** A decoded datapoint plus the stored dtype (the record itself is always float32). */
export interface DecodedRecord {
  record: K3mRecord;
  dtype: DtypeName;
  /** Whether features was handed out as a view (no copy). */
  zeroCopy: boolean;
}

/** Decodes one value into the record our trainer uses; throws {@link MsgpackNumpyError}. */
export function decodeRecord(value: Uint8Array): DecodedRecord {
  let dp: unknown;
  try {
    dp = unpackr.unpack(value);
  } catch (e) {
    throw new MsgpackNumpyError(`not msgpack: ${(e as Error).message}`);
  }
  if (!Array.isArray(dp) || dp.length !== FIELDS.length) throw new MsgpackNumpyError(`expected a list of ${FIELDS.length} fields`);
  const features = decodeNdarray(dp[0], 'features');
  const clsProb = decodeNdarray(dp[1], 'cls_prob');
  const boxes = decodeNdarray(dp[2], 'boxes');
  const numBoxes = intText(dp[3], 'num_boxes');
  for (const [name, a] of [['features', features], ['cls_prob', clsProb], ['boxes', boxes]] as const) {
    if (a.shape.length !== 2 || a.shape[0] !== numBoxes) throw new MsgpackNumpyError(`${name}: shape (${a.shape.join(', ')}) for num_boxes ${numBoxes}`);
  }
  if (boxes.shape[1] !== 4) throw new MsgpackNumpyError(`boxes: shape (${boxes.shape.join(', ')}) is not (n, 4)`);
  return {
    record: {
      features: features.data,
      clsProb: clsProb.data,
      boxes: boxes.data,
      numBoxes,
      imageH: intText(dp[4], 'image_h'),
      imageW: intText(dp[5], 'image_w'),
      imageId: text(dp[6], 'image_id'),
      caption: text(dp[7], 'caption'),
      pv: text(dp[8], 'pv'),
      category: text(dp[9], 'category'),
      featureDim: features.shape[1]!,
      numClasses: clsProb.shape[1]!,
      ...decodeExtra(dp[2] as Map<unknown, unknown>),
    },
    dtype: features.dtype,
    zeroCopy: features.view,
  };
}

/** msgpack of a list of byte strings (tensorpack's `__keys__` value). */
export function encodeBinList(items: readonly Uint8Array[]): Buffer {
  return packr.pack(items.map((it) => Buffer.from(it.buffer, it.byteOffset, it.byteLength)));
}

/** Decodes a msgpack list of byte strings (or str, as some writers produce). */
export function decodeBinList(value: Uint8Array): string[] {
  const v: unknown = unpackr.unpack(value);
  if (!Array.isArray(v)) throw new MsgpackNumpyError('__keys__: not a list');
  return v.map((k, i) => {
    if (typeof k === 'string') return k;
    if (k instanceof Uint8Array) return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
    throw new MsgpackNumpyError(`__keys__[${i}]: not bytes`);
  });
}
