/**
 * @file Progress bars for long work (cli-progress), silent with `--quiet` or when stderr is not
 * a TTY, so CI logs stay clean.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  increment(n?: number): void;
  setTotal(total: number): void;
  stop(): void;
}

const SILENT: Progress = { increment() {}, setTotal() {}, stop() {} };

/** A bar on stderr labelled `label`, or a no-op when quiet or not on a terminal. */
export function createProgress(label: string, total: number, opts: { quiet?: boolean } = {}): Progress {
  if (opts.quiet || !process.stderr.isTTY) return SILENT;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} |{bar}| {value}/{total} {percentage}% {eta_formatted} left`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 200,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    increment: (n = 1) => bar.increment(n),
    setTotal: (t) => bar.setTotal(t),
    stop: () => bar.stop(),
  };
}
