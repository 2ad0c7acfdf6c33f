/**
 * A clock the test moves: {@link ManualClock.advance} moves wall and monotonic time together
 * and fires the timers that fall due, in order, each at its own time;
 * {@link ManualClock.step} moves only the wall clock, as an admin's `date -s` or an NTP
 * step does. Nothing ships that uses it: the program runs on the system clock.
 * @module
 */
import type { Clock, Timer } from "../clock.ts";

interface Pending {
  readonly id: Timer;
  at: number;
  readonly fn: () => void;
  readonly every: number | undefined;
}

/**
 * The manual twin of {@link import("../clock.ts").systemClock}.
 *
 * @example Timers fire in order as time advances; a wall step moves no timer
 * ```ts
 * import { ManualClock } from "./manual_clock.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const clock = new ManualClock(1_000_000);
 * const fired: string[] = [];
 * clock.setTimeout(() => fired.push(`b at ${clock.now()}`), 20);
 * clock.setTimeout(() => fired.push(`a at ${clock.now()}`), 10);
 * clock.step(-500_000); // the wall clock goes back; the timers keep their monotonic time
 * clock.advance(15);
 * assertEquals(fired, ["a at 500010"]);
 * clock.advance(5);
 * assertEquals(fired, ["a at 500010", "b at 500020"]);
 * ```
 */
export class ManualClock implements Clock {
  #wall: number;
  #mono = 0;
  #nextId = 1;
  readonly #pending = new Map<Timer, Pending>();

  /** @param wall the wall time to start at, ms since the epoch. */
  constructor(wall: number) {
    this.#wall = wall;
  }

  /** Wall time, ms. */
  now = (): number => this.#wall;

  /** Monotonic time, ms (starts at 0). */
  monotonic = (): number => this.#mono;

  /** Schedules `fn` after `ms` of {@link advance}. */
  setTimeout(fn: () => void, ms: number): Timer {
    return this.#add(fn, ms, undefined);
  }

  /** Schedules `fn` every `ms` of {@link advance}. */
  setInterval(fn: () => void, ms: number): Timer {
    return this.#add(fn, ms, Math.max(1, ms));
  }

  /** Cancels a timer. */
  clearTimeout(timer: Timer | undefined): void {
    if (timer !== undefined) this.#pending.delete(timer);
  }

  /** Timers scheduled and not yet fired or cleared. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Moves wall and monotonic time `ms` ahead, firing every timer that falls due on the
   * way, in order of due time (each sees the clock at its own due time).
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance() takes a non-negative time, received ${ms}`);
    const end = this.#mono + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.#pending.values()) if (!next || p.at < next.at) next = p;
      if (!next || next.at > end) break;
      this.#wall += next.at - this.#mono;
      this.#mono = next.at;
      if (next.every === undefined) this.#pending.delete(next.id);
      else next.at += next.every;
      next.fn();
    }
    this.#wall += end - this.#mono;
    this.#mono = end;
  }

  /** Steps the wall clock by `ms` (negative: back) without moving monotonic time or timers. */
  step(ms: number): void {
    this.#wall += ms;
  }

  #add(fn: () => void, ms: number, every: number | undefined): Timer {
    const id = this.#nextId++;
    this.#pending.set(id, { id, at: this.#mono + Math.max(0, ms), fn, every });
    return id;
  }
}
