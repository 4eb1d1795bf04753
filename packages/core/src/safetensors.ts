/**
 * @file safetensors, both directions (https://github.com/huggingface/safetensors):
 *
 *   u64 LE  N            header length
 *   N bytes JSON         {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, "__metadata__": {str: str}}
 *   bytes                tensor data, little-endian, C order, offsets relative to the end of the header
 *
 * In core because region-features writes converted detector weights and k3m-model writes
 * checkpoints and reads the golden fixtures. Writes pad the header with spaces to 8 bytes and sort
 * tensors by name, so the same tensors give the same bytes.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.ts';

export const DTYPES = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});
export type Dtype = keyof typeof DTYPES;

export interface RawTensor {
  dtype: Dtype;
  shape: number[];
  /** Little-endian bytes, exactly `prod(shape) * size(dtype)` long. */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Parses a safetensors buffer. Tensor bytes are views into `buf` (no copy). */
export function decodeSafetensors(buf: Uint8Array): SafetensorsFile {
  if (buf.byteLength < 8) throw new SafetensorsError('file shorter than its 8-byte header length');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (8 + n > buf.byteLength) throw new SafetensorsError(`header length ${n} runs past the end of the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    throw new SafetensorsError(`header is not JSON: ${(e as Error).message}`);
  }
  const base = 8 + n;
  const tensors = new Map<string, RawTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = info as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = info as { dtype: Dtype; shape: number[]; data_offsets: [number, number] };
    if (!(dtype in DTYPES)) throw new SafetensorsError(`${name}: unknown dtype ${dtype}`);
    const [b, e] = data_offsets;
    if (e - b !== numel(shape) * DTYPES[dtype]) {
      throw new SafetensorsError(`${name}: ${e - b} bytes for shape [${shape}] of ${dtype}`);
    }
    if (base + e > buf.byteLength) throw new SafetensorsError(`${name}: data runs past the end of the file`);
    tensors.set(name, { dtype, shape, bytes: buf.subarray(base + b, base + e) });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(new Uint8Array(await readFile(path)));
}

/** Serialises tensors (sorted by name) and optional string metadata. */
export function encodeSafetensors(tensors: Map<string, RawTensor> | Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))].sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of entries) {
    const len = numel(t.shape) * DTYPES[t.dtype];
    if (t.bytes.byteLength !== len) throw new SafetensorsError(`${name}: ${t.bytes.byteLength} bytes for shape [${t.shape}] of ${t.dtype}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + len] };
    off += len;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.byteLength), true);
  out.set(hbytes, 8);
  let p = 8 + hbytes.byteLength;
  for (const [, t] of entries) {
    out.set(t.bytes, p);
    p += t.bytes.byteLength;
  }
  return out;
}

export async function writeSafetensors(
  path: string,
  tensors: Map<string, RawTensor> | Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Copies bytes to a fresh aligned buffer (views into a file buffer may be misaligned). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** IEEE half to float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Any floating or integer tensor as Float32Array (F16/BF16 widened, I64 narrowed). */
export function toFloat32(t: RawTensor): Float32Array {
  const buf = aligned(t.bytes);
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F64':
      return Float32Array.from(new Float64Array(buf));
    case 'F16':
      return Float32Array.from(new Uint16Array(buf), halfToFloat);
    case 'BF16': {
      const u16 = new Uint16Array(buf);
      const u32 = new Uint32Array(u16.length);
      for (let i = 0; i < u16.length; i++) u32[i] = u16[i]! << 16;
      return new Float32Array(u32.buffer);
    }
    case 'I64':
      return Float32Array.from(new BigInt64Array(buf), (v) => Number(v));
    case 'I32':
      return Float32Array.from(new Int32Array(buf));
    case 'I16':
      return Float32Array.from(new Int16Array(buf));
    case 'I8':
      return Float32Array.from(new Int8Array(buf));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(new Uint8Array(buf));
  }
}

/** Integer tensors as Int32Array (I64 values must fit). */
export function toInt32(t: RawTensor): Int32Array {
  const buf = aligned(t.bytes);
  switch (t.dtype) {
    case 'I64':
      return Int32Array.from(new BigInt64Array(buf), (v) => Number(v));
    case 'I32':
      return new Int32Array(buf);
    default:
      return Int32Array.from(toFloat32(t));
  }
}

/** An F32 tensor from a Float32Array. */
export function f32(shape: number[], data: Float32Array): RawTensor {
  return { dtype: 'F32', shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** An I64 tensor from integers. */
export function i64(shape: number[], data: ArrayLike<number>): RawTensor {
  const b = BigInt64Array.from(Array.from(data), (v) => BigInt(v));
  return { dtype: 'I64', shape, bytes: new Uint8Array(b.buffer) };
}
