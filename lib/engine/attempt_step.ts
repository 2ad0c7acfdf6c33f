/**
 * One knock against the attempts a source has under way: advances the attempt of one door
 * and counter, and notes for the engine what the knock did (why an attempt ended, whether
 * it held datagrams, whether the knock was a twin of one already taken).
 * @module
 */
import type { Counters } from "../counters.ts";
import { removeAt, type SourceState, type Tracked } from "./source_state.ts";
import { advance, type AdvanceOptions, type Progress } from "./tracker.ts";

/** What one knock did to one tracked sequence: nothing, a step, or the last step. */
export const MISS = 0, HIT = 1, COMPLETE = 2;
/** One of {@link MISS}, {@link HIT}, {@link COMPLETE}. */
export type StepResult = typeof MISS | typeof HIT | typeof COMPLETE;

/**
 * Steps attempts, and holds the notes of the knock being handled; the engine reads them
 * after its steps, and calls {@link AttemptStep.begin} before the next knock.
 */
export class AttemptStep {
  /** Why an attempt this knock dropped failed: a wrong knock, or too late. */
  dropped: "wrong" | "timeout" = "wrong";
  /** An attempt on the current door was lost to the order of delivery (reset per door). */
  orderLost = false;
  /** An attempt this knock dropped held a UDP knock. */
  droppedUdp = false;
  /** The attempt this knock completed held a UDP knock. */
  completedUdp = false;
  /** This knock equals a knock the source made lately that fitted. */
  recent = false;
  /** Some attempt skipped this knock as a twin. */
  twin = false;
  readonly #counters: Counters;

  /**
   * Steps attempts, counting reorder waits in `counters`.
   * @param counters where the disorder of delivery is observed.
   */
  constructor(counters: Counters) {
    this.#counters = counters;
  }

  /** Clears the notes of the last knock; `recent`: this knock is a recent match's twin. */
  begin(recent: boolean): void {
    this.dropped = "wrong";
    this.droppedUdp = false;
    this.twin = false;
    this.recent = recent;
  }

  /**
   * Advances the attempt of `state` on one door and counter with one knock (`code`, as
   * knockCode makes it) whose sequence is `seq`; returns whether the knock missed it, took
   * a step, or completed it.
   */
  step(
    state: SourceState,
    door: number,
    counter: number,
    seq: Int32Array,
    code: number,
    now: number,
    options: AdvanceOptions,
  ): StepResult {
    const list = state.tracked;
    let i = 0;
    if (list) {
      while (i < list.length && (list[i].door !== door || list[i].counter !== counter)) i++;
    }
    const found = list && i < list.length ? list[i] : undefined;
    // An early knock whose gap did not fill within the window: advance() drops the attempt.
    if (
      found && found.held !== 0 && now - found.heldAt > options.reorderWindowMs &&
      now - found.firstAt <= options.timeoutMs
    ) this.orderLost = true;
    // A twin of a knock this attempt already took (matched, or held early): skipped, the
    // attempt goes on; unless it is exactly the knock the attempt expects next.
    if (found && this.recent && seq[found.position] !== code) {
      // A twin only when no place still open in the sequence could take it (a static
      // sequence may repeat a port: [7000, 8000, 7000, 9000]).
      let taken = false;
      let open = false;
      for (let j = 0; j < seq.length; j++) {
        if (seq[j] !== code) continue;
        if (j < found.position || (found.held & (1 << j)) !== 0) taken = true;
        else open = true;
      }
      if (taken && !open) {
        this.twin = true;
        return HIT;
      }
    }
    const step = advance(found, seq, code, now, options);
    if (step.kind === "none") return MISS;
    const udp = (code & 1) === 1;
    if (step.kind === "complete" || !step.progress) {
      if (!found) return step.kind === "complete" ? (this.completedUdp = udp, COMPLETE) : MISS;
      removeAt(state, i);
      if (step.kind === "complete") {
        if (found.held !== 0) this.#counters.reorderWait.observe((now - found.heldAt) / 1000);
        this.completedUdp = udp || found.udp;
        return COMPLETE;
      }
      // An attempt dropped: too late, or a knock that fits it nowhere (an attempt lost to
      // the delivery's order is reported apart, above).
      if (now - found.firstAt > options.timeoutMs) this.dropped = "timeout";
      if (found.udp) this.droppedUdp = true;
      return MISS;
    }
    const progress: Progress = step.progress;
    // An early knock's gap filled in time: how long it waited is the delivery's disorder.
    if (
      found && (found.held & ~progress.held) !== 0 &&
      now - found.heldAt <= options.reorderWindowMs && now - found.firstAt <= options.timeoutMs
    ) {
      this.#counters.reorderWait.observe((now - found.heldAt) / 1000);
    }
    if (found) {
      // A restart begins a new attempt; otherwise the attempt goes on.
      found.udp = step.kind === "reset" ? udp : found.udp || udp;
      found.position = progress.position;
      found.firstAt = progress.firstAt;
      found.held = progress.held;
      found.heldAt = progress.heldAt;
    } else {
      const entry: Tracked = { door, counter, ...progress, udp };
      // An array literal holds exactly one element; push on [] would reserve 17 (memory per source).
      if (list) list.push(entry);
      else state.tracked = [entry];
    }
    return HIT;
  }
}
