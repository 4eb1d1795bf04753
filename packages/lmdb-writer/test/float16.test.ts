/**
 * float32 → float16: the WebAssembly SIMD module (float16-wasm.ts) is what float16.wat assembles
 * to, runs here, and gives the JavaScript conversion's bits (itself checked against numpy in
 * msgpack-numpy.test.ts) on every kind of value and on lengths that are not whole SIMD steps.
 */
import { expect, test } from 'vitest';
import { Rng } from '@k3m-kit/core';
import { FLOAT16_WASM, toFloat16Wasm } from '../src/codecs/float16-wasm.ts';
import { toFloat16, toFloat16Js } from '../src/index.ts';
// @ts-expect-error: a plain JavaScript script without types
import { assemble } from '../scripts/build-float16-wasm.js';

test('the committed module is float16.wat assembled', async () => {
  expect(await assemble()).toBe(FLOAT16_WASM);
});

test('WebAssembly and JavaScript give the same float16 bits', () => {
  const bits: number[] = [];
  // Every sign and exponent, with significands at the edges and at the rounding boundaries.
  const significands = [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fe000, 0x7fefff, 0x7ff000, 0x7ff001, 0x7fffff];
  for (let se = 0; se < 512; se++) for (const m of significands) bits.push(((se << 23) | m) >>> 0);
  const rng = new Rng(11);
  for (let i = 0; i < 1 << 20; i++) bits.push(Math.floor(rng.next() * 2 ** 32));
  const all = new Float32Array(new Uint32Array(bits).buffer);
  const viaWasm = new Uint16Array(all.length);
  expect(toFloat16Wasm(all, viaWasm), 'WebAssembly SIMD is missing').toBe(true);
  expect(Buffer.from(viaWasm.buffer).equals(Buffer.from(toFloat16Js(all).buffer))).toBe(true);
  // Lengths around the 8-value step, and arrays that are views at an offset.
  for (let n = 0; n <= 17; n++) {
    const a = all.subarray(3, 3 + n);
    const out = new Uint16Array(n + 2).fill(0xabcd).subarray(1, 1 + n);
    toFloat16(a, out);
    expect(Array.from(out)).toEqual(Array.from(toFloat16Js(a)));
    expect([out.buffer.byteLength, new Uint16Array(out.buffer)[0], new Uint16Array(out.buffer)[n + 1]]).toEqual([2 * (n + 2), 0xabcd, 0xabcd]);
  }
});
