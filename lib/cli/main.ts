/**
 * The command line: argv → subcommand → exit code. One top-level catch turns user
 * mistakes into one clear message and exit code; only bugs print a stack.
 * @module
 */
import { ConfigError, FirewallError, StateFileError, UsageError } from "../errors.ts";
import { HELP, VERSION } from "./help.ts";

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  keygen: async () => (await import("./keygen.ts")).keygen,
  code: async () => (await import("./code.ts")).code,
  check: async () => (await import("./check.ts")).check,
  listen: async () => (await import("./listen.ts")).listen,
  knock: async () => (await import("./knock.ts")).knock,
  page: async () => (await import("./page.ts")).page,
  demo: async () => (await import("./demo.ts")).demo,
  init: async () => (await import("./init.ts")).init,
  "nft-ruleset": async () => (await import("./nft_ruleset.ts")).nftRulesetCommand,
  status: async () => (await import("./status.ts")).status,
  revoke: async () => (await import("./revoke.ts")).revoke,
  reload: async () => (await import("./reload.ts")).reload,
  unban: async () => (await import("./unban.ts")).unban,
  completions: async () => (await import("./completions.ts")).completions,
  version: () => Promise.resolve(version),
};

/** `sesame version [--json]`: sesame's version and the runtime's. */
function version(args: string[]): Promise<number> {
  const unknown = args.find((a) => a !== "--json");
  if (unknown !== undefined) {
    throw new UsageError(`version: unknown option ${JSON.stringify(unknown)}`);
  }
  const { deno, v8, typescript } = Deno.version;
  if (args.includes("--json")) {
    console.log(JSON.stringify({ sesame: VERSION, deno, v8, typescript }));
  } else console.log(`sesame ${VERSION}\ndeno ${deno}\nv8 ${v8}\ntypescript ${typescript}`);
  return Promise.resolve(EXIT.ok);
}

/**
 * Exit codes: 0 success, 1 failure (bad config, door not opened, nothing to revoke),
 * 2 usage error, 3 no daemon answers (revoke), 70 internal error.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, noDaemon: 3, internal: 70 } as const;

/**
 * Runs the command line; returns the exit code.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(await main(["--version"]), 0);
 * assertEquals(await main(["frobnicate"]), 2); // an unknown command is a usage error
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    const topic = name === "help" ? rest[0] ?? "" : "";
    console.log(HELP[topic] ?? HELP[""]);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === "-V" || name === "--version") {
    console.log(`sesame ${VERSION}`);
    return EXIT.ok;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(
      `sesame: unknown command ${JSON.stringify(name)}; commands: ${
        Object.keys(COMMANDS).join(", ")
      }`,
    );
    console.error(`Run "sesame --help" for usage.`);
    return EXIT.usage;
  }
  if (rest.includes("-h") || rest.includes("--help")) {
    console.log(HELP[name]);
    return EXIT.ok;
  }
  try {
    return await (await load())(rest);
  } catch (e) {
    if (e instanceof ConfigError || e instanceof FirewallError || e instanceof StateFileError) {
      console.error(e.message);
      return EXIT.failure;
    }
    if (e instanceof UsageError) {
      console.error(`sesame ${e.message}`);
      return EXIT.usage;
    }
    console.error(`sesame ${name}: internal error (please report):`, e);
    return EXIT.internal;
  }
}
