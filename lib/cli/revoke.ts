/**
 * `sesame revoke`: closes a door now, through the running daemon's control socket:
 * firewall element removed, close command run, state updated. Exit codes: 0 closed,
 * 1 nothing was open (or the close failed), 3 no daemon with this config runs here.
 * @module
 */
import { askDaemon, controlPath } from "../daemon/control.ts";
import { UsageError } from "../errors.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { loadPrivateConfig } from "./common.ts";
import { EXIT } from "./main.ts";

/** Runs `sesame revoke`; returns the exit code. */
export async function revoke(args: string[]): Promise<number> {
  const parsed = parseFlags("revoke", args, {
    config: { type: "string", short: "c" },
    door: { type: "string" },
    ip: { type: "string" },
    user: { type: "string" },
    established: { type: "boolean" },
    "insecure-permissions": { type: "boolean" },
  });
  const file = stringFlag(parsed, "config", "revoke", true);
  const door = stringFlag(parsed, "door", "revoke", true);
  const ip = stringFlag(parsed, "ip", "revoke");
  const user = stringFlag(parsed, "user", "revoke");
  if ((ip === undefined) === (user === undefined)) {
    throw new UsageError("revoke: give --ip ADDRESS or --user NAME (one of them)");
  }
  // The config names the door; reading it also checks the admin may read it.
  await loadPrivateConfig(file, "refuse", parsed.values["insecure-permissions"] === true);
  const path = await controlPath();
  const status = await askDaemon(path, { op: "status" });
  if (!status?.ok) {
    console.error(
      `sesame revoke: no sesame listen answers at ${path} in this network namespace: nothing to revoke (doors opened by a firewall close by themselves at their time)`,
    );
    return EXIT.noDaemon;
  }
  const mine = await Deno.realPath(file);
  if (status.config !== null && status.config !== mine) {
    console.error(
      `sesame revoke: the daemon here runs with ${status.config}, not ${mine}: give its config`,
    );
    return EXIT.noDaemon;
  }
  const answer = await askDaemon(path, {
    op: "revoke",
    door,
    ...(ip === undefined ? {} : { ip }),
    ...(user === undefined ? {} : { user }),
    established: parsed.values.established === true,
  });
  if (!answer) {
    console.error(`sesame revoke: the daemon at ${path} stopped answering`);
    return EXIT.noDaemon;
  }
  if (!answer.ok) {
    console.error(`sesame revoke: ${answer.error}`);
    return EXIT.failure;
  }
  const closed = answer.closed as { source: string; user: string | null }[];
  for (const c of closed) {
    console.log(`closed door ${door} for ${c.source}${c.user ? ` (user ${c.user})` : ""}`);
  }
  if (typeof answer.established_dropped === "number") {
    console.log(`dropped ${answer.established_dropped} established connections`);
  }
  return EXIT.ok;
}
