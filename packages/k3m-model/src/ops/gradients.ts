/**
 * @file Reverse-mode gradients over TensorFlow.js's tape that free memory as the backward pass
 * goes, as PyTorch's autograd does. `tf.engine().gradients` keeps, until the last node is done,
 * every tensor saved for the backward pass, the gradient of every intermediate tensor and every
 * temporary of a custom gradient: the peak of a k3m-small step is about twice its live set.
 * Here each node's saved tensors and its outputs' gradients are released once the node has run,
 * its temporaries inside a `tidy`. Nodes and additions run in the engine's order, so the
 * gradients are the engine's, bit for bit (tested).
 *
 * It uses the engine's tape (`state.activeTape`, `startTape`/`endTape`), which TensorFlow.js
 * 4.x does not export; {@link frugalGradients} checks that they are there and otherwise falls
 * back to `tf.engine().gradients`.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Takes one part of the gradient of `xs[k]` as the backward pass produces it (`first`: its first
 * part; later parts are to be added to it in the order given, as the engine adds them; `last`:
 * no part follows, the gradient is complete) and returns true when it has copied it away; the
 * tensor is disposed after the call. A leaf whose parts are taken gets no gradient tensor.
 * Refusing the first part keeps the leaf on the tensor path; taking the first and refusing a
 * later one is an error.
 */
export type GradientSink = (k: number, dx: tf.Tensor, first: boolean, last: boolean) => boolean;

/** One recorded kernel (tfjs-core tape.ts `TapeNode`). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineTape {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: tf.Tensor[] };
}

const engineTape = (): EngineTape | undefined => {
  const e = tf.engine() as unknown as Partial<EngineTape>;
  const ok = typeof e.scopedRun === 'function' && typeof e.startTape === 'function' && typeof e.endTape === 'function' && typeof e.state?.gradientDepth === 'number';
  return ok ? (e as EngineTape) : undefined;
};

/**
 * The nodes on a path from `xs` to `y`, their inputs pruned to those that depend on `xs`
 * (tfjs-core's `getFilteredNodesXToY`, which the package does not export).
 */
function nodesXToY(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (!node.outputs.some((o) => toY.has(o.id))) continue;
    for (const t of Object.values(node.inputs)) toY.add(t.id);
    nodesToY.add(node.id);
  }
  return tape
    .filter((n) => nodesFromX.has(n.id) && nodesToY.has(n.id))
    .map((n) => ({ ...n, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))) }));
}

const disposeAll = (ts: readonly tf.Tensor[] | undefined) => ts?.forEach((t) => t.dispose());

/**
 * The value of `f` and its gradient with respect to each of `xs` (undefined where `f` does not
 * depend on it), as `tf.engine().gradients(f, xs, undefined, true)` returns them, with a lower
 * peak of memory. Inside another gradient (higher order) it is the engine's own.
 */
export function frugalGradients(
  f: () => tf.Scalar,
  xs: tf.Tensor[],
  sink?: GradientSink,
): { value: tf.Scalar; grads: (tf.Tensor | undefined)[] } {
  const eng = engineTape();
  if (!eng || eng.state.gradientDepth > 0) {
    const r = (tf.engine() as unknown as EngineTape).gradients(f, xs, undefined, true) as { value: tf.Scalar; grads: (tf.Tensor | undefined)[] };
    if (!sink) return r;
    // The engine's path has the sums only: hand each over as its one part.
    return { value: r.value, grads: r.grads.map((g, k) => (g && sink(k, g, true, true) ? (g.dispose(), undefined) : g)) };
  }
  const y = eng.scopedRun(
    () => eng.startTape(),
    () => eng.endTape(),
    () => tf.tidy('forward', f),
  );
  const tape = eng.state.activeTape ?? [];
  const path = nodesXToY(tape, xs, y);
  const onPath = new Set(path.map((n) => n.id));
  // Saved for nodes whose gradient is never asked for.
  for (const node of tape) if (!onPath.has(node.id)) disposeAll(node.saved);
  try {
    return tf.tidy('backward', () => {
      // Gradient of each tensor id; a tensor object can stand for several ids (an identity
      // gradient), so it is disposed when its last entry goes.
      const grad = new Map<number, tf.Tensor>();
      const refs = new Map<tf.Tensor, number>();
      const final = new Set(xs.map((x) => x.id));
      const put = (id: number, t: tf.Tensor) => {
        grad.set(id, t);
        refs.set(t, (refs.get(t) ?? 0) + 1);
      };
      const drop = (id: number) => {
        const t = grad.get(id);
        if (!t) return;
        grad.delete(id);
        const n = refs.get(t)! - 1;
        if (n > 0) refs.set(t, n);
        else {
          refs.delete(t);
          t.dispose();
        }
      };
      const leaf = new Map(xs.map((x, k) => [x.id, k]));
      // Parts each leaf's gradient will have: one per (node, input) on the path that reads it.
      const partsLeft = new Map<number, number>();
      for (const node of path) for (const t of Object.values(node.inputs)) if (leaf.has(t.id)) partsLeft.set(t.id, (partsLeft.get(t.id) ?? 0) + 1);
      const sunk = new Set<number>();
      put(y.id, tf.onesLike(y));
      for (let i = path.length - 1; i >= 0; i--) {
        const node = path[i]!;
        if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
        const dys = node.outputs.map((o) => grad.get(o.id) ?? null);
        const names = Object.keys(node.inputs);
        const dxs = tf.tidy(() => {
          const g = node.gradient!(dys);
          return names.map((name) => {
            if (!(name in g)) throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(g)}.`);
            const dx = g[name]!();
            // A saved tensor handed back as a gradient outlives the node's saved tensors.
            return node.saved?.includes(dx) ? tf.clone(dx) : dx;
          });
        });
        names.forEach((name, k) => {
          const dx = dxs[k]!;
          const x = node.inputs[name]!;
          if (dx.dtype !== 'float32') throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
          if (!tf.util.arraysEqual(dx.shape, x.shape)) throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
          const at = leaf.get(x.id);
          const left = at === undefined ? 0 : partsLeft.get(x.id)! - 1;
          if (at !== undefined) partsLeft.set(x.id, left);
          if (sink && at !== undefined && !grad.has(x.id)) {
            const first = !sunk.has(x.id);
            if (sink(at, dx, first, left === 0)) {
              sunk.add(x.id);
              if (!refs.has(dx)) dx.dispose();
              return;
            }
            if (!first) throw new Error(`frugalGradients: the sink took part of input ${at}'s gradient and refused the rest`);
          }
          const cur = grad.get(x.id);
          if (!cur) return put(x.id, dx);
          const sum = tf.add(cur, dx);
          drop(x.id);
          put(x.id, sum);
          if (!refs.has(dx)) dx.dispose();
        });
        // Every consumer of the node's outputs came later on the tape, so their gradients are complete and used.
        for (const o of node.outputs) if (!final.has(o.id)) drop(o.id);
        disposeAll(node.saved);
      }
      return { value: y as tf.Scalar, grads: xs.map((x) => grad.get(x.id)) };
    });
  } finally {
    for (const node of tape) disposeAll(node.saved);
    eng.state.activeTape = null;
  }
}
