/**
 * A reload applied: the new config checked (it can run, it changes nothing a reload cannot,
 * its pools can be bound), its firewall applied, then put in force: the intake takes it,
 * removed users' doors close, its ports are bound. Whatever fails before it is in force
 * leaves the running config, and its rules, as they were.
 * @module
 */
import type { Config } from "../config/types.ts";
import { ConfigError, FirewallError } from "../errors.ts";
import { logger } from "../log.ts";
import type { Binder, Bound } from "./binder.ts";
import { describeChanges, logConfigChanges, removedUsers } from "./config_diff.ts";
import type { FirewallGuard } from "./guard.ts";
import type { Intake } from "./intake.ts";
import type { Opener } from "./opener.ts";
import { assertRunnable, checkDescriptors, checkEphemeral, socketsNeeded } from "./preflight.ts";
import { AppliedButUnheard, assertReloadable } from "./reloads.ts";
import type { Reporter } from "./reporter.ts";

const log = logger("daemon");

/** The daemon's parts a reload works on. */
export interface ReloadParts {
  readonly guard: FirewallGuard;
  readonly intake: Intake;
  readonly opener: Opener;
  readonly binder: Binder;
  readonly reporter: Reporter;
}

/**
 * Applies `config` in place of `running`; `adopt` makes it the daemon's config, once it is
 * in force. Resolves with what changed ({@link describeChanges}).
 * @throws {ConfigError} the config cannot run, or cannot be reloaded into (nothing changed).
 * @throws {FirewallError} its rules could not be applied (nothing changed).
 * @throws {AppliedButUnheard} it is in force, but its ports could not be bound.
 */
export async function applyReload(
  parts: ReloadParts,
  running: Config,
  config: Config,
  adopt: (config: Config) => void,
): Promise<string[]> {
  try {
    assertRunnable(config);
    assertReloadable(running, config);
    // What binding the new pools would refuse is refused before anything changes.
    await checkDescriptors(socketsNeeded(config));
    await checkEphemeral(config.doors);
    await parts.guard.apply(config, running);
  } catch (e) {
    if (e instanceof ConfigError || e instanceof FirewallError) {
      parts.reporter.report({ kind: "reload-failed", error: e.message });
    } else {
      // A bug is not a refused config: say so, with its stack. The old rules still stand.
      log.error(
        "internal error during the reload (please report); the running config stays: {error}",
        { error: String((e as Error)?.stack ?? e) },
      );
    }
    throw e;
  }
  logConfigChanges(running, config);
  const changes = describeChanges(running, config);
  adopt(config);
  parts.intake.replace(config);
  // Users removed from a door lose their open doors, now that the new config is in force,
  // and before the new ports are bound: a bind that fails must not leave them open.
  for (const { door, user } of removedUsers(running, config)) {
    const { closed } = await parts.opener.revoke({ door, user });
    if (closed.length > 0) {
      log.info("door {door}: user {user} was removed: closed {count} open", {
        door,
        user,
        count: closed.length,
      });
    }
  }
  let bound: Bound;
  try {
    bound = await parts.binder.bind(config, true);
  } catch (e) {
    // The new config is in force (its rules, its doors) but hears no knock: say so loudly.
    const error = e instanceof ConfigError ? e.issues.map((i) => i.message).join("; ") : String(e);
    log.error(
      "reloaded, but {error}: no knock is heard until its ports are free (tried again, 1 s to 60 s apart) or a reload binds some",
      { error },
    );
    parts.reporter.report({ kind: "reloaded" });
    throw new AppliedButUnheard(error);
  }
  parts.binder.announce(config, bound);
  log.info("reloaded: {doors} doors", { doors: config.doors.length });
  parts.reporter.report({ kind: "reloaded" });
  return changes;
}
