/**
 * How many failure lines reach the log: at most one per source and door a minute, and at
 * most 100 a second of each evidence, with a summary each minute of what the budgets
 * dropped. The budgets are apart so that forgeable UDP lines cannot crowd out the TCP
 * lines fail2ban acts on. Below
 * that rate every failing source gets its line (fail2ban sees every one); a flood cannot
 * fill a disk. Metrics count every failure; this only decides what is written.
 * @module
 */
import type { RefusalEvidence } from "../engine/decision.ts";

/** Options for {@link RefusalLog}. */
export interface RefusalLogOptions {
  /** Quiet time per source and door after a line, ms. @default 60000 */
  readonly perSourceMs?: number;
  /** Lines allowed per second in all. @default 100 */
  readonly perSecond?: number;
  /** Most (source, door) pairs remembered; beyond it the oldest are forgotten. @default 100000 */
  readonly maxRemembered?: number;
}

/**
 * The failure lines' limiter.
 *
 * @example One line per source and door a minute
 * ```ts
 * import { RefusalLog } from "./refusal_log.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const limits = new RefusalLog();
 * assertEquals(limits.admit("ssh", "192.0.2.7", 0), true);
 * assertEquals(limits.admit("ssh", "192.0.2.7", 30_000), false);
 * assertEquals(limits.admit("web", "192.0.2.7", 30_000), true);
 * assertEquals(limits.admit("ssh", "192.0.2.7", 60_001), true);
 * ```
 */
export class RefusalLog {
  readonly #perSourceMs: number;
  readonly #perSecond: number;
  readonly #max: number;
  /** `door\0source` → when its last line was written, in write order. */
  readonly #last = new Map<string, number>();
  #second = 0;
  /** Lines written this second: those on TCP evidence, and the others (forgeable or none). */
  readonly #inSecond = { tcp: 0, other: 0 };
  /** Lines the global budget dropped since the last summary. */
  #dropped = 0;

  constructor(options: RefusalLogOptions = {}) {
    this.#perSourceMs = options.perSourceMs ?? 60_000;
    this.#perSecond = options.perSecond ?? 100;
    this.#max = options.maxRemembered ?? 100_000;
  }

  /**
   * True when a failure line for (`door`, `source`) resting on `evidence` may be written
   * now (and counts it).
   */
  admit(
    door: string,
    source: string,
    now: number,
    evidence: RefusalEvidence = "tcp",
    blames = evidence === "tcp",
  ): boolean {
    const budget = evidence === "tcp" ? "tcp" : "other";
    // Lines that blame the client (what fail2ban counts) have a minute of their own: a
    // line that blames no one must not keep the next blaming one out of the log.
    const key = `${door}\0${source}\0${blames ? "b" : ""}`;
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.#perSourceMs) return false;
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#inSecond.tcp = this.#inSecond.other = 0;
    }
    if (this.#inSecond[budget] >= this.#perSecond) {
      this.#dropped++;
      return false;
    }
    this.#inSecond[budget]++;
    this.#last.delete(key);
    this.#last.set(key, now);
    if (this.#last.size > this.#max) this.#forget(now);
    return true;
  }

  /** Lines dropped by the budget since the last call; resets the count (the minute's summary). */
  takeDropped(): number {
    const dropped = this.#dropped;
    this.#dropped = 0;
    return dropped;
  }

  /** Forgets pairs whose quiet time is over, and the oldest beyond the cap. */
  #forget(now: number): void {
    for (const [key, at] of this.#last) {
      if (now - at < this.#perSourceMs && this.#last.size <= this.#max / 2) break;
      this.#last.delete(key);
    }
  }
}
