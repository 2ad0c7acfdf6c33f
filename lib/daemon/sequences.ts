/**
 * Every derivation the daemon makes, off the knock path: the sequences of unbound
 * rotating doors for the window (one counter ahead, and the skew probes), and for
 * `bind_source` doors the sequences of each new source, while its knocks wait in order in
 * a short queue. Derivation is async (WebCrypto); the engine stays synchronous.
 * @module
 */
import { parseAddress } from "../address.ts";
import { codeForCounter } from "../code.ts";
import type { KnockEngine, MissingSequence } from "../engine/engine.ts";
import type { Protocol } from "../knock.ts";
import { acceptWindow, SKEW_PROBE } from "../window.ts";

/** Feeds one knock to the engine (the daemon's decision path). */
export type KnockSink = (source: string, protocol: Protocol, port: number, at: number) => void;

interface QueuedKnock {
  readonly protocol: Protocol;
  readonly port: number;
  readonly at: number;
}

/** Knocks held per source while its bind_source sequences are derived. */
const MAX_QUEUED_KNOCKS = 32;

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
  readonly #pending = new Map<string, QueuedKnock[]>();

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
   * Passes a knock on to `sink`, at once unless a `bind_source` door needs this source's
   * sequences first: then it waits, in order, with the source's other knocks, until they
   * are derived. A knock is never dropped unless the queue is full.
   */
  knock(source: string, protocol: Protocol, port: number, at: number, sink: KnockSink): void {
    const queued = this.#pending.get(source);
    if (queued) {
      if (queued.length < MAX_QUEUED_KNOCKS) queued.push({ protocol, port, at });
      return;
    }
    const missing = this.#engine.missingBound(source, protocol, port, at);
    if (missing.length === 0) return sink(source, protocol, port, at);
    this.#pending.set(source, [{ protocol, port, at }]);
    this.#derive(source, missing, at, sink);
  }

  #derive(source: string, missing: readonly MissingSequence[], at: number, sink: KnockSink): void {
    const engine = this.#engine;
    const address = parseAddress(source);
    Promise.all(missing.map(async ({ doorIndex, counter }) => {
      const code = await codeForCounter(engine.doors[doorIndex], counter, address);
      engine.setBoundSequence(source, doorIndex, counter, code.knocks, at);
    })).then(() => this.#release(source, sink), (e) => {
      this.#pending.delete(source);
      this.#onError(e);
    });
  }

  /** Feeds a source's queue in order; a knock that needs a later counter (a boundary passed) waits again. */
  #release(source: string, sink: KnockSink): void {
    const queue = this.#pending.get(source) ?? [];
    for (let i = 0; i < queue.length; i++) {
      const k = queue[i];
      const missing = this.#engine.missingBound(source, k.protocol, k.port, k.at);
      if (missing.length > 0) {
        this.#pending.set(source, queue.slice(i));
        return this.#derive(source, missing, k.at, sink);
      }
      sink(source, k.protocol, k.port, k.at);
    }
    this.#pending.delete(source);
  }
}
