/**
 * Recovery: from what the store loaded to what a start begins with. The used codes (and,
 * after a lost or damaged state, floors that refuse every code of the current window), the
 * open doors to take over (shortened when the clock came back behind the state), and the
 * SPA packets to refuse. Logs how the store loaded. Pure but for the log.
 * @module
 */
import { type Config, spaDoors, userDoors } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import { UsedCodes } from "../engine/used_codes.ts";
import { logger } from "../log.ts";
import type { LoadResult, OpenRecord, Store, StoredState } from "../store/store.ts";
import { acceptWindow } from "../window.ts";
import type { SpaMemory } from "./intake.ts";
import type { Firewalls } from "../actions/firewall.ts";
import { FIREWALL_KINDS, uses } from "./guard.ts";

const log = logger("daemon");

/** What a start begins with. */
export interface Recovery {
  /** The used codes to refuse (with fail-closed floors after a lost state). */
  readonly used: UsedCodes;
  /** The doors to take over, their ends corrected for a clock that came back behind. */
  readonly open: readonly OpenRecord[];
  /** The SPA packets to refuse. */
  readonly spa: SpaMemory;
}

/**
 * What to start from, given what the store loaded, the config and the clock.
 *
 * @example After a lost state, every code of the current window counts as used
 * ```ts
 * import { recover } from "./recovery.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const config = validateConfig({ doors: { ssh: { secret, ports: "20000-20099", open: { for: "5s" } } } });
 * const door = config.doors[0];
 * const { used } = recover({ kind: "lost", evidence: "the state file is gone" }, config, 1000 * 30_000);
 * assertEquals(used.isUsed({ door: "ssh", secret: door.kind === "rotating" ? door.fingerprint : "" }, 1001), true);
 * ```
 */
export function recover(loaded: LoadResult, config: Config, now: number): Recovery {
  const state = describeLoad(loaded, config, now);
  const used = new UsedCodes(adoptCodes(config, state));
  // The latest time sesame committed: a clock that restarts behind it (no RTC after a
  // power loss) must not lower the floors below codes used before.
  const latest = Math.max(now, state.maxTime ?? 0);
  const lost = loaded.kind === "corrupt" || loaded.kind === "lost";
  if (lost) {
    // The codes used lately are unknown: every code of the current window counts as used.
    for (const door of userDoors(config.doors)) {
      if (door.kind === "rotating") {
        used.floor(door.name, door.fingerprint, acceptWindow(door, latest).hi, door.user);
      }
    }
  }
  const maxAge = Math.max(0, ...spaDoors(config.doors).map((d) => d.spa.maxAgeMs));
  // A clock that restarted behind the latest time committed (stepped back while sesame
  // was down) would lengthen every open door by the step: their ends move back by it.
  const behind = latest - now;
  return {
    used,
    open: behind > 1000 ? state.open.map((r) => ({ ...r, until: r.until - behind })) : state.open,
    spa: {
      used: state.spa ?? [],
      maxTime: latest,
      // Which SPA packets were used lately is unknown: none made before now is taken
      // (nor one stamped up to max_age after it: a client's clock may run ahead). Kept in
      // the store until it has passed (the start's first commit writes it): a second
      // start, after this one stopped, must not forget it.
      refuseBefore: Math.max(lost ? latest + maxAge : 0, state.spaRefuseBefore ?? 0),
    },
  };
}

/** Logs how the store loaded; returns the state to start from. */
function describeLoad(
  loaded: LoadResult,
  config: Config,
  now: number,
): StoredState & { readonly maxTime?: number } {
  const file = config.stateFile;
  switch (loaded.kind) {
    case "first":
      log.info("first start: a new state at {file}", { file });
      return { used: [], open: [] };
    case "lost":
      log.error(
        "the state at {file} was lost ({evidence}): the codes used lately are unknown. Failing closed: every code of the current window is refused",
        { file: file ?? "(memory)", evidence: loaded.evidence },
      );
      return loaded.state ?? { used: [], open: [] };
    case "corrupt":
      log.error(
        "the state at {file} is damaged ({error}); kept as {keptAs}. Failing closed: every code of the current window is refused; {salvaged} open doors could still be read",
        {
          file,
          error: loaded.error.message,
          keptAs: loaded.keptAs,
          salvaged: loaded.salvaged.length,
        },
      );
      return { used: [], open: loaded.salvaged };
    case "ok": {
      if (!file) {
        log.warning(
          "no state_file: used codes are kept in memory only, so replay protection ends when sesame stops",
        );
      }
      if (loaded.imported) {
        log.info("imported the JSON state file {file}; the old file is kept as {keptAs}", {
          file,
          keptAs: loaded.imported,
        });
      }
      const maxTime = loaded.state.maxTime ?? 0;
      if (maxTime > now + 1000) {
        log.error(
          "the clock is {behind} behind the latest time sesame committed ({latest}): it was stepped back. Used codes stay refused, and the doors still open end that much earlier",
          { behind: formatDuration(maxTime - now), latest: new Date(maxTime).toISOString() },
        );
      }
      return loaded.state;
    }
  }
}

/**
 * The used codes a store kept, for this config: records from before fingerprints count
 * for the door's current secret (fail closed).
 */
function adoptCodes(config: Config, state: StoredState) {
  const secrets = new Map(
    config.doors.flatMap((d) => d.kind === "rotating" ? [[d.name, d.fingerprint]] : []),
  );
  return state.used.flatMap((c) => {
    const secret = c.secret ?? secrets.get(c.door);
    return secret === undefined ? [] : [{ ...c, secret }];
  });
}

/**
 * A first start (no state at all, or none kept: `memory`) while sesame's rules from an
 * earlier run are in the kernel: sesame ran on this machine since it booted, and its state
 * was deleted (or `state_file` moved, or none is kept). The codes used lately are unknown:
 * lost state, so the current window's codes are refused, not accepted a second time. The
 * backends the config uses are asked (a config of command doors runs no firewall tool).
 */
export async function firstOrDeleted(
  loaded: LoadResult,
  config: Config,
  firewalls: Firewalls,
  memory = false,
): Promise<LoadResult> {
  if (loaded.kind !== "first" && !(memory && loaded.kind === "ok")) return loaded;
  for (const kind of FIREWALL_KINDS) {
    if (!uses(config, kind)) continue;
    if (await firewalls[kind].leftover?.().catch(() => false)) {
      return {
        kind: "lost",
        evidence: memory
          ? `no state_file, and sesame's ${kind} rules from an earlier run are in the kernel: what it used then is forgotten`
          : `no state is there, but sesame's ${kind} rules from an earlier run are in the kernel: the state was deleted, or state_file changed`,
      };
    }
  }
  return loaded;
}

/**
 * Makes what recovery decided durable: codes adopted from an older state, the fail-closed
 * floors of a lost state and the doors salvaged from a damaged store.
 */
export async function persistRecovery(
  store: Store,
  { used, open, spa }: Recovery,
  now: number,
): Promise<void> {
  const refuseSpaBefore = spa.refuseBefore;
  await store.commit({
    used: used.marks(),
    opened: open,
    now,
    ...(refuseSpaBefore > now ? { refuseSpaBefore } : {}),
  });
}
