/**
 * Scanner detection: a knocker makes few knocks that fit no sequence, a sweep over a
 * pool makes one per port. More than `threshold` distinct misses within `windowMs`, or
 * one knock on a decoy, bans a source for `cooldownMs`. Bans live in their own bounded
 * table, apart from the source table, so a banned source that goes quiet stays banned
 * for its whole cool-down. Time is a parameter: tests move `now`.
 * @module
 */
import type { ScanPolicy } from "../config/types.ts";
import type { Counters } from "../counters.ts";

/** A source's recent misses, kept in the engine's per-source state. */
export interface MissLog {
  /** Distinct missed knock codes since `seenSince`; `null` until the first miss. */
  seen: number[] | null;
  /** Start of the current window, ms. */
  seenSince: number;
}

/**
 * Finds and bans scanners.
 *
 * @example A ban outlives the source's silence
 * ```ts
 * import { ScanDetector } from "./scan_detector.ts";
 * import { Counters } from "../counters.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const scan = new ScanDetector({ threshold: 2, windowMs: 1000, cooldownMs: 60_000 }, 10, new Counters());
 * const log = { seen: null, seenSince: 0 };
 * assertEquals(scan.miss(log, 1, 0), false);
 * assertEquals(scan.miss(log, 2, 1), false);
 * assertEquals(scan.miss(log, 3, 2), true); // a third distinct miss within the window
 * scan.ban("192.0.2.66", 2);
 * assertEquals(scan.isBanned("192.0.2.66", 59_000), true);
 * assertEquals(scan.isBanned("192.0.2.66", 60_002), false);
 * ```
 */
export class ScanDetector {
  readonly policy: ScanPolicy;
  readonly #maxBans: number;
  readonly #counters: Counters;
  /** Source → end of its ban, in ban order: with one cool-down, also in order of expiry. */
  readonly #bans = new Map<string, number>();

  /**
   * @param policy the thresholds.
   * @param maxBans most bans held; when full, the one that ends soonest goes (and is counted).
   * @param counters where bans and evictions are counted.
   */
  constructor(policy: ScanPolicy, maxBans: number, counters: Counters) {
    this.policy = policy;
    this.#maxBans = maxBans;
    this.#counters = counters;
  }

  /** True while `source` is banned. */
  isBanned(source: string, now: number): boolean {
    if (this.#bans.size === 0) return false;
    const until = this.#bans.get(source);
    return until !== undefined && until > now;
  }

  /** Records a missed knock; true when the source has just made too many. */
  miss(log: MissLog, code: number, now: number): boolean {
    if (log.seen === null || now - log.seenSince > this.policy.windowMs) {
      log.seen = [code]; // a literal: no spare capacity per source
      log.seenSince = now;
      return 1 > this.policy.threshold;
    }
    if (log.seen.includes(code)) return false;
    log.seen.push(code);
    return log.seen.length > this.policy.threshold;
  }

  /** Bans `source` for the cool-down; returns when the ban ends. */
  ban(source: string, now: number): number {
    const until = now + this.policy.cooldownMs;
    this.#bans.delete(source);
    if (this.#bans.size >= this.#maxBans) {
      this.#bans.delete(this.#bans.keys().next().value as string);
      this.#counters.evictedBans++;
    }
    this.#bans.set(source, until);
    this.#counters.scanners++;
    return until;
  }

  /** Drops bans that have ended. */
  sweep(now: number): void {
    for (const [source, until] of this.#bans) {
      if (until > now) break; // in order of expiry
      this.#bans.delete(source);
    }
  }

  /** Bans held now. */
  get size(): number {
    return this.#bans.size;
  }
}
