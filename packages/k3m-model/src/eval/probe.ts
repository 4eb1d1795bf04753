/**
 * @file The small models trained on frozen representations: a softmax classifier (item
 * classification), a pair of projections into a shared space (cross-modal retrieval: K3M's
 * pretraining has no contrastive objective, so title and image representations live in
 * unrelated spaces until something aligns them; closed-form CCA) and a property-conditioned
 * value classifier (knowledge completion). The classifiers train with Adam for a fixed number of
 * steps from a seeded initialisation, so a result depends only on the representations and the seed.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@k3m-kit/core';
import { EigenvalueDecomposition, Matrix as MlMatrix, SingularValueDecomposition } from 'ml-matrix';

/** A row-major matrix of `rows` feature vectors of width `cols`. */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** The fixed training budget of one probe. */
export interface ProbeBudget {
  steps: number;
  learningRate: number;
  /** L2 penalty on the weights (not the biases). */
  weightDecay: number;
  /** Rows per step; 0 = the whole training set every step. */
  batchSize: number;
  seed: number;
}

/** Column means and standard deviations of a training matrix, applied to any matrix. */
export interface Standardizer {
  mean: Float32Array;
  std: Float32Array;
}

/** Fits per-column mean and std (std floored at 1e-6 so constant columns stay finite). */
export function fitStandardizer(x: Matrix): Standardizer {
  const mean = new Float32Array(x.cols);
  const std = new Float32Array(x.cols);
  for (let r = 0; r < x.rows; r++) for (let c = 0; c < x.cols; c++) mean[c]! += x.data[r * x.cols + c]! / x.rows;
  for (let r = 0; r < x.rows; r++) {
    for (let c = 0; c < x.cols; c++) std[c]! += (x.data[r * x.cols + c]! - mean[c]!) ** 2 / x.rows;
  }
  for (let c = 0; c < x.cols; c++) std[c] = Math.max(Math.sqrt(std[c]!), 1e-6);
  return { mean, std };
}

export function standardize(x: Matrix, s: Standardizer): Matrix {
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < x.rows; r++) {
    for (let c = 0; c < x.cols; c++) out[r * x.cols + c] = (x.data[r * x.cols + c]! - s.mean[c]!) / s.std[c]!;
  }
  return { data: out, rows: x.rows, cols: x.cols };
}

/** Glorot-uniform weights from the seeded generator (tfjs initialisers take no seed stream we control). */
function glorot(rng: Rng, fanIn: number, fanOut: number): tf.Variable {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < w.length; i++) w[i] = (rng.next() * 2 - 1) * limit;
  return tf.variable(tf.tensor2d(w, [fanIn, fanOut]));
}

/** One-hot rows built on the host: tf.oneHot refuses a depth of 1 (one class, one property). */
function oneHotRows(ids: Int32Array, depth: number): tf.Tensor2D {
  const data = new Float32Array(ids.length * depth);
  ids.forEach((k, i) => {
    if (!(k >= 0 && k < depth)) throw new RangeError(`class id ${k} outside 0..${depth - 1}`);
    data[i * depth + k] = 1;
  });
  return tf.tensor2d(data, [ids.length, depth]);
}

const zeros = (n: number): tf.Variable => tf.variable(tf.zeros([n]));
const asTensor = (x: Matrix): tf.Tensor2D => tf.tensor2d(x.data, [x.rows, x.cols]);

function l2(weights: tf.Variable[]): tf.Scalar {
  return tf.addN(weights.map((w) => tf.sum(tf.square(w)))) as tf.Scalar;
}

/**
 * Runs `steps` Adam steps of `loss` on mini-batches of `batchSize` rows (all `n` rows when 0 or
 * larger), drawn by walking seeded permutations of the rows. Returns the last step's loss.
 */
function fit(
  budget: ProbeBudget,
  n: number,
  vars: tf.Variable[],
  weights: tf.Variable[],
  loss: (rows: tf.Tensor1D | undefined) => tf.Scalar,
): number {
  const opt = tf.train.adam(budget.learningRate);
  const rng = Rng.from(budget.seed, 'probe-batches');
  const full = budget.batchSize <= 0 || budget.batchSize >= n;
  let order: number[] = [];
  let last = NaN;
  for (let s = 0; s < budget.steps; s++) {
    let rows: tf.Tensor1D | undefined;
    if (!full) {
      if (order.length < budget.batchSize) order = rng.shuffle([...Array(n).keys()]);
      rows = tf.tensor1d(order.splice(0, budget.batchSize), 'int32');
    }
    const cost = opt.minimize(() => tf.add(loss(rows), tf.mul(budget.weightDecay, l2(weights))) as tf.Scalar, true, vars);
    rows?.dispose();
    if (s === budget.steps - 1) last = cost!.dataSync()[0]!;
    cost!.dispose();
  }
  opt.dispose();
  return last;
}

/** The chosen rows of a constant tensor (no gradient flows into it). */
const pick = <T extends tf.Tensor>(t: T, rows: tf.Tensor1D | undefined): T => (rows ? (tf.gather(t, rows) as T) : t);

function disposeAll(vars: tf.Variable[]): void {
  for (const v of vars) v.dispose();
}

export interface TrainedClassifier {
  /** Class scores (logits), row-major `[rows, numClasses]`. */
  scores(x: Matrix): Float32Array;
  /** Arg-max class per row (the lowest index wins a tie). */
  predict(x: Matrix): Int32Array;
  finalLoss: number;
  dispose(): void;
}

/**
 * A linear softmax classifier trained with cross-entropy.
 * @example const clf = trainSoftmaxProbe(x, labels, 5, { steps: 200, learningRate: 0.01, weightDecay: 1e-4, seed: 1 });
 */
export function trainSoftmaxProbe(x: Matrix, labels: Int32Array, numClasses: number, budget: ProbeBudget): TrainedClassifier {
  const rng = Rng.from(budget.seed, 'softmax-probe');
  const w = glorot(rng, x.cols, numClasses);
  const b = zeros(numClasses);
  const xt = asTensor(x);
  const yt = oneHotRows(labels, numClasses);
  const finalLoss = fit(budget, x.rows, [w, b], [w], (rows) =>
    tf.losses.softmaxCrossEntropy(pick(yt, rows), tf.add(tf.matMul(pick(xt, rows), w), b)) as tf.Scalar,
  );
  xt.dispose();
  yt.dispose();
  const scores = (m: Matrix) => tf.tidy(() => tf.add(tf.matMul(asTensor(m), w), b).dataSync() as Float32Array);
  return {
    scores,
    predict: (m) => argmaxRows(scores(m), m.rows, numClasses),
    finalLoss,
    dispose: () => disposeAll([w, b]),
  };
}

export interface ProjectionOptions {
  /** Width of the shared space (canonical pairs kept; fewer when either side has lower rank). */
  dim: number;
  /**
   * Shrinkage r of each side's covariance toward the identity, `(1 - r) C + r I`, on
   * standardised columns (0 < r <= 1; 1 = partial least squares). Several: chosen on held-out
   * fit pairs (tasks.ts's {@link chooseShrinkage}).
   */
  shrinkages: readonly number[];
  seed: number;
}

export interface TrainedProjection {
  /** L2-normalised projections of query-side rows (standardised with the fit side's statistics first). */
  projectQuery(x: Matrix): Matrix;
  projectGallery(x: Matrix): Matrix;
  /**
   * Strength of each kept canonical pair on the fit side, largest first: the singular values of
   * the cross-covariance whitened by the shrunk covariances. The canonical correlations when the
   * shrinkage is tiny; with shrinkage toward I a high-variance direction is whitened by less than
   * its variance, so a value may exceed 1.
   */
  strengths: number[];
}

/** A side's principal coordinates: `x = scores * loadings^T` on its non-null directions. */
interface PrincipalBasis {
  /** `[n, k]` coordinates of the fit rows. */
  scores: MlMatrix;
  /** `[cols, k]` orthonormal directions. */
  loadings: MlMatrix;
  /** Variance of the fit rows along each direction (eigenvalue / n). */
  variance: Float64Array;
}

const toMl = (x: Matrix): MlMatrix => MlMatrix.from1DArray(x.rows, x.cols, Float64Array.from(x.data));

/** `m * diag(s)` in place (ml-matrix's scaleColumns rescales to a range instead). */
function mulColumns(m: MlMatrix, s: ArrayLike<number>): MlMatrix {
  for (let c = 0; c < m.columns; c++) m.mulColumn(c, s[c]!);
  return m;
}

/** `diag(s) * m` in place. */
function mulRows(m: MlMatrix, s: ArrayLike<number>): MlMatrix {
  for (let r = 0; r < m.rows; r++) m.mulRow(r, s[r]!);
  return m;
}

/**
 * Eigendecomposition of the smaller of `X^T X` (columns x columns) and the Gram matrix `X X^T`
 * (rows x rows), whichever side of the fit is narrower. Directions with no variance are dropped.
 */
function principalBasis(x: MlMatrix): PrincipalBasis {
  const n = x.rows;
  const wide = x.columns > n;
  const g = wide ? x.mmul(x.transpose()) : x.transpose().mmul(x);
  const e = new EigenvalueDecomposition(g, { assumeSymmetric: true });
  const lambda = e.realEigenvalues;
  const top = Math.max(0, ...lambda);
  const keep = [...lambda.keys()].filter((k) => lambda[k]! > top * 1e-9 && top > 0).sort((a, b) => lambda[b]! - lambda[a]!);
  const v = e.eigenvectorMatrix.subMatrixColumn(keep);
  const root = keep.map((k) => Math.sqrt(lambda[k]!));
  let scores: MlMatrix;
  let loadings: MlMatrix;
  if (wide) {
    // x = U S W^T: v holds U; scores = U S, loadings = W = x^T U S^-1.
    scores = mulColumns(v.clone(), root);
    loadings = mulColumns(x.transpose().mmul(v), root.map((r) => 1 / r));
  } else {
    loadings = v;
    scores = x.mmul(v);
  }
  return { scores, loadings, variance: Float64Array.from(keep, (k) => lambda[k]! / n) };
}

/**
 * The fit side of a canonical correlation analysis, computed once for every shrinkage tried:
 * both sides' principal bases and their cross-covariance in those bases.
 */
export interface CcaFit {
  query: { basis: PrincipalBasis; standardizer: Standardizer; cols: number };
  gallery: { basis: PrincipalBasis; standardizer: Standardizer; cols: number };
  /** `[kq, kg]` cross-covariance of the principal coordinates. */
  cross: MlMatrix;
}

export function prepareCca(query: Matrix, gallery: Matrix): CcaFit {
  if (query.rows !== gallery.rows) throw new RangeError(`prepareCca: ${query.rows} queries for ${gallery.rows} gallery rows`);
  if (query.rows < 2) throw new RangeError(`prepareCca: ${query.rows} pair(s); a covariance needs at least 2`);
  const side = (x: Matrix) => {
    const standardizer = fitStandardizer(x);
    return { basis: principalBasis(toMl(standardize(x, standardizer))), standardizer, cols: x.cols };
  };
  const q = side(query);
  const g = side(gallery);
  const cross = q.basis.scores.transpose().mmul(g.basis.scores).div(query.rows);
  return { query: q, gallery: g, cross };
}

/**
 * Two linear maps into a shared space by regularised canonical correlation analysis (closed
 * form, no training loop): whiten each side with its shrunk covariance, take the top `dim`
 * singular pairs of the whitened cross-covariance, and scale each canonical direction by its
 * strength, so that rankings by cosine lean on the pairs the fit side actually shares. It
 * replaces an InfoNCE-trained pair of projections, whose loss on normalised rows is blind to the
 * maps' scale: its L2 penalty pulled the weights to zero and the fit often ended at chance
 * (loss ln 128) on its own training pairs (README, "What is measured").
 */
export function ccaProjection(fit: CcaFit, o: { dim: number; shrinkage: number }): TrainedProjection {
  const r = o.shrinkage;
  if (!(r > 0 && r <= 1)) throw new RangeError(`ccaProjection: shrinkage ${r} outside (0, 1]`);
  const whiten = (b: PrincipalBasis) => Array.from(b.variance, (v) => 1 / Math.sqrt((1 - r) * v + r));
  const wq = whiten(fit.query.basis);
  const wg = whiten(fit.gallery.basis);
  const core = mulColumns(mulRows(fit.cross.clone(), wq), wg);
  const k = Math.min(o.dim, core.rows, core.columns);
  const strengths: number[] = [];
  let mapQ: MlMatrix;
  let mapG: MlMatrix;
  if (k === 0) {
    mapQ = MlMatrix.zeros(fit.query.cols, 1);
    mapG = MlMatrix.zeros(fit.gallery.cols, 1);
  } else {
    const svd = new SingularValueDecomposition(core, { autoTranspose: true });
    const cols = [...Array(k).keys()];
    const sigma = svd.diagonal.slice(0, k);
    strengths.push(...sigma);
    const map = (b: PrincipalBasis, w: number[], u: MlMatrix) =>
      mulColumns(mulColumns(b.loadings.clone(), w).mmul(u.subMatrixColumn(cols)), sigma);
    mapQ = map(fit.query.basis, wq, svd.leftSingularVectors);
    mapG = map(fit.gallery.basis, wg, svd.rightSingularVectors);
  }
  const project = (s: Standardizer, m: MlMatrix) => (x: Matrix): Matrix => {
    if (x.cols !== m.rows) throw new RangeError(`ccaProjection: rows of width ${x.cols}, fitted on ${m.rows}`);
    const out = toMl(standardize(x, s)).mmul(m);
    const data = new Float32Array(x.rows * out.columns);
    for (let i = 0; i < x.rows; i++) {
      const row = out.getRow(i);
      const norm = Math.hypot(...row) + 1e-12;
      for (let j = 0; j < row.length; j++) data[i * out.columns + j] = row[j]! / norm;
    }
    return { data, rows: x.rows, cols: out.columns };
  };
  return { projectQuery: project(fit.query.standardizer, mapQ), projectGallery: project(fit.gallery.standardizer, mapG), strengths };
}

/** The chosen rows of `m`, in the order given. */
export function matrixRows(m: Matrix, rows: readonly number[]): Matrix {
  const data = new Float32Array(rows.length * m.cols);
  rows.forEach((r, k) => data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), k * m.cols));
  return { data, rows: rows.length, cols: m.cols };
}

/** Dot products of every row of `q` with every row of `g`: `[q.rows * g.rows]`, row-major. */
export function similarity(q: Matrix, g: Matrix): Float32Array {
  if (q.rows === 0 || g.rows === 0) return new Float32Array(0);
  return tf.tidy(() => tf.matMul(asTensor(q), tf.transpose(asTensor(g))).dataSync() as Float32Array);
}

export interface ConditionalProbeOptions extends ProbeBudget {
  hidden: number;
}

export interface TrainedConditionalProbe {
  /** Scores of every output class for each (row, condition), row-major `[rows, numOut]`. */
  scores(x: Matrix, cond: Int32Array): Float32Array;
  finalLoss: number;
  dispose(): void;
}

/**
 * A one-hidden-layer classifier of an output class given a feature row and a condition id:
 * `h = tanh(x W1 + E[cond] + b1)`, `logits = h W2 + b2` (knowledge completion: the value of a
 * property given the item's representation and the property).
 */
export function trainConditionalProbe(
  x: Matrix,
  cond: Int32Array,
  numCond: number,
  targets: Int32Array,
  numOut: number,
  opts: ConditionalProbeOptions,
): TrainedConditionalProbe {
  const rng = Rng.from(opts.seed, 'conditional-probe');
  const w1 = glorot(rng, x.cols, opts.hidden);
  const e = glorot(rng, numCond, opts.hidden);
  const b1 = zeros(opts.hidden);
  const w2 = glorot(rng, opts.hidden, numOut);
  const b2 = zeros(numOut);
  // A one-hot product instead of tf.gather: gather's gradient kernel (UnsortedSegmentSum) is
  // missing on wasm (platform-notes.md).
  const logits = (xt: tf.Tensor2D, ct: tf.Tensor2D) =>
    tf.add(tf.matMul(tf.tanh(tf.add(tf.add(tf.matMul(xt, w1), tf.matMul(ct, e)), b1)), w2), b2) as tf.Tensor2D;
  const condTensor = (c: Int32Array) => oneHotRows(c, numCond);
  const xt = asTensor(x);
  const ct = condTensor(cond);
  const yt = oneHotRows(targets, numOut);
  const finalLoss =
    x.rows === 0
      ? NaN
      : fit(opts, x.rows, [w1, e, b1, w2, b2], [w1, e, w2], (rows) =>
          tf.losses.softmaxCrossEntropy(pick(yt, rows), logits(pick(xt, rows), pick(ct, rows))) as tf.Scalar,
        );
  xt.dispose();
  ct.dispose();
  yt.dispose();
  return {
    scores: (m, c) => (m.rows === 0 ? new Float32Array(0) : tf.tidy(() => logits(asTensor(m), condTensor(c)).dataSync() as Float32Array)),
    finalLoss,
    dispose: () => disposeAll([w1, e, b1, w2, b2]),
  };
}

function argmaxRows(s: Float32Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (s[r * cols + c]! > s[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}
