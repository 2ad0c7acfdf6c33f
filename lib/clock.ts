/**
 * Time as a parameter: wall time, monotonic time and timers behind one {@link Clock}. The
 * program runs on {@link systemClock}; tests drive a manual clock (`lib/testing/`), so
 * nothing in-process waits for real time to pass.
 * @module
 */

/** A timer's handle, as {@link Clock.setTimeout} returns it: opaque, only to clear it. */
export type Timer = unknown;

/**
 * What the daemon asks of time. Wall time decides codes and `until`s; monotonic time
 * decides when a close or retry comes, so a clock stepped back keeps no door open longer.
 */
export interface Clock {
  /** Wall time, ms since the epoch (it may step). */
  now(): number;
  /** Monotonic time, ms from an arbitrary origin (never steps). */
  monotonic(): number;
  /** Calls `fn` once after `ms` of monotonic time. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Cancels a timer of {@link setTimeout} or {@link setInterval}; undefined is ignored. */
  clearTimeout(timer: Timer | undefined): void;
  /** Calls `fn` every `ms` of monotonic time until cleared. */
  setInterval(fn: () => void, ms: number): Timer;
}

/**
 * The operating system's clock: `Date.now`, `performance.now` and the runtime's timers.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * import { ok as assert } from "node:assert/strict";
 * const before = systemClock.monotonic();
 * await new Promise<void>((r) => systemClock.setTimeout(r, 5));
 * assert(systemClock.monotonic() - before >= 4);
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms))),
  clearTimeout: (timer) => clearTimeout(timer as number),
  setInterval: (fn, ms) => setInterval(fn, ms),
};

/** The longest wait a runtime timer takes (2^31-1 ms); longer ones are the caller's to re-arm. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
