/** `sesame unban`: lift a scanner ban in the running daemon. @module */
import { parseAddress } from "../address.ts";
import { askDaemon } from "../daemon/control.ts";
import { UsageError } from "../errors.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import { reachDaemon } from "./daemon_client.ts";
import { EXIT } from "./main.ts";

/** The flags of `sesame unban`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  ip: { type: "string" },
} satisfies FlagSpec;

/** Runs `sesame unban`; returns the exit code. */
export async function unban(args: string[]): Promise<number> {
  const parsed = parseFlags("unban", args, FLAGS);
  const file = stringFlag(parsed, "config", "unban", true);
  const ip = stringFlag(parsed, "ip", "unban", true);
  const address = parseAddress(ip);
  if (!address) {
    throw new UsageError(`unban: --ip must be one IP address, received ${JSON.stringify(ip)}`);
  }
  const path = await reachDaemon("unban", file);
  if (typeof path === "number") return path;
  const answer = await askDaemon(path, { op: "unban", ip: address.text });
  if (!answer) {
    console.error(`sesame unban: the daemon at ${path} stopped answering`);
    return EXIT.noDaemon;
  }
  if (!answer.ok) {
    console.error(`sesame unban: ${answer.error}`);
    return EXIT.failure;
  }
  console.log(`unbanned ${address.text}`);
  return EXIT.ok;
}
