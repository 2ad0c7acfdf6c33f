/**
 * `sesame revoke`: closes a door now, through the running daemon's control socket:
 * firewall element removed, close command run, state updated. Exit codes: 0 closed (or,
 * with --established, connections dropped), 1 nothing was open (or the close failed),
 * 2 usage error (a door, user or address the config cannot hold), 3 no daemon with this
 * config runs here.
 * @module
 */
import type { Config } from "../config/types.ts";
import { askDaemon } from "../daemon/control.ts";
import { reachDaemon } from "./daemon_client.ts";
import { parseAddress } from "../address.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import { loadPrivateConfig } from "./common.ts";
import { EXIT } from "./main.ts";

/** The flags of `sesame revoke`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  door: { type: "string" },
  ip: { type: "string" },
  user: { type: "string" },
  established: { type: "boolean" },
  "insecure-permissions": { type: "boolean" },
} satisfies FlagSpec;

/** Runs `sesame revoke`; returns the exit code. */
export async function revoke(args: string[]): Promise<number> {
  const parsed = parseFlags("revoke", args, FLAGS);
  const file = stringFlag(parsed, "config", "revoke", true);
  const door = stringFlag(parsed, "door", "revoke", true);
  const ip = stringFlag(parsed, "ip", "revoke");
  const user = stringFlag(parsed, "user", "revoke");
  if ((ip === undefined) === (user === undefined)) {
    throw new UsageError("revoke: give --ip ADDRESS or --user NAME (one of them)");
  }
  if (ip !== undefined && !parseAddress(ip)) {
    throw new UsageError(`revoke: --ip must be one IP address, received ${JSON.stringify(ip)}`);
  }
  // The config names the door and its users: a request it cannot hold is a usage error.
  // A config edited into a broken one while the daemon runs on the last good one must not
  // keep the admin from closing a door: the running daemon checks the request then.
  let config: Config | undefined;
  try {
    config = await loadPrivateConfig(
      file,
      "refuse",
      parsed.values["insecure-permissions"] === true,
    );
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(
      `${e.message}\nsesame revoke: ${file} does not load; asking the running daemon, which runs the last config it accepted`,
    );
  }
  const named = config?.doors.find((d) => d.name === door);
  if (config && !named) {
    throw new UsageError(
      `revoke: no door ${JSON.stringify(door)} in ${file}; doors: ${
        config.doors.map((d) => d.name).join(", ")
      }`,
    );
  }
  if (
    named && user !== undefined &&
    !(named.kind === "rotating" && named.users?.some((u) => u.name === user))
  ) {
    throw new UsageError(`revoke: door ${door} has no user ${JSON.stringify(user)}`);
  }
  const path = await reachDaemon("revoke", file);
  if (typeof path === "number") return path; // doors a firewall opened close at their time
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
  if (typeof answer.fleet_revoked === "number") {
    console.log(
      `revoked ${answer.fleet_revoked} shared grant(s) in the fleet: every node that reads it closes them`,
    );
  } else if (closed.length === 0) console.log(`nothing was open on door ${door} for ${ip}`);
  if (typeof answer.fleet_error === "string") {
    console.error(
      `sesame revoke: closed here, but ${answer.fleet_error}: other nodes keep the door until its time`,
    );
    return EXIT.failure;
  }
  return EXIT.ok;
}
