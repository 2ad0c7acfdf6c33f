/**
 * Flag parsing for every subcommand: node:util's parseArgs in strict mode, with its
 * errors turned into {@link UsageError}s that name the command's help.
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

/** Options of one command, in parseArgs' form. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** Parsed flags and positionals. */
export interface ParsedArgs {
  /** Flag values by long name. */
  readonly values: Record<string, string | boolean | string[] | undefined>;
  /** Arguments that are not flags. */
  readonly positionals: string[];
}

/**
 * Parses `args` for `command`; unknown flags and missing values become UsageErrors.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { values } = parseFlags("code", ["--door", "ssh"], { door: { type: "string" } });
 * assertEquals(values.door, "ssh");
 * ```
 */
export function parseFlags(
  command: string,
  args: string[],
  options: FlagSpec,
  positionals = false,
): ParsedArgs {
  try {
    const parsed = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: positionals,
      allowNegative: false,
    });
    return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new UsageError(`${command}: ${message}\nRun "sesame ${command} --help" for usage.`);
  }
}

/** The string value of a flag, or throws a UsageError when it is required and absent. */
export function stringFlag(
  parsed: ParsedArgs,
  name: string,
  command: string,
  required: true,
): string;
export function stringFlag(
  parsed: ParsedArgs,
  name: string,
  command: string,
  required?: false,
): string | undefined;
export function stringFlag(
  parsed: ParsedArgs,
  name: string,
  command: string,
  required = false,
): string | undefined {
  const value = parsed.values[name];
  if (typeof value === "string") return value;
  if (required) {
    throw new UsageError(
      `${command}: --${name} is required\nRun "sesame ${command} --help" for usage.`,
    );
  }
  return undefined;
}
