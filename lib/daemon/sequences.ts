/**
 * Every derivation the daemon makes: the sequences of unbound rotating doors for the
 * window (one counter ahead, and the skew probes), ahead of time; and for `bind_source`
 * doors the sequences of each new source, at its first knock, synchronously (node:crypto's
 * HMAC, ~10 µs a block), so the knock then counts at once and in order.
 * @module
 */
import { parseAddress } from "../address.ts";
import { codeForCounter, codeForCounterSync } from "../code.ts";
import type { KnockEngine } from "../engine/engine.ts";
import type { Protocol } from "../knock.ts";
import { acceptWindow, SKEW_PROBE } from "../window.ts";

/** Feeds one knock to the engine (the daemon's decision path). */
export type KnockSink = (source: string, protocol: Protocol, port: number, at: number) => void;

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
 * const sequences = new Sequences(engine, () => {});
 * await sequences.refresh(1000 * 30_000);
 * // The window 999…1001, one ahead, and two either side to tell clock skew.
 * assertEquals(engine.installedCounters(0), [997, 998, 999, 1000, 1001, 1002, 1003, 1004]);
 * ```
 */
export class Sequences {
  readonly #engine: KnockEngine;
  readonly #onError: (error: unknown) => void;
  readonly #deriving = new Set<string>();

  /** @param engine the engine to install into. @param onError called when a derivation fails. */
  constructor(engine: KnockEngine, onError: (error: unknown) => void) {
    this.#engine = engine;
    this.#onError = onError;
  }

  /** Installs the sequences of unbound rotating doors for the window, one ahead, and the probes. */
  async refresh(now: number): Promise<void> {
    const engine = this.#engine;
    const jobs: Promise<void>[] = [];
    engine.doors.forEach((door, i) => {
      if (door.kind !== "rotating" || door.bindSource) return;
      const { lo, hi } = acceptWindow(door, now);
      const have = new Set(engine.installedCounters(i));
      for (let c = lo - SKEW_PROBE; c <= hi + SKEW_PROBE + 1; c++) {
        const job = `${i}/${c}`;
        if (have.has(c) || this.#deriving.has(job)) continue;
        this.#deriving.add(job);
        jobs.push(
          codeForCounter(door, c).then((code) => engine.setSequence(i, c, code.knocks, now))
            .finally(() => this.#deriving.delete(job)),
        );
      }
    });
    await Promise.all(jobs);
  }

  /**
   * Passes a knock on to `sink`, after deriving the sequences a `bind_source` door needs
   * for this source and time, if any are missing. A knock whose derivation failed is
   * dropped (and the error reported): it cannot count.
   */
  knock(source: string, protocol: Protocol, port: number, at: number, sink: KnockSink): void {
    const engine = this.#engine;
    const missing = engine.missingBound(source, protocol, port, at);
    if (missing.length > 0) {
      try {
        const address = parseAddress(source);
        for (const { doorIndex, counter } of missing) {
          const code = codeForCounterSync(engine.doors[doorIndex], counter, address);
          engine.setBoundSequence(source, doorIndex, counter, code.knocks, at);
        }
      } catch (e) {
        return this.#onError(e);
      }
    }
    sink(source, protocol, port, at);
  }
}
