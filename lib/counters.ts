/**
 * The daemon's counters, in one place: every part that counts something increments a
 * field here, and the start-up summary, the stop line and metrics read them.
 * @module
 */

/**
 * Counters since start. Plain fields: incrementing one costs what `x++` costs.
 *
 * @example
 * ```ts
 * import { Counters } from "./counters.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const counters = new Counters();
 * counters.knocks++;
 * assertEquals(counters.knocks, 1);
 * ```
 */
export class Counters {
  /** Knocks delivered by the listeners. */
  knocks = 0;
  /** Accept and receive calls that failed (reset probes of a connect scan, fd exhaustion). */
  acceptErrors = 0;
  /** Knocks ignored: allow/deny lists, a scanner's cool-down. */
  ignored = 0;
  /** Sources found scanning. */
  scanners = 0;
  /** Sources evicted from the full source table. */
  evictedSources = 0;
  /** Bans dropped early because the ban table was full. */
  evictedBans = 0;
  /** Completed codes refused as already used. */
  replays = 0;
  /** Completed codes of counters outside the window (clock skew). */
  skews = 0;
  /** Doors opened (fresh openings, not extensions). */
  opens = 0;
  /** Open actions that failed. */
  openFailures = 0;
  /** Doors closed. */
  closes = 0;
  /** Close actions that failed (each is retried). */
  closeFailures = 0;
  /** Store commits that failed: their doors did not open. */
  commitFailures = 0;
}
