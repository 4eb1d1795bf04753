/**
 * @file `runs/<name>/metrics.jsonl`: one JSON line per optimizer step and per validation pass.
 * On resume it keeps exactly the lines written up to the checkpoint, so the log of a resumed
 * run equals an uninterrupted run's.
 */
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { LossName } from '../model/k3m.ts';

export interface StepMetrics {
  type: 'step';
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  losses: Partial<Record<LossName, number>>;
  samples_per_s: number;
}

export interface ValidationMetrics {
  type: 'validation';
  /** −1 = before training */
  epoch: number;
  step: number;
  batches: number;
  losses: Partial<Record<LossName, number>>;
  accuracy: {
    title_mlm: number | null;
    knowledge_mlm: number | null;
    structure: number | null;
    /** MLM accuracy at the labelled positions whose input hides the answer (older logs lack it). */
    title_mlm_hidden?: number | null;
    knowledge_mlm_hidden?: number | null;
  };
}

export class MetricsLog {
  readonly steps: StepMetrics[] = [];
  readonly validation: ValidationMetrics[] = [];
  private written = 0;

  private constructor(readonly path: string) {}

  /** A fresh log (an old file is removed). */
  static async create(path: string): Promise<MetricsLog> {
    await rm(path, { force: true });
    return new MetricsLog(path);
  }

  /** The log of a resumed run: its first `lines` lines, the rest (written after the checkpoint) cut. */
  static async resume(path: string, lines: number): Promise<MetricsLog> {
    const log = new MetricsLog(path);
    const kept = existsSync(path) ? (await readFile(path, 'utf8')).split('\n').filter(Boolean).slice(0, lines) : [];
    await writeFile(path, kept.map((l) => l + '\n').join(''));
    for (const l of kept) log.remember(JSON.parse(l) as StepMetrics | ValidationMetrics);
    log.written = kept.length;
    return log;
  }

  /** Lines written so far (a checkpoint stores it). */
  get lines(): number {
    return this.written;
  }

  async append(m: StepMetrics | ValidationMetrics): Promise<void> {
    await appendFile(this.path, JSON.stringify(m) + '\n');
    this.written++;
    this.remember(m);
  }

  private remember(m: StepMetrics | ValidationMetrics): void {
    if (m.type === 'step') this.steps.push(m);
    else this.validation.push(m);
  }
}
