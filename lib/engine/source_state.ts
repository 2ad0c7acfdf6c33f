/**
 * What the engine keeps per source: its progress in each (door, counter) it is part way
 * through, its misses for the scan detector, its bound sequences, its last UDP knock.
 * Plain objects updated in place, few allocations: a flood is mostly sources with none.
 * @module
 */
import type { MissLog } from "./scan_detector.ts";
import type { RecentKnocks } from "./duplicates.ts";

/** One source's progress in one (door, counter), updated in place: one object per entry. */
export interface Tracked {
  readonly door: number;
  readonly counter: number;
  position: number;
  firstAt: number;
  held: number;
  heldAt: number;
  /** A knock of this attempt was a UDP datagram (forgeable). */
  udp: boolean;
}

/** One source as the engine keeps it. */
export interface SourceState extends MissLog, RecentKnocks {
  /** Last knock, ms (the table's LRU order). */
  lastSeen: number;
  /** Progress per (door, counter); made on the first progress, dropped when empty (floods are mostly misses). */
  tracked: Tracked[] | null;
  /** Sequences of bind_source doors for this source, keyed counter * doorCount + door. */
  bound?: Map<number, Int32Array>;
  /** Its last UDP knock, ms: failures soon after one rest on forgeable evidence. */
  lastUdp: number;
}

/** A source seen for the first time. */
export function newSource(): SourceState {
  return { lastSeen: 0, tracked: null, seen: null, seenSince: 0, lastUdp: -Infinity };
}

/** Removes the `i`th tracked entry (order does not matter: swapped with the last). */
export function removeAt(state: SourceState, i: number): void {
  const list = state.tracked!;
  list[i] = list[list.length - 1];
  list.pop();
  if (list.length === 0) state.tracked = null;
}

/** Drops `door`'s entries of counters below `lo` (left the window). */
export function dropBelow(list: Tracked[], door: number, lo: number): void {
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i].door === door && list[i].counter < lo) {
      list[i] = list[list.length - 1];
      list.pop();
    }
  }
}
