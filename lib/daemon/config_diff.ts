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
  if (config.stateFile !== running.stateFile) {
    log.warning(
      "state_file changed: the daemon keeps the state it opened ({running}) until the next start",
      { running: running.stateFile ?? "memory" },
    );
  }
  if (JSON.stringify(config.log) !== JSON.stringify(running.log)) {
    log.warning("listen.log changed: it takes effect at the next start");
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

/**
 * What a reload changes, one line each, for `sesame reload` to print: doors added,
 * removed or changed, secrets rotated, users added and removed. Never a secret.
 *
 * @example
 * ```ts
 * import { describeChanges } from "./config_diff.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const door = { ports: "20000-20099", secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" };
 * const before = validateConfig({ doors: { ssh: door } });
 * const after = validateConfig({
 *   doors: { ssh: { ...door, length: 5 }, web: { ...door, ports: "21000-21099" } },
 * });
 * assertEquals(describeChanges(before, after), ["door web added", "door ssh changed"]);
 * assertEquals(describeChanges(before, before), []);
 * ```
 */
export function describeChanges(running: Config, config: Config): string[] {
  const changes: string[] = [];
  const old = new Map(running.doors.map((d) => [d.name, d]));
  const now = new Map(config.doors.map((d) => [d.name, d]));
  for (const name of now.keys()) if (!old.has(name)) changes.push(`door ${name} added`);
  for (const name of old.keys()) if (!now.has(name)) changes.push(`door ${name} removed`);
  const before = userDoors(running.doors);
  const rotated = new Set<string>();
  for (const door of userDoors(config.doors)) {
    if (door.kind !== "rotating") continue;
    const was = before.find((d) =>
      d.name === door.name && d.kind === "rotating" && d.user === door.user
    );
    if (was?.kind === "rotating" && was.fingerprint !== door.fingerprint) {
      rotated.add(door.name);
      changes.push(
        `door ${door.name}: ${
          door.user === undefined ? "its" : `user ${door.user}'s`
        } secret changed`,
      );
    }
  }
  for (const { door, user } of removedUsers(config, running)) {
    if (old.has(door)) changes.push(`door ${door}: user ${user} added`);
  }
  for (const { door, user } of removedUsers(running, config)) {
    changes.push(`door ${door}: user ${user} removed (their open doors closed)`);
  }
  for (const [name, door] of now) {
    const was = old.get(name);
    if (was && !rotated.has(name) && !changes.some((c) => c.startsWith(`door ${name}: user`))) {
      if (JSON.stringify(was) !== JSON.stringify(door)) changes.push(`door ${name} changed`);
    }
  }
  const { doors: _a, ...restBefore } = running;
  const { doors: _b, ...restAfter } = config;
  if (JSON.stringify(restBefore) !== JSON.stringify(restAfter)) {
    changes.push("listen settings changed");
  }
  return changes;
}
