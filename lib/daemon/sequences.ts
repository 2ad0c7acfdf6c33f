/**
 * Every derivation the daemon makes, synchronously (@noble/hashes' HMAC, a few µs a code):
 * the sequences of unbound rotating doors for the window (one counter ahead, and the skew
 * probes) at each tick; and for `bind_source` doors the sequences of each new source at
 * its first knock, so that knock then counts at once and in order.
 * @module
 */
import { parseAddress } from "../address.ts";
import { codeForCounterSync } from "../code.ts";
import type { KnockEngine } from "../engine/engine.ts";
import type { HeardKnock } from "../knock.ts";
import { acceptWindow, SKEW_PROBE } from "../window.ts";

/**
 * The derivations of one engine (a reload makes a new engine and a new `Sequences`).
 *
 * @example
 * ```ts
 * import { Sequences } from "./sequences.ts";
 * import { KnockEngine } from "../engine/engine.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const { doors } = validateConfig({ doors: { ssh: { secret, ports: "20000-20099" } } });
 * const engine = new KnockEngine(doors);
 * new Sequences(engine).refresh(1000 * 30_000);
 * // The window 999…1001, one ahead, and two either side to tell clock skew.
 * assertEquals(engine.installedCounters(0), [997, 998, 999, 1000, 1001, 1002, 1003, 1004]);
 * ```
 */
export class Sequences {
  readonly #engine: KnockEngine;

  /** @param engine the engine to install into. */
  constructor(engine: KnockEngine) {
    this.#engine = engine;
  }

  /** Installs the sequences of unbound rotating doors for the window, one ahead, and the probes. */
  refresh(now: number): void {
    const engine = this.#engine;
    engine.doors.forEach((door, i) => {
      if (door.kind !== "rotating" || door.bindSource) return;
      const { lo, hi } = acceptWindow(door, now);
      const have = new Set(engine.installedCounters(i));
      for (let c = lo - SKEW_PROBE; c <= hi + SKEW_PROBE + 1; c++) {
        if (!have.has(c)) engine.setSequence(i, c, codeForCounterSync(door, c).knocks, now);
      }
    });
  }

  /**
   * Derives what `bind_source` doors need for this knock's source and time, if anything
   * is missing, so that the engine can count it. Throws when a derivation fails (the knock
   * cannot count).
   */
  ensure({ source, protocol, port, at }: HeardKnock): void {
    const engine = this.#engine;
    const missing = engine.missingBound(source, protocol, port, at);
    if (missing.length === 0) return;
    const address = parseAddress(source);
    for (const { doorIndex, counter } of missing) {
      const code = codeForCounterSync(engine.doors[doorIndex], counter, address);
      engine.setBoundSequence(source, doorIndex, counter, code.knocks, at);
    }
  }
}
