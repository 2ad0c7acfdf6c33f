/**
 * The acceptance window of a rotating door: the counters the daemon accepts at a time
 * (T−skew … T+skew) and the counter a client should knock with. The daemon, the engine,
 * `sesame code` and the knock client all do this arithmetic here.
 * @module
 */
import { counterAt } from "./sequence.ts";

/** What the window needs of a door. */
export interface WindowSpec {
  /** Rotation period, ms. */
  readonly periodMs: number;
  /** Counters accepted on either side of the current one. */
  readonly skew: number;
}

/** The counters a door accepts at one time. */
export interface AcceptWindow {
  /** The counter in force. */
  readonly current: number;
  /** The lowest counter accepted: current − skew. */
  readonly lo: number;
  /** The highest counter accepted: current + skew. */
  readonly hi: number;
}

/**
 * Counters beyond the window on each side that the daemon follows only to say that the
 * clocks disagree: completing one of them opens nothing.
 */
export const SKEW_PROBE = 2;

/**
 * The counters `door` accepts at `now`.
 *
 * @example
 * ```ts
 * import { acceptWindow } from "./window.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(acceptWindow({ periodMs: 30_000, skew: 1 }, 1000 * 30_000 + 5), {
 *   current: 1000,
 *   lo: 999,
 *   hi: 1001,
 * });
 * ```
 */
export function acceptWindow(door: WindowSpec, now: number): AcceptWindow {
  const current = counterAt(now, door.periodMs);
  return { current, lo: current - door.skew, hi: current + door.skew };
}

/**
 * The counter a client should knock with so the whole sequence, sent from `startMs` and
 * lasting `durationMs`, stays inside the server's window T−skew … T+skew. The server
 * judges each knock by its own clock: when the knocks straddle a boundary, the later
 * counter is the one acceptable from the first knock to the last (if skew allows it).
 *
 * @example
 * ```ts
 * import { counterForKnock } from "./window.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const door = { periodMs: 30_000, skew: 1 };
 * assertEquals(counterForKnock(door, 1000 * 30_000, 2000), 1000);
 * assertEquals(counterForKnock(door, 1001 * 30_000 - 1000, 2000), 1001); // straddles the boundary
 * ```
 */
export function counterForKnock(door: WindowSpec, startMs: number, durationMs: number): number {
  const now = counterAt(startMs, door.periodMs);
  const end = counterAt(startMs + durationMs, door.periodMs);
  return end > now && door.skew >= end - now ? end : now;
}
