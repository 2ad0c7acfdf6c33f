/** `sesame code`: a door's sequence at a time. @module */
import { codeAt } from "../code.ts";
import { formatDuration } from "../duration.ts";
import { UsageError } from "../errors.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import { addressFlag, defaultClientConfig, findDoor, iso, loadPrivateConfig } from "./common.ts";
import { parseTime } from "./time.ts";

/** The flags of `sesame code`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  door: { type: "string" },
  at: { type: "string" },
  from: { type: "string" },
  user: { type: "string" },
  json: { type: "boolean" },
} satisfies FlagSpec;

/** Runs `sesame code`; returns the exit code. */
export async function code(args: string[]): Promise<number> {
  const parsed = parseFlags("code", args, FLAGS);
  const file = stringFlag(parsed, "config", "code") ??
    defaultClientConfig((name) => Deno.env.get(name)) ??
    stringFlag(parsed, "config", "code", true); // none: the usage error
  const config = await loadPrivateConfig(file, "warn", false);
  const door = findDoor(
    config,
    stringFlag(parsed, "door", "code"),
    "code",
    stringFlag(parsed, "user", "code"),
  );
  if (door.kind === "spa") {
    throw new UsageError(
      `code: door ${door.name} is a single-packet (SPA) door: it has no sequence; sesame knock sends its packet`,
    );
  }
  const at = parsed.values.at === undefined
    ? Date.now()
    : parseTime(stringFlag(parsed, "at", "code", true));
  const from = addressFlag(stringFlag(parsed, "from", "code"), "--from");
  if (door.kind === "rotating" && door.bindSource && !from) {
    throw new UsageError(
      `code: door ${door.name} has bind_source: true; give the knocking address with --from`,
    );
  }
  const result = await codeAt(door, at, from);
  if (parsed.values.json) {
    console.log(JSON.stringify({
      door: result.door,
      counter: result.counter,
      valid_from: iso(result.validFrom),
      valid_until: iso(result.validUntil),
      knocks: result.knocks.map((k) => ({ port: k.port, protocol: k.protocol })),
    }));
    return 0;
  }
  const knocks = result.knocks.map((k) => `${k.port}/${k.protocol}`).join(" ");
  if (result.counter === null) {
    console.log(`door ${result.door} (static): ${knocks}`);
  } else {
    const left = result.validUntil! - at;
    console.log(`door ${result.door}, counter ${result.counter}: ${knocks}`);
    console.log(
      `valid ${iso(result.validFrom)} to ${iso(result.validUntil)}${
        left > 0 ? ` (rotates in ${formatDuration(left)})` : ""
      }`,
    );
  }
  return 0;
}
