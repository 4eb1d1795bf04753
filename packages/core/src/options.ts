/**
 * @file A stage's options spelled once: each entry names its flag, its help text and its zod
 * schema (with its default). The same table builds the commander options and the zod object
 * that validates flags and `--config` files alike, and its output type is the config the
 * library function takes, so CLI and library cannot drift apart.
 */
import { Option, type Command } from 'commander';
import { z } from 'zod';

export interface OptionSpec<S extends z.ZodType = z.ZodType> {
  /** Commander flags, e.g. `--epochs <n>`; a flag without `<arg>` is a boolean switch. */
  flags: string;
  description: string;
  /** The value's schema, default included (`z.number().int().positive().default(2)`). */
  schema: S;
  /** Turns the flag's text into the value (`intArg('--epochs', 1)`); strings pass through. */
  parse?: (value: string, previous: unknown) => unknown;
  /** Allowed values, listed by `--help` and refused by commander otherwise. */
  choices?: readonly string[];
  /** Help text for the default when the value itself reads badly (arrays, objects). */
  defaultText?: string;
  /** Config-file only: no flag on the command line. */
  fileOnly?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The zod object of a table: one key per option. */
export type OptionsSchema<T extends OptionTable> = z.ZodObject<{ -readonly [K in keyof T]: T[K]['schema'] }>;

/** The validated config a table describes. */
export type OptionsOf<T extends OptionTable> = z.output<OptionsSchema<T>>;

/**
 * Checks a table's shape at definition time (a typo'd default fails here, not in a user's run).
 * @example
 * const OPTS = defineOptions({ epochs: { flags: '--epochs <n>', description: 'passes', schema: z.number().int().positive().default(2), parse: intArg('--epochs', 1) } });
 */
export function defineOptions<const T extends OptionTable>(table: T): T {
  for (const [key, spec] of Object.entries(table)) {
    const d = defaultOf(spec.schema);
    if (d !== undefined && !spec.schema.safeParse(d.value).success) throw new Error(`option ${key}: its default does not satisfy its schema`);
  }
  return table;
}

/** The zod object validating a table's options (flags and config files alike). */
export function optionsSchema<T extends OptionTable>(table: T): OptionsSchema<T> {
  return z.object(Object.fromEntries(Object.entries(table).map(([k, s]) => [k, s.schema]))) as unknown as OptionsSchema<T>;
}

/** Adds a table's flags to a commander command, defaults shown in `--help`. */
export function addOptions(cmd: Command, table: OptionTable): Command {
  for (const spec of Object.values(table)) {
    if (spec.fileOnly) continue;
    const opt = new Option(spec.flags, spec.description);
    if (spec.parse) opt.argParser(spec.parse);
    if (spec.choices) opt.choices(spec.choices);
    const d = defaultOf(spec.schema);
    if (d !== undefined) opt.default(d.value, spec.defaultText);
    cmd.addOption(opt);
  }
  return cmd;
}

function defaultOf(schema: z.ZodType): { value: unknown } | undefined {
  return schema instanceof z.ZodDefault ? { value: (schema.def as { defaultValue: unknown }).defaultValue } : undefined;
}
