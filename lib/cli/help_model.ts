/**
 * The help texts read as data: commands, their one-line summaries and their options.
 * The man page and the shell completions are generated from this, so they say what
 * `--help` says and cannot drift from it.
 * @module
 */
import { HELP } from "./help.ts";

/** One option of a command, as its help lists it. */
export interface HelpOption {
  /** Its spellings, e.g. `["-c", "--config"]`. */
  readonly flags: string[];
  /** The placeholder of its value (`FILE`), or undefined for a switch. */
  readonly value?: string;
  /** Its explanation, joined into one line. */
  readonly text: string;
}

/** One command as its help describes it. */
export interface HelpCommand {
  /** Its name, e.g. `knock`. */
  readonly name: string;
  /** The one-line summary from the top-level help. */
  readonly summary: string;
  /** Its whole help text. */
  readonly text: string;
  /** Its options. */
  readonly options: HelpOption[];
}

/**
 * The commands of the top-level help, in its order, each with its options.
 *
 * @example
 * ```ts
 * import { helpCommands } from "./help_model.ts";
 * import { ok as assert } from "node:assert/strict";
 * const knock = helpCommands().find((c) => c.name === "knock")!;
 * assert(knock.options.some((o) => o.flags.includes("--door") && o.value === "NAME"));
 * ```
 */
export function helpCommands(): HelpCommand[] {
  const top = HELP[""];
  const block = top.slice(top.indexOf("Commands:\n") + 10, top.indexOf("\n\nOptions:"));
  const commands: HelpCommand[] = [];
  for (const line of block.split("\n")) {
    const m = line.match(/^ {2}(\S+)\s+(.*)$/);
    if (m) {
      const text = HELP[m[1]] ?? "";
      commands.push({ name: m[1], summary: m[2], text, options: helpOptions(text) });
    }
  }
  return commands;
}

/** The options listed in the "Options:" block of a help text. */
export function helpOptions(text: string): HelpOption[] {
  const start = text.indexOf("\nOptions:\n");
  if (start < 0) return [];
  const options: HelpOption[] = [];
  for (const line of text.slice(start + 10).split("\n")) {
    if (line.trim() === "" && options.length > 0) break;
    // "  -c, --config FILE   text", "  -4, -6   text", "  --exec -- CMD ARGS...  text"
    const m = line.match(/^ {2}(-[^\s,]+(?:, -[^\s,]+)*)(?: (\S.*?))?(?: {2,}(.*))?$/);
    if (m) {
      const flags = m[1].split(", ").map((f) => f.trim()).filter((f) => f !== "");
      options.push({ flags, ...(m[2] ? { value: m[2] } : {}), text: m[3] ?? "" });
    } else if (options.length > 0 && /^\s{4,}\S/.test(line)) {
      const last = options[options.length - 1];
      options[options.length - 1] = { ...last, text: `${last.text} ${line.trim()}`.trim() };
    }
  }
  return options;
}
