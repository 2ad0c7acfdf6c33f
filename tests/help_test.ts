/**
 * The help texts are the one source of the man page and the completions: every flag a
 * command parses is in its help, and every flag its help lists is parsed.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { helpCommands } from "../lib/cli/help_model.ts";
import type { FlagSpec } from "../lib/cli/args.ts";

const MODULES: Record<string, string> = {
  check: "check",
  code: "code",
  demo: "demo",
  init: "init",
  keygen: "keygen",
  knock: "knock",
  listen: "listen",
  "nft-ruleset": "nft_ruleset",
  reload: "reload",
  revoke: "revoke",
  status: "status",
  unban: "unban",
  completions: "completions",
  page: "page",
};

/** The spellings a parseArgs spec accepts: --long, and -s for shorts (keys "4" are -4). */
function spellings(spec: FlagSpec): string[] {
  const out: string[] = [];
  for (const [name, option] of Object.entries(spec)) {
    if (name.length > 1) out.push(`--${name}`);
    if (option.short) out.push(`-${option.short}`);
  }
  return out.sort();
}

Deno.test("every command's --help lists exactly the flags it parses", async () => {
  const commands = helpCommands();
  for (const command of commands) {
    const listed = command.options.flatMap((o) => o.flags).sort();
    const module = MODULES[command.name];
    if (module === undefined) {
      assertEquals(command.name, "version", `${command.name} has no FLAGS module listed here`);
      assertEquals(listed, ["--json"]);
      continue;
    }
    const { FLAGS } = await import(`../lib/cli/${module}.ts`) as { FLAGS: FlagSpec };
    assertEquals(listed, spellings(FLAGS), `sesame ${command.name}`);
  }
  assert(commands.length >= 11);
});
