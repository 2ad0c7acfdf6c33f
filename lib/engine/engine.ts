/**
 * The knock engine: every knock of every source against every door, synchronously and
 * without I/O. It owns the source table and the sequences in the acceptance window; it
 * consults the used codes and the scan detector, and returns decisions as data. The
 * daemon feeds it knocks and the sequences it derives, and acts on what it returns.
 * @module
 */
import { type Address, type Cidr, isPermitted, parseAddress } from "../address.ts";
import type { Door, KnockDoor, RotatingDoor, ScanPolicy } from "../config/types.ts";
import { Counters } from "../counters.ts";
import type { Knock, Protocol } from "../knock.ts";
import { SKEW_PROBE } from "../window.ts";
import { PortIndex } from "./port_index.ts";
import { type Evidence, ScanDetector, TCP_BAN, UDP_BAN } from "./scan_detector.ts";
import { recentlyMatched, rememberMatch } from "./duplicates.ts";
import { SequenceBook, STATIC_COUNTER } from "./sequence_book.ts";
import { SourceTable } from "./source_table.ts";
import type { AdvanceOptions } from "./tracker.ts";
import { knockCode } from "./tracker.ts";
import { AttemptStep, COMPLETE, MISS } from "./attempt_step.ts";
import { codeOwner, UsedCodes } from "./used_codes.ts";
import { completed, type Decision, type MissingSequence, refuse } from "./decision.ts";
import { dropBelow, newSource, removeAt, type SourceState } from "./source_state.ts";

export type { Decision, MissingSequence, RefusalEvidence, RefusalReason } from "./decision.ts";

/** Options for {@link KnockEngine}. */
export interface KnockEngineOptions {
  /** Most sources tracked at once (and most bans held). @default 100000 */
  readonly maxSources?: number;
  /** How long a knock received ahead of its turn waits for the knocks before it, ms. @default 500 */
  readonly reorderWindowMs?: number;
  /** Sources allowed to knock any door. @default [] (everyone) */
  readonly allow?: readonly Cidr[];
  /** Sources never heard. @default [] */
  readonly deny?: readonly Cidr[];
  /** The used codes to refuse; shared with the daemon, which persists them. @default none */
  readonly used?: UsedCodes;
  /** Scanner detection. @default off */
  readonly scan?: ScanPolicy;
  /**
   * Every knock is forgeable (the capture intake: a SYN proves nothing about its source):
   * no knock is TCP evidence and nothing bans, so forged packets can get nobody ignored.
   * @default false
   */
  readonly forgeable?: boolean;
  /** Where the engine counts ignored knocks, scanners and evictions. @default its own */
  readonly counters?: Counters;
}

const NO_DECISIONS: readonly Decision[] = Object.freeze([]);

/**
 * Decides, knock by knock, which doors open for whom.
 *
 * @example A static door opens on its sequence
 * ```ts
 * import { KnockEngine } from "./engine.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000, 8000, 9000] } } });
 * const engine = new KnockEngine(doors);
 * engine.handle("192.0.2.7", "tcp", 7000, 0);
 * engine.handle("192.0.2.7", "tcp", 8000, 100);
 * const decisions = engine.handle("192.0.2.7", "tcp", 9000, 200);
 * assertEquals(decisions, [{ kind: "open", door: "legacy", source: "192.0.2.7" }]);
 * ```
 */
export class KnockEngine {
  /** The doors, in config order; indices name them in {@link MissingSequence}. */
  readonly doors: readonly KnockDoor[];
  /** The used codes this engine refuses and marks. */
  readonly used: UsedCodes;
  readonly #counters: Counters;
  readonly #table: SourceTable<SourceState>;
  readonly #ports: PortIndex;
  readonly #allow: readonly Cidr[];
  readonly #deny: readonly Cidr[];
  readonly #checkLists: boolean;
  readonly #book: SequenceBook;
  readonly #maxTimeoutMs: number;
  readonly #advanceOptions: AdvanceOptions[];
  readonly #scan: ScanDetector | undefined;
  /** Per door: true when it takes UDP knocks (a UDP ban reaches it). */
  readonly #takesUdp: readonly boolean[];
  /** Advances attempts, and notes what one knock did to them. */
  readonly #attempt: AttemptStep;
  /** Scratch of one knock: the source sent a datagram lately (taints the doors taking UDP). */
  #tainted = false;
  readonly #forgeable: boolean;
  /** How long a source's UDP knock makes its failures UDP evidence, ms. */
  readonly #udpTaintMs: number;

  /**
   * Creates an engine for `doors` (in config order).
   * @param doors the doors.
   * @param options caps, windows, lists, used codes.
   */
  constructor(doors: readonly Door[], options: KnockEngineOptions = {}) {
    if (doors.some((d) => d.kind === "spa")) {
      throw new TypeError("SPA doors take packets, not knocks: give the engine knock doors");
    }
    this.doors = doors as readonly KnockDoor[];
    this.used = options.used ?? new UsedCodes();
    const counters = this.#counters = options.counters ?? new Counters();
    this.#attempt = new AttemptStep(counters);
    const maxSources = options.maxSources ?? 100_000;
    this.#table = new SourceTable(maxSources, () => counters.evictedSources++);
    this.#ports = new PortIndex(doors);
    this.#allow = options.allow ?? [];
    this.#deny = options.deny ?? [];
    this.#checkLists = this.#allow.length + this.#deny.length > 0 ||
      doors.some((d) => d.allow.length + d.deny.length > 0);
    this.#book = new SequenceBook(this.doors);
    this.#scan = options.scan && !options.forgeable
      ? new ScanDetector(options.scan, maxSources, counters)
      : undefined;
    this.#forgeable = options.forgeable === true;
    // Forgeable knocks taint every door as datagrams taint the doors that take UDP.
    this.#takesUdp = doors.map((d) => this.#forgeable || d.pool.udp.length > 0);
    const reorderWindowMs = options.reorderWindowMs ?? 500;
    this.#advanceOptions = doors.map((d) => ({ timeoutMs: d.sequenceTimeoutMs, reorderWindowMs }));
    this.#maxTimeoutMs = Math.max(0, ...doors.map((d) => d.sequenceTimeoutMs));
    // Long enough to cover an attempt reset by a forged datagram and timed out after it.
    this.#udpTaintMs = Math.max(60_000, 3 * this.#maxTimeoutMs);
  }

  /** Sources tracked now. */
  get trackedSources(): number {
    return this.#table.size;
  }

  /** Lifts the bans of `source`; returns how many it had (0 when none). */
  unban(source: string): number {
    return this.#scan?.unban(source) ?? 0;
  }

  /** Takes over the bans of the engine this one replaces (see {@link ScanDetector.restore}). */
  restoreBans(bans: readonly { source: string; evidence: Evidence; until: number }[]): void {
    this.#scan?.restore(bans);
  }

  /** The scanners banned at `now`: source, evidence, until when (ms). */
  bans(now: number): { source: string; evidence: Evidence; until: number }[] {
    return this.#scan?.list(now) ?? [];
  }

  /** Installs the sequence of an unbound rotating door for a counter; drops counters that left the window. */
  setSequence(doorIndex: number, counter: number, knocks: readonly Knock[], now: number): void {
    this.#book.set(doorIndex, counter, knocks, now);
  }

  /** Counters whose sequence is installed for an unbound door (for tests and the start-up summary). */
  installedCounters(doorIndex: number): number[] {
    return this.#book.installed(doorIndex);
  }

  /**
   * The sequences a knock needs before it can count for `bind_source` doors: empty when
   * none. The daemon derives them, installs them with {@link setBoundSequence}, then
   * calls {@link handle}.
   */
  missingBound(source: string, protocol: Protocol, port: number, now: number): MissingSequence[] {
    const doors = this.#ports.doorsAt(protocol, port);
    if (!doors) return [];
    let missing: MissingSequence[] | undefined;
    const bound = this.#table.peek(source)?.bound;
    for (const d of doors) {
      const door = this.doors[d];
      if (door.kind !== "rotating" || !door.bindSource) continue;
      const t = Math.floor(now / door.periodMs);
      for (let c = t - door.skew; c <= t + door.skew; c++) {
        if (!bound?.has(c * this.doors.length + d)) {
          (missing ??= []).push({ doorIndex: d, counter: c });
        }
      }
    }
    return missing ?? [];
  }

  /** Installs a `bind_source` door's sequence for one source and counter. */
  setBoundSequence(
    source: string,
    doorIndex: number,
    counter: number,
    knocks: readonly Knock[],
    now: number,
  ): void {
    this.#book.setBound(this.#table.touch(source, now, newSource), doorIndex, counter, knocks, now);
  }

  /**
   * Feeds one knock. Synchronous and cheap: the daemon calls it for every connection
   * attempt and datagram. Returns what to do: usually nothing, an open, or a refusal
   * (every knock on a pool that fits no code, or comes from a banned or denied source,
   * is one; the daemon limits how many it logs).
   */
  handle(source: string, protocol: Protocol, port: number, now: number): readonly Decision[] {
    const doors = this.#ports.doorsAt(protocol, port);
    if (!doors) return NO_DECISIONS;
    let address: Address | undefined;
    if (this.#checkLists) {
      address = parseAddress(source);
      if (!address || !isPermitted(address, this.#allow, this.#deny)) {
        this.#counters.ignored++;
        return this.#refuseAll(doors, source, "denied", protocol);
      }
    }
    const scan = this.#scan;
    let udpBanned = false;
    if (scan) {
      const ban = scan.banned(source, now);
      if (ban === TCP_BAN || (ban === UDP_BAN && protocol === "udp")) {
        this.#counters.ignored++;
        // A TCP knock of a source banned on TCP evidence is TCP evidence; anything else is not.
        return this.#refuseAll(doors, source, "banned", ban === TCP_BAN ? protocol : "udp");
      }
      udpBanned = ban === UDP_BAN;
      if (this.#ports.isDecoy(protocol, port)) return this.#ban(source, now, "decoy", protocol);
    }
    const state = this.#table.touch(source, now, newSource);
    const code = knockCode(port, protocol);
    // A retransmitted SYN or a browser's second connection. Within an attempt, #step skips
    // a twin of a knock the attempt already took; with none under way (the attempt just
    // completed), a twin is ignored unless it may begin or belong to a fresh attempt.
    const attempt = this.#attempt;
    attempt.begin(recentlyMatched(state, code, now));
    if (
      attempt.recent && state.tracked === null && !this.#book.begins(state, doors, code, now) &&
      !this.#book.inFresh(
        state,
        doors,
        code,
        now,
        (d, c) => this.used.isUsed(codeOwner(this.doors[d] as RotatingDoor, source), c),
      )
    ) {
      this.#counters.duplicates++;
      return NO_DECISIONS;
    }
    let hit = false;
    let decisions: Decision[] | undefined;
    // A datagram "from" this source lately taints what follows on the doors that take UDP:
    // forged UDP can reset an attempt there, and the knocks after it would otherwise look
    // like a TCP-only failure. A TCP-only door hears no datagram: its failures stay TCP
    // evidence (else one datagram a minute would hide a scanner from fail2ban everywhere).
    if (protocol === "udp" || this.#forgeable) state.lastUdp = now;
    this.#tainted = now - state.lastUdp <= this.#udpTaintMs;
    for (const d of doors) {
      const door = this.doors[d];
      if (udpBanned && this.#takesUdp[d]) {
        this.#counters.ignored++;
        decisions = refuse(decisions, door.name, source, "banned", "udp");
        continue;
      }
      if (address && !isPermitted(address, door.allow, door.deny)) {
        this.#counters.ignored++;
        decisions = refuse(decisions, door.name, source, "denied", protocol);
        continue;
      }
      const options = this.#advanceOptions[d];
      attempt.orderLost = false;
      if (door.kind === "static") {
        const seq = this.#book.get(d, STATIC_COUNTER)!;
        const result = attempt.step(state, d, STATIC_COUNTER, seq, code, now, options);
        if (result !== MISS) hit = true;
        if (result === COMPLETE) {
          (decisions ??= []).push({ kind: "open", door: door.name, source });
        } else if (attempt.orderLost) {
          decisions = refuse(decisions, door.name, source, "order", "none");
        }
        continue;
      }
      // The window inline: no object per knock and door on the hot path.
      const t = Math.floor(now / door.periodMs);
      const lo = t - door.skew, hi = t + door.skew;
      // Unbound doors also follow the codes just outside the window, only to say when
      // the clocks disagree: completing one of those opens nothing.
      const probe = door.bindSource ? 0 : SKEW_PROBE;
      if (state.tracked) dropBelow(state.tracked, d, lo - probe);
      for (let c = lo - probe; c <= hi + probe; c++) {
        const seq = door.bindSource ? this.#book.bound(state, d, c) : this.#book.get(d, c);
        if (!seq) continue;
        const result = attempt.step(state, d, c, seq, code, now, options);
        if (result !== MISS) hit = true;
        if (result !== COMPLETE) continue;
        const decision = this.#complete(d, source, c, t, lo, hi);
        (decisions ??= []).push(decision);
        if (decision.kind === "open") {
          attempt.orderLost = false; // the door opened: what else was lost does not matter
          break; // one open per knock and door
        }
      }
      // An attempt lost to the delivery's order: said at once, and never the client's fault.
      if (attempt.orderLost) decisions = refuse(decisions, door.name, source, "order", "none");
    }
    if (attempt.twin) this.#counters.duplicates++;
    if (hit) {
      rememberMatch(state, code, now);
      // An open ends the attempt: what its knocks started in the door's other sequences
      // (other counters, other users) is no failure of that source.
      if (decisions && state.tracked) {
        for (const d of decisions) if (d.kind === "open") this.#forget(state, d.door);
      }
      return decisions ?? NO_DECISIONS;
    }
    // A knock that fits no sequence in the window: the attempt failed (wrong, or too late)
    // on every door it was heard on; too many distinct misses in a short time is a scan.
    for (const d of doors) {
      const door = this.doors[d];
      if (
        (udpBanned && this.#takesUdp[d]) ||
        (address && !isPermitted(address, door.allow, door.deny))
      ) continue;
      const udp = protocol === "udp" || this.#attempt.droppedUdp ||
        (this.#tainted && this.#takesUdp[d]);
      decisions = refuse(decisions, door.name, source, attempt.dropped, udp ? "udp" : "tcp");
    }
    if (scan) {
      const scanEvidence = scan.miss(state, code, now);
      if (scanEvidence) {
        return [...(decisions ?? []), ...this.#ban(source, now, "ports", scanEvidence)];
      }
    }
    return decisions ?? NO_DECISIONS;
  }

  /**
   * Drops sources idle longer than every door's sequence timeout, and bans that ended.
   * Returns a `timeout` refusal for each door a dropped source was part way through.
   */
  sweep(now: number): Decision[] {
    let decisions: Decision[] | undefined;
    this.#table.expire(now - this.#maxTimeoutMs, (source, state) => {
      const tainted = now - state.lastUdp <= this.#udpTaintMs;
      const from = decisions?.length ?? 0; // this source's refusals start here
      for (const t of state.tracked ?? []) {
        decisions = refuse(
          decisions,
          this.doors[t.door].name,
          source,
          "timeout",
          t.udp || (tainted && this.#takesUdp[t.door]) ? "udp" : "tcp",
          from,
        );
      }
    });
    this.#scan?.sweep(now);
    return decisions ?? [];
  }

  /** Drops a source's progress on every engine door named `door` (all its users and counters). */
  #forget(state: SourceState, door: string): void {
    const list = state.tracked!;
    for (let i = list.length - 1; i >= 0; i--) {
      if (this.doors[list[i].door].name === door) removeAt(state, i);
      if (!state.tracked) return;
    }
  }

  /** A refusal on every door at a port (a denied or banned source), one per door name. */
  #refuseAll(
    doors: readonly number[],
    source: string,
    reason: "banned" | "denied",
    evidence: Evidence,
  ): Decision[] {
    let decisions: Decision[] | undefined;
    for (const d of doors) {
      decisions = refuse(decisions, this.doors[d].name, source, reason, evidence);
    }
    return decisions!;
  }

  /** A rotating door's code completed: open, replay or skew. */
  #complete(d: number, source: string, counter: number, current: number, lo: number, hi: number) {
    const evidence: Evidence =
      this.#attempt.completedUdp || this.#attempt.droppedUdp || (this.#tainted && this.#takesUdp[d])
        ? "udp"
        : "tcp";
    const window = { current, lo, hi };
    return completed(
      this.doors[d] as RotatingDoor,
      source,
      counter,
      window,
      evidence,
      this.used,
      this.#counters,
    );
  }

  /**
   * Starts a source's cool-down: its knocks are ignored until then, and its progress
   * dropped, on every door (TCP evidence) or on the doors that take UDP knocks (UDP).
   */
  #ban(
    source: string,
    now: number,
    reason: "decoy" | "ports",
    evidence: Evidence,
  ): readonly Decision[] {
    const until = this.#scan!.ban(source, now, evidence);
    const state = this.#table.peek(source);
    if (state) {
      state.seen = null;
      if (evidence === "tcp") state.tracked = null;
      else if (state.tracked) {
        for (let i = state.tracked.length - 1; i >= 0; i--) {
          if (this.#takesUdp[state.tracked[i].door]) removeAt(state, i);
          if (!state.tracked) break;
        }
      }
    }
    return [{ kind: "scan", source, reason, evidence, until }];
  }
}
