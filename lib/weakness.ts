/**
 * How weak a door is: the chance that one random-order sweep of the ports that can reset
 * a knocker's progress opens it, computed (not simulated), worst case, bans ignored.
 * `check` prints it and `listen` warns at start when it is above one in a million.
 * @module
 */
import type { Door } from "./config/types.ts";

/** Above this chance per sweep a door is called weak. */
export const WEAK_ABOVE = 1e-6;

/** How far ahead of the expected knock the tracker holds an early one (tracker.ts). */
const MAX_AHEAD = 3;

/** The parts of the estimate, for the message. */
export interface Weakness {
  /** The door's name. */
  readonly door: string;
  /** Chance that one random-order sweep of `ports` opens the door, 0–1. */
  readonly chance: number;
  /** Ports (port and protocol pairs) a sweep covers: those that can reset progress. */
  readonly ports: number;
  /** Knocks per code. */
  readonly length: number;
  /** Codes accepted at once: counters in the window (× users when there are several). */
  readonly codes: number;
  /** Orders of a code's knocks the reorder window accepts. */
  readonly orderings: number;
  /** True when `chance` is above one in a million. */
  readonly weak: boolean;
}

/**
 * The orders in which the tracker accepts a code's `length` knocks when they all arrive
 * within the reorder window: a knock may come early by up to 3 places and is held until
 * the gap before it fills. 1 when the reorder window is 0.
 *
 * @example
 * ```ts
 * import { acceptedOrderings } from "./weakness.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(acceptedOrderings(3, true), 6); // any order of 3
 * assertEquals(acceptedOrderings(5, true), 60); // the 5th never before the 1st
 * assertEquals(acceptedOrderings(5, false), 1);
 * ```
 */
export function acceptedOrderings(length: number, reorder: boolean): number {
  if (!reorder || length <= 1) return 1;
  // Over the sets of knocks arrived so far: the next expected is the lowest one missing,
  // and a knock may arrive if it is at most MAX_AHEAD places beyond it.
  const full = (1 << length) - 1;
  const ways = new Float64Array(1 << length);
  ways[0] = 1;
  for (let set = 0; set < full; set++) {
    if (ways[set] === 0) continue;
    let expected = 0;
    while (set & (1 << expected)) expected++;
    const last = Math.min(length - 1, expected + MAX_AHEAD);
    for (let j = expected; j <= last; j++) {
      if (!(set & (1 << j))) ways[set | (1 << j)] += ways[set];
    }
  }
  return ways[full];
}

/**
 * The weakness of a door: p = min(1, codes × orderings × (N − L + 1) ÷ (N! / (N − L)!)),
 * N the ports a sweep covers (a rotating door's pool, both protocols for a mixed door; a
 * static door's knocks and decoys), L the knocks per code.
 *
 * @example The README's recommended door is not weak; a static one is
 * ```ts
 * import { doorWeakness } from "./weakness.ts";
 * import { validateConfig } from "./config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const { doors } = validateConfig({
 *   doors: { ssh: { secret, ports: "20000-20999", length: 4 }, legacy: { sequence: [7000, 7001, 7002] } },
 * });
 * assertEquals(doorWeakness(doors[0], 5).weak, false);
 * assertEquals(doorWeakness(doors[1], 5).weak, true);
 * ```
 */
export function doorWeakness(door: Door, reorderWindowMs: number): Weakness {
  if (door.kind === "spa") {
    // One packet, encrypted and authenticated: no sweep of ports finds it.
    return { door: door.name, chance: 0, ports: 0, length: 1, codes: 0, orderings: 1, weak: false };
  }
  const length = door.kind === "static" ? door.sequence.length : door.length;
  const ports = door.kind === "static"
    ? door.pool.tcp.length + door.pool.udp.length
    : door.candidates.length * (door.protocol === "mixed" ? 2 : 1);
  const codes = door.kind === "static" ? 1 : (2 * door.skew + 1) * (door.users?.length ?? 1);
  const orderings = acceptedOrderings(length, reorderWindowMs > 0);
  // N! / (N − L)! as a running quotient, to stay within floating point.
  let chance = codes * orderings * Math.max(0, ports - length + 1);
  for (let i = 0; i < length; i++) chance /= Math.max(1, ports - i);
  chance = Math.min(1, chance);
  return { door: door.name, chance, ports, length, codes, orderings, weak: chance > WEAK_ABOVE };
}

/**
 * The warning for a weak door, or `undefined` when it is not weak.
 *
 * @example
 * ```ts
 * import { doorWeakness, weaknessWarning } from "./weakness.ts";
 * import { validateConfig } from "./config/validate.ts";
 * import { match } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000] } } });
 * match(weaknessWarning(doorWeakness(doors[0], 5))!, /^door legacy is weak: one sweep/);
 * ```
 */
export function weaknessWarning(w: Weakness): string | undefined {
  if (!w.weak) return undefined;
  const odds = w.chance >= 0.01
    ? `${(w.chance * 100).toPrecision(2)} %`
    : `1 in ${Math.round(1 / w.chance).toLocaleString("en")}`;
  return `door ${w.door} is weak: one sweep of its ${w.ports} ports in random order opens it with a chance of ${odds} ` +
    `(${w.length} knock${w.length === 1 ? "" : "s"}, ${w.codes} code${
      w.codes === 1 ? "" : "s"
    } accepted at once, ` +
    `${w.orderings} order${
      w.orderings === 1 ? "" : "s"
    } accepted); use a rotating door with more knocks or a larger pool`;
}
