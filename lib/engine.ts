/**
 * The knock engine: every knock of every source against every door, synchronously and
 * without I/O. It owns the source table, the sequences in the acceptance window and the
 * set of used codes; the daemon feeds it knocks and the sequences it derives, and acts on
 * the decisions it returns.
 * @module
 */
import { type Address, type Cidr, isPermitted, maskBytes, parseAddress } from "./address.ts";
import type { Door, RotatingDoor, ScanPolicy } from "./config/types.ts";
import type { Knock, Protocol } from "./sequence.ts";
import { SourceTable } from "./sources.ts";
import {
  advance,
  type AdvanceOptions,
  encodeSequence,
  knockCode,
  type Progress,
} from "./tracker.ts";

/** Options for {@link KnockEngine}. */
export interface KnockEngineOptions {
  /** Most sources tracked at once. @default 100000 */
  maxSources?: number;
  /** Out-of-order tolerance, ms. @default 5 */
  reorderWindowMs?: number;
  /** Sources allowed to knock any door. @default [] (everyone) */
  allow?: readonly Cidr[];
  /** Sources never heard. @default [] */
  deny?: readonly Cidr[];
  /** Used codes carried over from the state file: key → ms until which it must stay used. */
  used?: Iterable<[string, number]>;
  /** Scanner detection. @default off */
  scan?: ScanPolicy;
}

/** What the daemon must do after a knock. */
export type Decision =
  | {
    /** Open `door` for `source`. */
    readonly kind: "open";
    readonly door: Door;
    readonly source: string;
    /** The counter of a rotating door's code. */
    readonly counter?: number;
  }
  | {
    /** `source` behaves like a scanner (hit a decoy, or too many distinct pool ports): ignored for a while. */
    readonly kind: "scan";
    readonly source: string;
    readonly reason: "decoy" | "ports";
    readonly until: number;
  }
  | {
    /** `source` completed the code of a counter outside the window: the clocks disagree. Nothing opens. */
    readonly kind: "skew";
    readonly door: Door;
    readonly source: string;
    readonly counter: number;
    /** How many periods ahead (+) or behind (−) the knocker's clock is. */
    readonly periods: number;
  }
  | {
    /** `source` completed a code that was already used: a replay. Nothing opens. */
    readonly kind: "replay";
    readonly door: Door;
    readonly source: string;
    readonly counter: number;
  };

/** A counter a `bind_source` door needs derived for a source before its knock can count. */
export interface MissingSequence {
  /** The door's index in the engine's door list. */
  readonly doorIndex: number;
  /** The counter. */
  readonly counter: number;
}

/** One source's progress in one (door, counter): a Progress with its key, one object per entry. */
interface Tracked extends Progress {
  door: number;
  counter: number;
  position: number;
  firstAt: number;
  held: number;
  heldAt: number;
}

interface SourceState {
  /** Last knock, ms (the table's LRU order). */
  lastSeen: number;
  /** Progress per (door, counter); made on the first progress, dropped when empty (floods are mostly misses). */
  tracked: Tracked[] | null;
  /** Distinct missed knocks (codes) since `seenSince`, for scanner detection; made on the first miss. */
  seen: number[] | null;
  seenSince: number;
  /** Knocks are ignored until then: a scanner's cool-down. */
  bannedUntil: number;
  /** Sequences of bind_source doors for this source, keyed counter * doorCount + door. */
  bound?: Map<number, Int32Array>;
}

const STATIC_COUNTER = -1;
/** Counters beyond the window on each side followed only to detect clock skew. */
export const SKEW_PROBE = 2;
const BLOCK_KEY = /^(.+)\/<=(-?\d+)$/;
const NO_DECISIONS: readonly Decision[] = Object.freeze([]);
const NO_TRACKED: readonly Tracked[] = Object.freeze([]);

/**
 * Decides, knock by knock, which doors open for whom.
 *
 * @example Open a static door
 * ```ts
 * import { KnockEngine } from "./engine.ts";
 * import { validateConfig } from "./config/validate.ts";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000, 8000, 9000], open: { log: true } } } });
 * const engine = new KnockEngine(doors);
 * engine.handle("192.0.2.7", "tcp", 7000, 0);
 * engine.handle("192.0.2.7", "tcp", 8000, 100);
 * engine.handle("192.0.2.7", "tcp", 9000, 200); // [{ kind: "open", door: legacy, source: "192.0.2.7" }]
 * ```
 */
export class KnockEngine {
  /** The doors, in config order; indices name them in {@link MissingSequence}. */
  readonly doors: readonly Door[];
  readonly #table: SourceTable<SourceState>;
  readonly #reorderWindowMs: number;
  readonly #allow: readonly Cidr[];
  readonly #deny: readonly Cidr[];
  readonly #checkLists: boolean;
  /** Per protocol, per port: indices of the doors whose pool holds it. */
  readonly #portDoors: Record<Protocol, (number[] | undefined)[]>;
  /** Unbound rotating doors: counter → encoded sequence. Static doors: STATIC_COUNTER. */
  readonly #sequences: Map<number, Int32Array>[];
  readonly #used = new Map<string, number>();
  /** Per door: counters up to this one are refused (after a corrupt state file: fail closed). */
  readonly #blockedThrough: number[];
  readonly #maxTimeoutMs: number;
  readonly #advanceOptions: AdvanceOptions[];
  readonly #scan: ScanPolicy | undefined;
  /** Per protocol, per port: 1 where a static door keeps a decoy. */
  readonly #decoy: Record<Protocol, Uint8Array>;
  #ignored = 0;
  #scanners = 0;
  /** Set by #step when the knock fitted some sequence: not a miss. */
  #hit = false;

  /**
   * Creates an engine for `doors` (in config order), with its limits and carried-over used codes.
   * @param doors the doors.
   * @param options caps, windows, lists, used codes.
   */
  constructor(doors: readonly Door[], options: KnockEngineOptions = {}) {
    this.doors = doors;
    this.#table = new SourceTable(options.maxSources ?? 100_000);
    this.#reorderWindowMs = options.reorderWindowMs ?? 5;
    this.#allow = options.allow ?? [];
    this.#deny = options.deny ?? [];
    this.#checkLists = this.#allow.length + this.#deny.length > 0 ||
      doors.some((d) => d.allow.length + d.deny.length > 0);
    this.#portDoors = { tcp: new Array(65536), udp: new Array(65536) };
    this.#sequences = doors.map(() => new Map());
    this.#scan = options.scan;
    this.#decoy = { tcp: new Uint8Array(65536), udp: new Uint8Array(65536) };
    for (const door of doors) {
      if (door.kind !== "static") continue;
      for (const protocol of ["tcp", "udp"] as const) {
        for (const port of door.decoys[protocol]) this.#decoy[protocol][port] = 1;
      }
    }
    // A port that another door really uses is no decoy: its knockers must not be banned.
    for (const door of doors) {
      const real = door.kind === "static"
        ? door.sequence
        : door.candidates.flatMap((port) =>
          (door.protocol === "mixed" ? ["tcp", "udp"] as const : [door.protocol]).map((
            protocol,
          ) => ({ port, protocol }))
        );
      for (const k of real) this.#decoy[k.protocol][k.port] = 0;
    }
    this.#blockedThrough = doors.map(() => -Infinity);
    doors.forEach((door, i) => {
      for (const protocol of ["tcp", "udp"] as const) {
        for (const port of door.pool[protocol]) (this.#portDoors[protocol][port] ??= []).push(i);
      }
      if (door.kind === "static") {
        this.#sequences[i].set(STATIC_COUNTER, encodeSequence(door.sequence));
      }
    });
    this.#advanceOptions = doors.map((d) => ({
      timeoutMs: d.sequenceTimeoutMs,
      reorderWindowMs: this.#reorderWindowMs,
    }));
    this.#maxTimeoutMs = Math.max(0, ...doors.map((d) => d.sequenceTimeoutMs));
    for (const [key, until] of options.used ?? []) {
      this.#used.set(key, until);
      const block = BLOCK_KEY.exec(key);
      const d = block ? doors.findIndex((door) => door.name === block[1]) : -1;
      if (d >= 0) this.#blockedThrough[d] = Math.max(this.#blockedThrough[d], Number(block![2]));
    }
  }

  /**
   * Refuses every code of `door` up to `counter`, as if used: after a corrupt state file
   * the used codes are unknown, so the whole current window is treated as used. Kept in
   * {@link usedCodes} so it survives the next restart too.
   */
  blockThrough(doorIndex: number, counter: number): void {
    const door = this.doors[doorIndex] as RotatingDoor;
    this.#blockedThrough[doorIndex] = Math.max(this.#blockedThrough[doorIndex], counter);
    this.#used.set(`${door.name}/<=${counter}`, (counter + door.skew + 1) * door.periodMs);
  }

  /** Sources tracked now. */
  get trackedSources(): number {
    return this.#table.size;
  }

  /** Knocks ignored by allow/deny lists or a scanner's cool-down since start. */
  get ignoredKnocks(): number {
    return this.#ignored;
  }

  /** Sources found scanning since start. */
  get scannersDetected(): number {
    return this.#scanners;
  }

  /** Used codes with the time (ms) until which each must stay used: what the state file keeps. */
  usedCodes(): [string, number][] {
    return [...this.#used];
  }

  /** The counters `door` accepts at `now`: T−skew … T+skew. */
  window(door: RotatingDoor, now: number): [number, number] {
    const t = Math.floor(now / door.periodMs);
    return [t - door.skew, t + door.skew];
  }

  /** Installs the sequence of an unbound rotating door for a counter; drops counters that left the window. */
  setSequence(doorIndex: number, counter: number, knocks: readonly Knock[], now: number): void {
    const door = this.doors[doorIndex] as RotatingDoor;
    const map = this.#sequences[doorIndex];
    map.set(counter, encodeSequence(knocks));
    const [lo] = this.window(door, now);
    for (const c of map.keys()) if (c < lo - SKEW_PROBE) map.delete(c);
  }

  /** Counters whose sequence is installed for an unbound door (for tests and the start-up summary). */
  installedCounters(doorIndex: number): number[] {
    return [...this.#sequences[doorIndex].keys()].sort((a, b) => a - b);
  }

  /**
   * The sequences a knock needs before it can count for `bind_source` doors: empty when
   * none. The daemon derives them, installs them with {@link setBoundSequence}, then
   * calls {@link handle}.
   */
  missingBound(source: string, protocol: Protocol, port: number, now: number): MissingSequence[] {
    const doors = this.#portDoors[protocol][port];
    if (!doors) return [];
    let missing: MissingSequence[] | undefined;
    const bound = this.#table.peek(source)?.bound;
    for (const d of doors) {
      const door = this.doors[d];
      if (door.kind !== "rotating" || !door.bindSource) continue;
      const [lo, hi] = this.window(door, now);
      for (let c = lo; c <= hi; c++) {
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
    const state = this.#table.touch(source, now, newSource);
    const bound = state.bound ??= new Map();
    const door = this.doors[doorIndex] as RotatingDoor;
    const [lo] = this.window(door, now);
    for (const key of bound.keys()) {
      if (key % this.doors.length === doorIndex && Math.floor(key / this.doors.length) < lo) {
        bound.delete(key);
      }
    }
    bound.set(counter * this.doors.length + doorIndex, encodeSequence(knocks));
  }

  /**
   * Feeds one knock. Synchronous and cheap: the daemon calls it for every connection
   * attempt and datagram. Returns the doors to open (usually none).
   */
  handle(source: string, protocol: Protocol, port: number, now: number): readonly Decision[] {
    const doors = this.#portDoors[protocol][port];
    if (!doors) return NO_DECISIONS;
    let address: Address | undefined;
    if (this.#checkLists) {
      address = parseAddress(source);
      if (!address || !isPermitted(address, this.#allow, this.#deny)) {
        this.#ignored++;
        return NO_DECISIONS;
      }
    }
    const state = this.#table.touch(source, now, newSource);
    const code = knockCode(port, protocol);
    if (this.#scan) {
      if (state.bannedUntil > now) {
        this.#ignored++;
        return NO_DECISIONS;
      }
      if (this.#decoy[protocol][port]) return this.#ban(state, source, now, "decoy");
    }
    this.#hit = false;
    let decisions: Decision[] | undefined;
    for (const d of doors) {
      const door = this.doors[d];
      if (address && !isPermitted(address, door.allow, door.deny)) {
        this.#ignored++;
        continue;
      }
      const options = this.#advanceOptions[d];
      if (door.kind === "static") {
        if (
          this.#step(
            state,
            d,
            STATIC_COUNTER,
            this.#sequences[d].get(STATIC_COUNTER)!,
            code,
            now,
            options,
          )
        ) {
          (decisions ??= []).push({ kind: "open", door, source });
        }
        continue;
      }
      // The window inline: no [lo, hi] array per knock and door on the hot path.
      const t = Math.floor(now / door.periodMs);
      const lo = t - door.skew, hi = t + door.skew;
      // Unbound doors also follow the codes just outside the window, only to say when
      // the clocks disagree: completing one of those opens nothing.
      const probe = door.bindSource ? 0 : SKEW_PROBE;
      if (state.tracked) dropBelow(state.tracked, d, lo - probe);
      for (let c = lo - probe; c <= hi + probe; c++) {
        const seq = door.bindSource
          ? state.bound?.get(c * this.doors.length + d)
          : this.#sequences[d].get(c);
        if (!seq || !this.#step(state, d, c, seq, code, now, options)) continue;
        if (c < lo || c > hi) {
          const periods = c - t;
          (decisions ??= []).push({ kind: "skew", door, source, counter: c, periods });
          continue;
        }
        const key = usedKey(door, c, source);
        if (c <= this.#blockedThrough[d] || this.#used.has(key)) {
          (decisions ??= []).push({ kind: "replay", door, source, counter: c });
        } else {
          this.#used.set(key, (c + door.skew + 1) * door.periodMs);
          (decisions ??= []).push({ kind: "open", door, source, counter: c });
          break; // one open per knock and door, even if two counters complete at once
        }
      }
    }
    // A knock that fits no sequence in the window is a miss. A knocker makes few; a sweep
    // over a pool makes one per port: too many distinct misses in a short time is a scan.
    if (this.#scan && !this.#hit) {
      if (now - state.seenSince > this.#scan.windowMs) {
        state.seen = null;
        state.seenSince = now;
      }
      const seen = state.seen;
      if (!seen) state.seen = [code]; // a literal: no spare capacity per source
      else if (!seen.includes(code)) {
        seen.push(code);
        if (seen.length > this.#scan.threshold) return this.#ban(state, source, now, "ports");
      }
    }
    return decisions ?? NO_DECISIONS;
  }

  /** Drops sources idle longer than every door's sequence timeout, and used codes past their time. */
  sweep(now: number): void {
    this.#table.expire(now - this.#maxTimeoutMs);
    for (const [key, until] of this.#used) if (until <= now) this.#used.delete(key);
  }

  /** Starts a source's cool-down: its progress is dropped and its knocks ignored until then. */
  #ban(
    state: SourceState,
    source: string,
    now: number,
    reason: "decoy" | "ports",
  ): readonly Decision[] {
    const until = now + this.#scan!.cooldownMs;
    state.bannedUntil = until;
    state.tracked = null;
    state.seen = null;
    this.#scanners++;
    return [{ kind: "scan", source, reason, until }];
  }

  /** Advances one tracked sequence; true when it completed. */
  #step(
    state: SourceState,
    door: number,
    counter: number,
    seq: Int32Array,
    code: number,
    now: number,
    options: AdvanceOptions,
  ): boolean {
    const list = state.tracked ?? NO_TRACKED;
    let i = 0;
    while (i < list.length && (list[i].door !== door || list[i].counter !== counter)) i++;
    const step = advance(i < list.length ? list[i] : undefined, seq, code, now, options);
    const progress = step.kind === "progress" || step.kind === "reset" ? step.progress : undefined;
    if (progress || step.kind === "complete") this.#hit = true;
    if (step.kind === "none") return false;
    if (progress) {
      if (i < list.length) {
        const t = state.tracked![i];
        t.position = progress.position;
        t.firstAt = progress.firstAt;
        t.held = progress.held;
        t.heldAt = progress.heldAt;
      } else {
        const entry = { door, counter, ...progress };
        // An array literal holds exactly one element; push on [] would reserve 17 (memory per source).
        if (state.tracked) state.tracked.push(entry);
        else state.tracked = [entry];
      }
    } else if (i < list.length) {
      const owned = state.tracked!; // i < length: the list is the source's own
      owned[i] = owned[owned.length - 1];
      owned.pop();
      if (owned.length === 0) state.tracked = null;
    }
    return step.kind === "complete";
  }
}

function newSource(): SourceState {
  return { lastSeen: 0, tracked: null, seen: null, seenSince: 0, bannedUntil: 0 };
}

function dropBelow(list: Tracked[], door: number, lo: number): void {
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i].door === door && list[i].counter < lo) {
      list[i] = list[list.length - 1];
      list.pop();
    }
  }
}

/**
 * The key that marks a code used: door and counter, plus the source prefix for a
 * `bind_source` door (each prefix has its own code).
 */
export function usedKey(door: RotatingDoor, counter: number, source: string): string {
  if (!door.bindSource) return `${door.name}/${counter}`;
  const address = parseAddress(source);
  if (!address) return `${door.name}/${counter}/${source}`;
  const prefix = address.family === 4 ? door.sourcePrefix.ipv4 : door.sourcePrefix.ipv6;
  const masked = maskBytes(address.bytes, prefix);
  return `${door.name}/${counter}/${address.family}:${Array.from(masked).join(".")}/${prefix}`;
}
