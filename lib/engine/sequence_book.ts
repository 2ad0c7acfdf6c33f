/**
 * The sequences the engine matches knocks against: per static door its one sequence, per
 * unbound rotating door one per counter of the window, and per source the sequences of
 * `bind_source` doors (derived from the source's address, kept on its state). Encoded once
 * ({@link encodeSequence}); old counters dropped as the window moves.
 * @module
 */
import type { Door, RotatingDoor } from "../config/types.ts";
import type { Knock } from "../knock.ts";
import { SKEW_PROBE } from "../window.ts";
import type { SourceState, Tracked } from "./source_state.ts";
import { encodeSequence } from "./tracker.ts";

/** The counter under which a static door's one sequence is kept. */
export const STATIC_COUNTER = -1;

/** A door that takes knocks (not SPA). */
type KnockDoor = Exclude<Door, { kind: "spa" }>;

/** Where the engine looks sequences up. */
export class SequenceBook {
  readonly #doors: readonly KnockDoor[];
  /** Unbound rotating doors: counter → encoded sequence. Static doors: STATIC_COUNTER. */
  readonly #sequences: Map<number, Int32Array>[];

  /** @param doors the engine's doors, in its order. */
  constructor(doors: readonly KnockDoor[]) {
    this.#doors = doors;
    this.#sequences = doors.map((door) =>
      new Map(door.kind === "static" ? [[STATIC_COUNTER, encodeSequence(door.sequence)]] : [])
    );
  }

  /** An unbound door's sequence for `counter` (a static door's under STATIC_COUNTER). */
  get(door: number, counter: number): Int32Array | undefined {
    return this.#sequences[door].get(counter);
  }

  /** A `bind_source` door's sequence for this source and `counter`. */
  bound(state: SourceState, door: number, counter: number): Int32Array | undefined {
    return state.bound?.get(counter * this.#doors.length + door);
  }

  /** The sequence a tracked attempt follows. */
  of(state: SourceState, t: Tracked): Int32Array | undefined {
    const door = this.#doors[t.door];
    return door.kind === "rotating" && door.bindSource
      ? this.bound(state, t.door, t.counter)
      : this.get(t.door, t.counter);
  }

  /** Installs an unbound door's sequence for a counter; drops counters that left the window. */
  set(door: number, counter: number, knocks: readonly Knock[], now: number): void {
    const spec = this.#doors[door] as RotatingDoor;
    const map = this.#sequences[door];
    map.set(counter, encodeSequence(knocks));
    const lo = Math.floor(now / spec.periodMs) - spec.skew;
    for (const c of map.keys()) if (c < lo - SKEW_PROBE) map.delete(c);
  }

  /** Counters installed for an unbound door, ascending. */
  installed(door: number): number[] {
    return [...this.#sequences[door].keys()].sort((a, b) => a - b);
  }

  /** Installs a `bind_source` door's sequence on a source's state; drops its old counters. */
  setBound(
    state: SourceState,
    door: number,
    counter: number,
    knocks: readonly Knock[],
    now: number,
  ): void {
    const bound = state.bound ??= new Map();
    const spec = this.#doors[door] as RotatingDoor;
    const lo = Math.floor(now / spec.periodMs) - spec.skew;
    const n = this.#doors.length;
    for (const key of bound.keys()) {
      if (key % n === door && Math.floor(key / n) < lo) bound.delete(key);
    }
    bound.set(counter * n + door, encodeSequence(knocks));
  }

  /** True when `code` is the first knock of a sequence in the window of one of `doors`. */
  begins(state: SourceState, doors: readonly number[], code: number, now: number): boolean {
    return this.#some(state, doors, now, (seq) => seq[0] === code, true);
  }

  /**
   * True when `code` is in a rotating sequence of the window whose counter `used` says is
   * not used yet (a code still to come, whose knocks may arrive out of order).
   */
  inFresh(
    state: SourceState,
    doors: readonly number[],
    code: number,
    now: number,
    used: (door: number, counter: number) => boolean,
  ): boolean {
    return this.#some(
      state,
      doors,
      now,
      (seq, d, c) => seq.includes(code) && !used(d, c),
      false,
    );
  }

  /** Whether `test` holds for a sequence of the window of one of `doors`. */
  #some(
    state: SourceState,
    doors: readonly number[],
    now: number,
    test: (seq: Int32Array, door: number, counter: number) => boolean,
    withStatic: boolean,
  ): boolean {
    for (const d of doors) {
      const door = this.#doors[d];
      if (door.kind === "static") {
        const seq = this.get(d, STATIC_COUNTER);
        if (withStatic && seq && test(seq, d, STATIC_COUNTER)) return true;
        continue;
      }
      const t = Math.floor(now / door.periodMs);
      for (let c = t - door.skew; c <= t + door.skew; c++) {
        const seq = door.bindSource ? this.bound(state, d, c) : this.get(d, c);
        if (seq && test(seq, d, c)) return true;
      }
    }
    return false;
  }
}
