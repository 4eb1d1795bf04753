/**
 * @file Benchmark of a training worker's wasm heap (not a test): the heap one worker reaches over a
 * few steps of the trainer's backward pass (`frugalGradients`) for a preset and a share size, next
 * to the memory estimate `pretrain` checks before training (src/train/memory-estimate.ts, whose
 * fit these figures are). The heap grows in steps and never shrinks; a share that does not fit
 * ends in wasm's `Aborted()` (run it in its own process).
 *
 *   npx tsx tools/bench/train-heap.ts k3m-small 8            # 3 steps of a share of 8 items
 *   npx tsx tools/bench/train-heap.ts k3m-base 2 2           # 2 steps
 *   K3M_BLAS=off npx tsx tools/bench/train-heap.ts k3m-medium 4   # wasm's own XNNPACK kernels
 *
 * The batch is synthetic with the reference's shapes (title 36, knowledge 48, 36 regions + the
 * global row, 2048-d features, 1601 classes, the 21,128-word vocabulary).
 */
import * as tf from '@tensorflow/tfjs';
import { describeBackend, estimateTrainingMemory, forward, frugalGradients, ItemStreams, K3mParams, modelConfig, startBackend, wasmKernels, type PresetName } from '@k3m-kit/k3m-model';
import { syntheticBatch } from '@k3m-kit/k3m-model/testing';

const [preset = 'k3m-small', itemsArg = '2', stepsArg = '3'] = process.argv.slice(2);
const items = Number(itemsArg);
const steps = Number(stepsArg);
const backend = await startBackend('wasm');
const config = modelConfig(preset as PresetName, { vocab_size: 21128, v_feature_size: 2048, v_target_size: 1601 });
const params = K3mParams.init(config, 1);
const batch = syntheticBatch(1, { batchSize: items, vocabSize: 21128, featureDim: 2048, numClasses: 1601, regions: 36, titleLen: 36, pvLen: 48 });
const heapGiB = () => ((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length / 2 ** 30).toFixed(3);
console.log(describeBackend(backend));
const heaps: string[] = [];
for (let s = 0; s < steps; s++) {
  const { value, grads } = frugalGradients(() => forward(params, batch, { fusionMode: 1, training: true, rng: new ItemStreams(1, 0, items) }).loss! as tf.Scalar, [...params.vars.values()]);
  value.dispose();
  for (const g of grads) g?.dispose();
  heaps.push(heapGiB());
}
const estimate = estimateTrainingMemory(config, items, 1).worker.total / 2 ** 30;
console.log(`${preset}, a share of ${items} items, ${wasmKernels()} kernels: wasm heap after each step ${heaps.join(' / ')} GiB; estimate ${estimate.toFixed(3)} GiB (${((estimate / Number(heaps.at(-1)) - 1) * 100).toFixed(0)}% over)`);
