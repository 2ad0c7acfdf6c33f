/**
 * Scanner detection: a knocker makes few knocks that fit no sequence, a sweep over a
 * pool makes one per port. More than `threshold` distinct misses of one protocol within
 * `windowMs`, or one knock on a decoy, bans a source for `cooldownMs`. Bans live in their
 * own bounded tables, apart from the source table, so a banned source that goes quiet
 * stays banned for its whole cool-down.
 *
 * The evidence decides the reach: a TCP knock is a completed handshake, so TCP evidence
 * bans the source on every door; a UDP datagram's source can be forged by anyone, so UDP
 * evidence bans it only on the doors that take UDP knocks (UDP and mixed doors), and
 * forged datagrams cannot lock anyone out of a TCP door. Time is a parameter.
 * @module
 */
import type { ScanPolicy } from "../config/types.ts";
import type { Counters } from "../counters.ts";

/** A source's recent misses, kept in the engine's per-source state. */
export interface MissLog {
  /** Distinct missed knock codes (port × 2 + 1 for UDP) since `seenSince`; `null` until the first miss. */
  seen: number[] | null;
  /** Start of the current window, ms. */
  seenSince: number;
}

/** What a ban rests on: completed TCP handshakes, or UDP datagrams (forgeable). */
export type Evidence = "tcp" | "udp";

/** No ban. */
export const NOT_BANNED = 0;
/** Banned on UDP evidence: ignored on the doors that take UDP knocks. */
export const UDP_BAN = 1;
/** Banned on TCP evidence: ignored on every door. */
export const TCP_BAN = 2;

/**
 * Finds and bans scanners.
 *
 * @example A ban outlives the source's silence
 * ```ts
 * import { NOT_BANNED, ScanDetector, TCP_BAN } from "./scan_detector.ts";
 * import { Counters } from "../counters.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const scan = new ScanDetector({ threshold: 2, windowMs: 1000, cooldownMs: 60_000 }, 10, new Counters());
 * const log = { seen: null, seenSince: 0 };
 * assertEquals(scan.miss(log, 2 * 7000, 0), undefined);
 * assertEquals(scan.miss(log, 2 * 7001, 1), undefined);
 * assertEquals(scan.miss(log, 2 * 7002, 2), "tcp"); // a third distinct TCP miss within the window
 * scan.ban("192.0.2.66", 2, "tcp");
 * assertEquals(scan.banned("192.0.2.66", 59_000), TCP_BAN);
 * assertEquals(scan.banned("192.0.2.66", 60_002), NOT_BANNED);
 * ```
 */
export class ScanDetector {
  readonly policy: ScanPolicy;
  readonly #maxBans: number;
  readonly #counters: Counters;
  /** Per evidence, source → end of its ban, in ban order: with one cool-down, also in order of expiry. */
  readonly #bans: Record<Evidence, Map<string, number>> = { tcp: new Map(), udp: new Map() };

  /**
   * @param policy the thresholds.
   * @param maxBans most bans held per evidence; when full, the one that ends soonest goes (and is counted).
   * @param counters where bans and evictions are counted.
   */
  constructor(policy: ScanPolicy, maxBans: number, counters: Counters) {
    this.policy = policy;
    this.#maxBans = maxBans;
    this.#counters = counters;
  }

  /** {@link TCP_BAN}, {@link UDP_BAN} or {@link NOT_BANNED}: what `source` is banned on now. */
  banned(source: string, now: number): number {
    const { tcp, udp } = this.#bans;
    if (tcp.size > 0 && (tcp.get(source) ?? 0) > now) return TCP_BAN;
    if (udp.size > 0 && (udp.get(source) ?? 0) > now) return UDP_BAN;
    return NOT_BANNED;
  }

  /**
   * Records a missed knock (`code`: port × 2, + 1 for UDP); returns the evidence when the
   * source has just made more than `threshold` distinct misses of that protocol.
   */
  miss(log: MissLog, code: number, now: number): Evidence | undefined {
    if (log.seen === null || now - log.seenSince > this.policy.windowMs) {
      log.seen = [code]; // a literal: no spare capacity per source
      log.seenSince = now;
      return undefined; // one miss never crosses a threshold of at least 2
    }
    if (log.seen.includes(code)) return undefined;
    log.seen.push(code);
    let same = 0;
    for (const c of log.seen) if ((c & 1) === (code & 1)) same++;
    if (same <= this.policy.threshold) return undefined;
    return code & 1 ? "udp" : "tcp";
  }

  /** Bans `source` on `evidence` for the cool-down; returns when the ban ends. */
  ban(source: string, now: number, evidence: Evidence): number {
    const bans = this.#bans[evidence];
    const until = now + this.policy.cooldownMs;
    bans.delete(source);
    if (bans.size >= this.#maxBans) {
      bans.delete(bans.keys().next().value as string);
      this.#counters.evictedBans++;
    }
    bans.set(source, until);
    this.#counters.scanners++;
    return until;
  }

  /**
   * Lifts `source`'s bans (`sesame unban`); returns how many it had (0–2: TCP and UDP).
   */
  unban(source: string): number {
    let lifted = 0;
    for (const bans of [this.#bans.tcp, this.#bans.udp]) if (bans.delete(source)) lifted++;
    return lifted;
  }

  /**
   * Takes over bans another detector held (a reload builds a new engine): each keeps its
   * end. `bans` must be in {@link list}'s order, which keeps each evidence's expiry order.
   */
  restore(bans: readonly { source: string; evidence: Evidence; until: number }[]): void {
    for (const { source, evidence, until } of bans) {
      const held = this.#bans[evidence];
      if (held.size >= this.#maxBans) break;
      held.set(source, until);
    }
  }

  /** Drops bans that have ended. */
  sweep(now: number): void {
    for (const bans of [this.#bans.tcp, this.#bans.udp]) {
      for (const [source, until] of bans) {
        if (until > now) break; // in order of expiry
        bans.delete(source);
      }
    }
  }

  /** The bans in force at `now`, soonest to end first per evidence. */
  list(now: number): { source: string; evidence: Evidence; until: number }[] {
    const out: { source: string; evidence: Evidence; until: number }[] = [];
    for (const evidence of ["tcp", "udp"] as const) {
      for (const [source, until] of this.#bans[evidence]) {
        if (until > now) out.push({ source, evidence, until });
      }
    }
    return out;
  }

  /** Bans held now. */
  get size(): number {
    return this.#bans.tcp.size + this.#bans.udp.size;
  }
}
