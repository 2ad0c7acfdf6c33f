/** `sesame reload`: the running daemon reads its config again; say what changed. @module */
import { askDaemon } from "../daemon/control.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import { reachDaemon } from "./daemon_client.ts";
import { EXIT } from "./main.ts";

/** The flags of `sesame reload`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  json: { type: "boolean" },
} satisfies FlagSpec;

/** Runs `sesame reload`; returns the exit code. */
export async function reload(args: string[]): Promise<number> {
  const parsed = parseFlags("reload", args, FLAGS);
  const file = stringFlag(parsed, "config", "reload", true);
  const path = await reachDaemon("reload", file);
  if (typeof path === "number") return path;
  // A reload applies the firewall and binds ports: give it longer than a status.
  const answer = await askDaemon(path, { op: "reload" }, 120_000);
  if (!answer) {
    console.error(`sesame reload: the daemon at ${path} stopped answering`);
    return EXIT.noDaemon;
  }
  if (parsed.values.json) console.log(JSON.stringify(answer));
  if (!answer.ok) {
    console.error(
      answer.applied
        ? `sesame reload: the new config is in force, but ${answer.error}: no knock is heard until its ports are free (the daemon keeps trying)`
        : `sesame reload: refused, the running config stays:\n${answer.error}`,
    );
    return EXIT.failure;
  }
  if (!parsed.values.json) {
    const changes = answer.changes as string[];
    console.log(changes.length === 0 ? "reloaded: nothing changed" : "reloaded:");
    for (const change of changes) console.log(`  ${change}`);
  }
  return EXIT.ok;
}
