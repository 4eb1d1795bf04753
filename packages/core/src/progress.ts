/**
 * @file Progress bars for long work (cli-progress), silent with `--quiet` or when stderr is not
 * a TTY, so CI logs stay clean.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  increment(n?: number): void;
  /** Moves to `value`, with new values for the bar's `fields`. */
  update(value: number, fields?: Record<string, string>): void;
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  quiet?: boolean;
  /** Where the bar starts (a resumed run). */
  start?: number;
  /** Unit after the counts, e.g. `steps`. */
  unit?: string;
  /** Extra text after the bar with `{name}` placeholders, filled by `update`, e.g. `loss {loss}`. */
  suffix?: string;
  /** Initial values of the placeholders. */
  fields?: Record<string, string>;
}

const SILENT: Progress = { increment() {}, update() {}, setTotal() {}, stop() {} };

/** A bar on stderr labelled `label`, or a no-op when quiet or not on a terminal. */
export function createProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  if (opts.quiet || !process.stderr.isTTY) return SILENT;
  const unit = opts.unit ? ` ${opts.unit}` : '';
  const suffix = opts.suffix ? ` | ${opts.suffix}` : '';
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} |{bar}| {value}/{total}${unit} {percentage}% {eta_formatted} left${suffix}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 200,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, opts.start ?? 0, opts.fields ?? {});
  return {
    increment: (n = 1) => bar.increment(n),
    update: (v, fields) => bar.update(v, fields ?? {}),
    setTotal: (t) => bar.setTotal(t),
    stop: () => bar.stop(),
  };
}
