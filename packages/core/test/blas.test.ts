import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { addFloats, blasStatus, BLAS_ENV } from '../src/blas.ts';
import { currentBackend, describeBackend, selectBackend, setWasmKernels, type BackendChoice } from '../src/backend.ts';
import { PATCH_BUFFER_FLOATS } from '../src/blas-conv.ts';
import { Rng } from '../src/rng.ts';

// .ci/run installs Debian's libopenblas0; without it the kernel is not used
// and these tests say why (and fail in CI, where nothing may skip).
const status = blasStatus();
const skipWhy = status.blas ? undefined : `no BLAS for the wasm matmul: ${status.reason}`;
if (skipWhy) {
  if (process.env.CI === 'true') throw new Error(`${skipWhy} (.ci/run installs libopenblas0)`);
  console.warn(`skipping the BLAS matmul tests: ${skipWhy}`);
}

const rng = new Rng(7);
const rand = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.float(-1, 1)), shape);

/** The product in float64 from the values, the transposes and broadcasts done by hand. */
function reference(a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean): { shape: number[]; values: Float64Array } {
  const A = a.arraySync() as number[][][];
  const B = b.arraySync() as number[][][];
  const ga = A.length;
  const gb = B.length;
  const mat = (x: number[][], t: boolean) => (t ? x[0]!.map((_, j) => x.map((r) => r[j]!)) : x);
  const out: number[] = [];
  let m = 0;
  let n = 0;
  for (let g = 0; g < Math.max(ga, gb); g++) {
    const x = mat(A[ga === 1 ? 0 : g]!, ta);
    const y = mat(B[gb === 1 ? 0 : g]!, tb);
    m = x.length;
    n = y[0]!.length;
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out.push(x[i]!.reduce((s, v, k) => s + v * y[k]![j]!, 0));
  }
  return { shape: [Math.max(ga, gb), m, n], values: Float64Array.from(out) };
}

describe.skipIf(skipWhy !== undefined)('wasm BatchMatMul and convolutions on BLAS', () => {
  let backend: BackendChoice;
  beforeAll(async () => {
    backend = await selectBackend('wasm');
  });

  it('replaces the kernel and names the library in the back-end line', () => {
    expect(backend.matmul).toEqual({ kind: 'blas', name: expect.stringMatching(/OpenBLAS/) });
    expect(describeBackend(backend)).toMatch(/^backend: wasm, matmul on OpenBLAS \d/);
  });

  // Shapes of the model (projections, attention, their gradients) and odd sizes.
  const cases: [number[], number[], boolean, boolean][] = [
    [[1, 37, 64], [1, 64, 48], false, false],
    [[1, 37, 64], [1, 48, 64], false, true],
    [[1, 64, 37], [1, 64, 48], true, false],
    [[1, 64, 37], [1, 48, 64], true, true],
    [[6, 9, 8], [6, 8, 9], false, false],
    [[6, 8, 9], [6, 9, 8], true, true],
    [[6, 9, 8], [1, 8, 5], false, false],
    [[1, 5, 8], [4, 7, 8], false, true],
    [[3, 1, 1], [3, 1, 1], false, false],
  ];
  for (const [sa, sb, ta, tb] of cases) {
    it(`${sa} x ${sb}${ta ? ' transposeA' : ''}${tb ? ' transposeB' : ''} matches the float64 product`, () => {
      const a = rand(sa);
      const b = rand(sb);
      const got = tf.matMul(a, b, ta, tb);
      const want = reference(a, b, ta, tb);
      expect(got.shape).toEqual(want.shape);
      const values = got.dataSync();
      let worst = 0;
      for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i]! - want.values[i]!));
      expect(worst).toBeLessThan(1e-5);
      tf.dispose([a, b, got]);
    });
  }

  it('keeps the batch dimensions of rank-4 operands and empty products', () => {
    const a = rand([2, 3, 4, 5]);
    const b = rand([2, 3, 5, 2]);
    const got = tf.matMul(a, b);
    expect(got.shape).toEqual([2, 3, 4, 2]);
    const flat = reference(tf.reshape(a, [6, 4, 5]), tf.reshape(b, [6, 5, 2]), false, false);
    const values = got.dataSync();
    for (let i = 0; i < values.length; i++) expect(values[i]).toBeCloseTo(flat.values[i]!, 5);
    expect(tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])).arraySync()).toEqual([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
    expect(tf.matMul(tf.zeros([0, 3]), tf.zeros([3, 4])).shape).toEqual([0, 4]);
  });

  it('gives the same gradients as the pure-JS cpu back end', async () => {
    const x = rand([5, 7]);
    const w = rand([7, 3]);
    const f = (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(p, q, false, false)));
    const onWasm = tf.grads(f)([x, w]).map((t) => Array.from(t.dataSync()));
    await tf.setBackend('cpu');
    try {
      const onCpu = tf.grads(f)([tf.tensor(x.dataSync(), x.shape), tf.tensor(w.dataSync(), w.shape)]).map((t) => Array.from(t.dataSync()));
      for (let i = 0; i < 2; i++) onWasm[i]!.forEach((v, j) => expect(v).toBeCloseTo(onCpu[i]![j]!, 4));
    } finally {
      await tf.setBackend('wasm');
    }
  });

  // The detector's convolutions: stem 7x7/2, 3x3 with dilation, 1x1 with and without stride,
  // explicit padding, several images, and small channel counts (the element-wise im2col path).
  const convs: { x: number[]; f: number[]; strides: number | [number, number]; pad: [[number, number], [number, number], [number, number], [number, number]] | 'same' | 'valid' | number; dilations: number; bias: boolean; activation: 'relu' | 'linear' }[] = [
    { x: [1, 9, 11, 3], f: [7, 7, 3, 8], strides: 2, pad: 'same', dilations: 1, bias: true, activation: 'relu' },
    { x: [2, 8, 8, 16], f: [3, 3, 16, 5], strides: 1, pad: 'valid', dilations: 2, bias: true, activation: 'linear' },
    { x: [1, 10, 10, 32], f: [1, 1, 32, 64], strides: 2, pad: 'valid', dilations: 1, bias: false, activation: 'relu' },
    { x: [3, 7, 7, 20], f: [1, 1, 20, 9], strides: 1, pad: 'same', dilations: 1, bias: true, activation: 'linear' },
    { x: [1, 12, 10, 24], f: [3, 3, 24, 17], strides: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]], dilations: 1, bias: true, activation: 'relu' },
    { x: [2, 6, 5, 4], f: [3, 3, 4, 6], strides: 1, pad: 1, dilations: 1, bias: false, activation: 'linear' },
    { x: [1, 5, 6, 12], f: [1, 1, 12, 7], strides: 1, pad: [[0, 0], [0, 2], [0, 1], [0, 0]], dilations: 1, bias: true, activation: 'relu' },
  ];
  for (const c of convs) {
    it(`conv ${c.x} * ${c.f} stride ${c.strides} pad ${JSON.stringify(c.pad)} dilation ${c.dilations}${c.bias ? ' + bias' : ''} ${c.activation}: as the cpu back end`, async () => {
      const x = rand(c.x);
      const f = rand(c.f);
      const b = rand([c.f[3]!]);
      const fused = () => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: c.strides, pad: c.pad as 'same', dilations: c.dilations, bias: c.bias ? b : undefined, activation: c.activation });
      const plain = () => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad as 'same', 'NHWC', c.dilations);
      const got = [fused(), plain()];
      await tf.setBackend('cpu');
      let want: tf.Tensor[];
      try {
        want = [fused(), plain()];
      } finally {
        await tf.setBackend('wasm');
      }
      for (let i = 0; i < 2; i++) {
        expect(got[i]!.shape).toEqual(want[i]!.shape);
        const g = got[i]!.dataSync();
        const w = want[i]!.dataSync();
        let worst = 0;
        for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j]! - w[j]!));
        expect(worst).toBeLessThan(1e-4);
      }
      if (c.activation === 'relu') expect(Math.min(...got[0]!.dataSync())).toBe(0);
    });
  }

  it('conv keeps the im2col buffer bounded: a convolution larger than it gives the same result', async () => {
    // 96x96 outputs x 3x3x64 patch values = 5.3 M floats: two chunks of PATCH_BUFFER_FLOATS
    expect(96 * 96 * 9 * 64).toBeGreaterThan(PATCH_BUFFER_FLOATS);
    const x = rand([1, 96, 96, 64]);
    const f = rand([3, 3, 64, 8]);
    const got = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same').dataSync();
    await tf.setBackend('cpu');
    let want: Float32Array | Int32Array | Uint8Array;
    try {
      want = tf.conv2d(tf.tensor4d(x.dataSync(), [1, 96, 96, 64]), tf.tensor4d(f.dataSync(), [3, 3, 64, 8]), 1, 'same').dataSync();
    } finally {
      await tf.setBackend('wasm');
    }
    let worst = 0;
    for (let j = 0; j < got.length; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!));
    expect(worst).toBeLessThan(1e-4);
  });

  it('a broadcast with more matrices than either side ([2, 1] against [1, 2]) is left to wasm\'s own kernel', () => {
    const a = rand([2, 1, 3, 4]);
    const b = rand([1, 2, 4, 5]);
    const got = tf.matMul(a, b);
    setWasmKernels('xnnpack');
    try {
      const stock = tf.matMul(a, b);
      expect(got.shape).toEqual(stock.shape);
      expect(Array.from(got.dataSync())).toEqual(Array.from(stock.dataSync()));
    } finally {
      setWasmKernels('blas');
    }
  });

  it('setWasmKernels switches between wasm\'s own kernels and the BLAS ones in a running process', () => {
    const a = tf.tensor2d([[1, 2, 3]]);
    const b = tf.tensor2d([[4], [5], [6]]);
    const blasKernels = ['BatchMatMul', 'Conv2D', 'FusedConv2D'].map((n) => tf.getKernel(n, 'wasm')!.kernelFunc);
    expect(setWasmKernels('xnnpack')).toEqual({ kind: 'xnnpack', reason: 'setWasmKernels' });
    const stock = ['BatchMatMul', 'Conv2D', 'FusedConv2D'].map((n) => tf.getKernel(n, 'wasm')!.kernelFunc);
    stock.forEach((f, i) => expect(f).not.toBe(blasKernels[i]));
    expect(describeBackend(currentBackend()!)).toMatch(/^backend: wasm, matmul on XNNPACK \(setWasmKernels\)/);
    expect(tf.matMul(a, b).dataSync()[0]).toBe(32);
    expect(setWasmKernels('blas').kind).toBe('blas');
    // wasm's own kernels replaced again, all three.
    ['BatchMatMul', 'Conv2D', 'FusedConv2D'].forEach((n, i) => expect(tf.getKernel(n, 'wasm')!.kernelFunc).not.toBe(stock[i]));
    expect(describeBackend(currentBackend()!)).toMatch(/^backend: wasm, matmul on OpenBLAS/);
    expect(tf.matMul(a, b).dataSync()[0]).toBe(32);
  });

  it('addFloats adds in float32 bit for bit as a JavaScript loop, on BLAS for long arrays, in shared and ordinary memory at offsets', () => {
    const r = new Rng(3);
    for (const n of [0, 5, 4095, 4096, 100_003]) {
      // y in shared memory, x in ordinary memory, both at an offset (the trainer's arrays: shared ones and views of a wasm heap)
      const y = new Float32Array(new SharedArrayBuffer(4 * (n + 9))).subarray(9);
      const x = new Float32Array(new ArrayBuffer(4 * n + 64), 64, n);
      // magnitudes far apart, so the sums round
      for (let i = 0; i < n; i++) [x[i], y[i]] = [r.normal() * 2 ** r.int(40), r.normal() * 2 ** -r.int(40)];
      const want = Float32Array.from(y);
      for (let i = 0; i < n; i++) want[i]! += x[i]!;
      addFloats(y, x);
      expect(Buffer.from(y.buffer, y.byteOffset, y.byteLength).equals(Buffer.from(want.buffer))).toBe(true);
    }
    expect(() => addFloats(new Float32Array(3), new Float32Array(4))).toThrow(/3 and 4 elements/);
  });

  it(`${BLAS_ENV}=off keeps wasm's own kernel and says why`, () => {
    // Another process: the library is loaded once per thread.
    const code = `
      import * as tf from '@tensorflow/tfjs';
      import { selectBackend, describeBackend } from ${JSON.stringify(new URL('../src/backend.ts', import.meta.url).href)};
      const b = await selectBackend('wasm');
      const v = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0];
      console.log(JSON.stringify({ line: describeBackend(b), v }));`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { env: { ...process.env, [BLAS_ENV]: 'off' }, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ line: `backend: wasm, matmul on XNNPACK (${BLAS_ENV}=off)`, v: 11 });
  });
});
