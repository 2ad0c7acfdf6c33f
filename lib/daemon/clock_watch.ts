/**
 * Watching the wall clock for steps back: a clock stepped back by more than a door's window
 * would accept older codes. Used codes stay refused (their marks never expire), but the
 * admin must know: logged at error.
 * @module
 */
import type { Config } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import { logger } from "../log.ts";

const log = logger("daemon");

/**
 * Compares each tick's wall time with the last.
 *
 * @example
 * ```ts
 * import { ClockWatch } from "./clock_watch.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const config = validateConfig({ doors: { ssh: { secret, ports: "20000-20099" } } });
 * const watch = new ClockWatch(500);
 * assertEquals(watch.observe(10_000_000, config), false);
 * assertEquals(watch.observe(10_000_500, config), false);
 * assertEquals(watch.observe(9_000_000, config), true); // 1 000 s back: more than the window
 * ```
 */
export class ClockWatch {
  readonly #tickMs: number;
  /** The latest time a tick saw. */
  #last = 0;

  /** @param tickMs how far apart ticks are: a step shows as one jump larger than two. */
  constructor(tickMs: number) {
    this.#tickMs = tickMs;
  }

  /** Looks at `now`; logs and returns true when the clock went back more than a door's window. */
  observe(now: number, config: Config): boolean {
    const last = this.#last;
    this.#last = now;
    const windows = config.doors.flatMap((d) =>
      d.kind === "rotating" ? [d.skew * d.periodMs] : d.kind === "spa" ? [d.spa.maxAgeMs] : []
    );
    if (windows.length === 0 || last - now <= Math.max(this.#tickMs * 2, Math.min(...windows))) {
      return false;
    }
    log.error(
      "the clock went back {back} (from {from} to {to}), more than a door's window: used codes stay refused; check the time source",
      {
        back: formatDuration(last - now),
        from: new Date(last).toISOString(),
        to: new Date(now).toISOString(),
      },
    );
    return true;
  }
}
