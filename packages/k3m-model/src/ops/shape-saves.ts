/**
 * @file Gradients that keep only their inputs' shapes for the backward pass, as PyTorch's
 * autograd does for additions and views. TensorFlow.js's `Add`, `Reshape`, `Slice`, ... save
 * their input tensors only to read `.shape` in the gradient, and a saved tensor keeps its
 * memory alive until the backward pass reaches it: in a k3m-medium share of 4 items, `Reshape`'s
 * and `Add`'s saves alone held 126 MB that nothing else needed, of 573 MB live at the end of the
 * forward pass.
 *
 * {@link saveShapesOnly} records the shapes in the kernel call's attributes (the engine hands the
 * same object to the gradient) and re-registers each gradient to save nothing and call
 * TensorFlow.js's own gradient function with shape-only stand-ins. The gradient ops are the
 * same, so are their bits (tested against the stock gradients).
 */
import * as tf from '@tensorflow/tfjs';

/** Kernels whose stock gradient reads nothing of its saved inputs but their shapes (tfjs-core 4.x gradients/*_grad.js). */
export const SHAPE_ONLY_KERNELS = Object.freeze(['Add', 'AddN', 'Concat', 'ExpandDims', 'Mean', 'PadV2', 'Reshape', 'Slice', 'Sub', 'Sum']);

const SHAPES = Symbol('k3m.savedShapes');

/** What a gradient gets instead of a saved tensor: its shape (and what derives from it), no data. */
interface ShapeOnly {
  readonly shape: number[];
  readonly rank: number;
  readonly size: number;
  readonly dtype: tf.DataType;
  dispose(): void;
}

const standIn = (t: tf.TensorInfo): ShapeOnly => ({
  shape: t.shape.slice(),
  rank: t.shape.length,
  size: tf.util.sizeFromShape(t.shape),
  dtype: t.dtype,
  dispose() {},
});

interface PatchedEngine {
  isTapeOn?(): boolean;
  runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap): unknown;
  [SHAPES]?: true;
}

/** Installs the shape-only gradients of {@link SHAPE_ONLY_KERNELS} in this thread's TensorFlow.js (idempotent). */
export function saveShapesOnly(): void {
  const engine = tf.engine() as unknown as PatchedEngine;
  if (engine[SHAPES]) return;
  // Which inputs each stock gradient saved, in its order.
  const saves = new Map<string, (inputs: tf.NamedTensorMap) => tf.TensorInfo[]>();
  for (const kernelName of SHAPE_ONLY_KERNELS) {
    const stock = tf.getGradient(kernelName);
    if (!stock) throw new Error(`TensorFlow.js has no gradient for ${kernelName}: saveShapesOnly needs its stock gradient`);
    if (stock.outputsToSave?.some(Boolean)) throw new Error(`the stock gradient of ${kernelName} saves outputs: it is not shape-only`);
    const names = stock.inputsToSave ?? [];
    saves.set(kernelName, stock.saveAllInputs ? (inputs) => Object.keys(inputs).map((k) => inputs[k]!) : (inputs) => names.map((n) => inputs[n]!));
    tf.registerGradient({
      kernelName,
      inputsToSave: [],
      gradFunc: (dy, _saved, attrs) => {
        const shapes = (attrs as { [SHAPES]?: ShapeOnly[] } | undefined)?.[SHAPES];
        if (!shapes) throw new Error(`the ${kernelName} kernel ran without its input shapes recorded (saveShapesOnly was installed after it ran?)`);
        return stock.gradFunc(dy, shapes as unknown as tf.Tensor[], attrs!);
      },
    });
  }
  const runKernel = engine.runKernel.bind(engine);
  engine.runKernel = (kernelName, inputs, attrs) => {
    const save = saves.get(kernelName);
    // Only while the tape records (no other call gets a gradient); a fresh attribute object, as the caller's may be shared.
    const recording = save && (engine.isTapeOn?.() ?? true);
    return runKernel(kernelName, inputs, recording ? { ...attrs, [SHAPES]: save(inputs).map(standIn) } : attrs);
  };
  engine[SHAPES] = true;
}
