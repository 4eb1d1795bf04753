/**
 * Detector worker threads failing: while starting (a weight missing, a back end that does not
 * load) and on an image (pixels that do not fit their size). Each failure rejects with the
 * worker's own cause, every pending and later image rejects too, and nothing waits forever.
 */
import { describe, expect, it } from 'vitest';
import { DetectorPool, WorkerError, type PoolOptions } from '../src/detector-pool.ts';
import { randomParams } from '../src/model/params.ts';
import { PRESETS } from '../src/model/presets.ts';
import { shareParams } from '../src/shared-params.ts';

const c = PRESETS['small-c4'];
const options = (o: Partial<PoolOptions> = {}): PoolOptions => ({
  workers: 2,
  config: c,
  backend: 'wasm',
  params: shareParams(randomParams(c, 0)),
  rule: 'k3m',
  form: 'k3m',
  attributes: false,
  ...o,
});
const image = (h: number, w: number) => ({ rgb: new Uint8Array(h * w * 3).fill(90), h, w, rawH: h, rawW: w });

describe('DetectorPool', () => {
  it('runs images on every worker and answers each with its row', async () => {
    const pool = await DetectorPool.start(options());
    try {
      expect(pool.size).toBe(2);
      expect(pool.backend).toMatch(/^backend: wasm/);
      const rows = await Promise.all([image(64, 80), image(80, 64), image(72, 72)].map((img, i) => pool.run(`${i}_s0`, img)));
      for (const [i, r] of rows.entries()) {
        if (!('bytes' in r)) throw new Error(r.reason);
        expect(new TextDecoder().decode(r.bytes)).toMatch(new RegExp(`^${i}_s0\t\\d+\t\\d+\t\\d+\tb'[^\n]*\n$`));
      }
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('a worker that cannot build its detector fails start() with that cause', async () => {
    const params = randomParams(c, 0);
    params.delete('roi_heads.box_predictor.cls_score.weight');
    const started = DetectorPool.start(options({ params: shareParams(params) }));
    await expect(started).rejects.toBeInstanceOf(WorkerError);
    await expect(started).rejects.toThrow(/^detector worker [01]: parameter roi_heads\.box_predictor\.cls_score\.weight missing$/);
  }, 60_000);

  it('a back end a worker cannot load stays a usage error (exit 2) naming --backend', async () => {
    await expect(DetectorPool.start(options({ backend: 'tensorflow' }))).rejects.toThrow(/^--backend tensorflow: @tensorflow\/tfjs-node not installed/);
  }, 60_000);

  it('an image that fails on a worker fails it and every other image, with the cause and its stack', async () => {
    // One worker: the other images are still queued when the bad one fails.
    const pool = await DetectorPool.start(options({ workers: 1 }));
    // 10 bytes for a 64x80 RGB image: TensorFlow.js refuses the tensor inside the worker.
    const bad = pool.run('0_s0', { rgb: new Uint8Array(10), h: 64, w: 80, rawH: 64, rawW: 80 });
    const others = [pool.run('1_s0', image(64, 80)), pool.run('2_s0', image(64, 80))];
    const err = await bad.then(
      () => undefined,
      (e: unknown) => e as WorkerError,
    );
    expect(err).toBeInstanceOf(WorkerError);
    expect(err!.message).toMatch(/^detector worker 0: .*should have 15360 values but has 10/);
    expect(String(err!.cause)).toMatch(/extract-image\.ts|detector\.ts/);
    for (const p of others) await expect(p).rejects.toBe(err);
    await expect(pool.run('3_s0', image(64, 80))).rejects.toBe(err);
    await pool.close();
  }, 60_000);
});
