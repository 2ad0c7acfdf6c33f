/**
 * What a reload changes that the admin must hear about, and that the daemon acts on:
 * secrets rotated, users added, users removed (whose open doors then close).
 * @module
 */
import { type Config, userDoors } from "../config/types.ts";
import { logger } from "../log.ts";

const log = logger("daemon");

/**
 * Says what a reload changed that the admin must know: secrets rotated, users added, and
 * settings that take effect only at the next start.
 */
export function logConfigChanges(running: Config, config: Config): void {
  const before = userDoors(running.doors);
  for (const door of userDoors(config.doors)) {
    if (door.kind !== "rotating") continue;
    const old = before.find((d) =>
      d.name === door.name && d.kind === "rotating" && d.user === door.user
    );
    if (old?.kind === "rotating" && old.fingerprint !== door.fingerprint) {
      log.info(
        "door {door}: {whose} secret changed (fingerprint {from} → {to}): the new secret's codes open from now on, the old one's do not",
        {
          door: door.name,
          whose: door.user === undefined ? "its" : `user ${door.user}'s`,
          from: old.fingerprint,
          to: door.fingerprint,
        },
      );
    }
  }
  for (const { door, user } of removedUsers(config, running)) {
    log.info("door {door}: user {user} added: their codes open from now on", { door, user });
  }
  if (JSON.stringify(config.metrics) !== JSON.stringify(running.metrics)) {
    log.warning("listen.metrics changed: the new address takes effect at the next start");
  }
  if (config.metricsFile !== running.metricsFile) {
    log.warning("listen.metrics_file changed: it takes effect at the next start");
  }
  if (config.closedReply !== running.closedReply) {
    log.info("listen.closed_reply changed: in force with the rules just applied");
  }
}

/**
 * The (door, user) pairs of `before` that `after` no longer has (the door itself stays).
 *
 * @example
 * ```ts
 * import { removedUsers } from "./config_diff.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const secrets: Record<string, string> = {
 *   alice: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
 *   bob: "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
 * };
 * const team = (users: string[]) =>
 *   validateConfig({
 *     doors: {
 *       ssh: { ports: "20000-20099", users: Object.fromEntries(users.map((u) => [u, { secret: secrets[u] }])) },
 *     },
 *   });
 * assertEquals(removedUsers(team(["alice", "bob"]), team(["bob"])), [{ door: "ssh", user: "alice" }]);
 * ```
 */
export function removedUsers(before: Config, after: Config): { door: string; user: string }[] {
  return before.doors.flatMap((door) => {
    const now = after.doors.find((d) => d.name === door.name);
    if (door.kind !== "rotating" || !door.users || !now) return [];
    const kept = new Set(now.kind === "rotating" ? now.users?.map((u) => u.name) : []);
    return door.users.filter((u) => !kept.has(u.name)).map((u) => ({
      door: door.name,
      user: u.name,
    }));
  });
}
