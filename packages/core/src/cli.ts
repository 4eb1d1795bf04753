/**
 * @file What every stage CLI shares: the common options (design.md section 3), the config file
 * merge (flags override the file, zod validates the result) and exit codes.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { EXIT, IoError, UsageError } from './errors.ts';
import { resolveShard, type Shard } from './shard.ts';

/** Default work directory: the embedded sample's, relative to where the command runs. */
export const DEFAULT_WORK_DIR = 'work';

/** Adds `--work-dir`, `--config`, `--shard`, `--num-shards`, `--quiet`, `--json` to a subcommand. */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--work-dir <dir>', 'work directory every stage reads and writes', DEFAULT_WORK_DIR)
    .option('--config <file>', 'JSON config file (validated); flags override it')
    .option('--shard <i/N>', 'process only the units with unit % N == i')
    .addOption(new Option('--num-shards <N>', 'N for JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)').argParser(intArg('--num-shards')))
    .option('--quiet', 'no progress bar and no table', false)
    .option('--json', 'print the final report as JSON on stdout', false);
}

/** Commander argParser for integers that names the option on error. */
export function intArg(option: string, min = 0) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v) || Number(v) < min) throw new UsageError(`${option} ${v}: expected an integer >= ${min}`);
    return Number(v);
  };
}

/** Commander argParser for floats in [lo, hi]. */
export function floatArg(option: string, lo = -Infinity, hi = Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) {
      throw new UsageError(`${option} ${v}: expected a number in [${lo}, ${hi}]`);
    }
    return n;
  };
}

/** The common options as flags and config files give them (before the shard is resolved). */
export const CommonFlagsSchema = z.object({
  workDir: z.string().min(1),
  config: z.string().optional(),
  shard: z.string().optional(),
  numShards: z.number().int().positive().optional(),
  quiet: z.boolean(),
  json: z.boolean(),
});

export interface CommonFlags {
  workDir: string;
  config?: string;
  shard?: string;
  numShards?: number;
  quiet: boolean;
  json: boolean;
}

/** The common options after resolution: the shard is decided here once. */
export interface CommonOptions {
  workDir: string;
  shard: Shard;
  quiet: boolean;
  json: boolean;
}

export function resolveCommon(flags: CommonFlags): CommonOptions {
  return {
    workDir: flags.workDir,
    shard: resolveShard(flags.shard, flags.numShards),
    quiet: flags.quiet || !process.stderr.isTTY ? flags.quiet : false,
    json: flags.json,
  };
}

/**
 * Merges a JSON config file under the flags the user set explicitly, then validates with
 * `schema`. Errors name the option (`--foo-bar` for flag `fooBar`) and the rule.
 */
export async function loadConfig<S extends z.ZodType>(
  schema: S,
  cmd: Command,
  configPath: string | undefined,
): Promise<z.output<S>> {
  let fromFile: Record<string, unknown> = {};
  if (configPath) {
    let text: string;
    try {
      text = await readFile(configPath, 'utf8');
    } catch (e) {
      throw new UsageError(`--config ${configPath}: cannot read (${(e as Error).message})`);
    }
    try {
      fromFile = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--config ${configPath}: not valid JSON (${(e as Error).message})`);
    }
  }
  const opts = cmd.opts() as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...fromFile };
  for (const [k, v] of Object.entries(opts)) {
    // Defaults must not override the config file; only values the user typed do.
    if (cmd.getOptionValueSource(k) !== 'default' || !(k in merged)) merged[k] = v;
  }
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const flag = key ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : 'config';
    const value = key in merged ? ` ${JSON.stringify(merged[key])}` : '';
    throw new UsageError(`${flag}${value}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * Runs a CLI program and maps failures to exit codes: usage errors 2 (one line), anything else
 * 1 with the cause. Commander's own parse errors also exit 2.
 */
export async function runCli(name: string, program: Command, argv = process.argv): Promise<void> {
  program.name(name).exitOverride().showHelpAfterError(`(run ${name} --help for usage)`);
  for (const sub of program.commands) sub.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
      process.exitCode = EXIT.ok;
      return;
    }
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      process.exitCode = EXIT.usage;
      return;
    }
    if (e instanceof UsageError || (e as Error)?.name === 'UsageError') {
      process.stderr.write(`${name}: ${(e as Error).message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    // Unrecoverable I/O carries its path and cause: one line is enough. Anything else is a bug,
    // and the stack is what a bug report needs.
    const text = e instanceof IoError || (e as Error)?.name === 'IoError' ? (e as Error).message : ((e as Error)?.stack ?? String(e));
    process.stderr.write(`${name}: ${text}\n`);
    process.exitCode = EXIT.failure;
  }
}

/** A zod enum from the keys of a frozen registry, so wrong values are answered with the valid ones. */
export function enumOf<T extends Record<string, unknown>>(registry: T) {
  return z.enum(Object.keys(registry) as [keyof T & string, ...(keyof T & string)[]]);
}
