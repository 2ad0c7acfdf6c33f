/**
 * Knocks heard twice: the client's kernel retransmits a SYN that was dropped (after about
 * 1, 3 and 7 s, when later knocks may already have matched), and a browser opens several
 * connections per fetch. A knock equal to one of the source's recent knocks that fitted a
 * sequence, within {@link DUPLICATE_MS}, is a twin: an attempt that already took it skips it
 * (no progress, no miss, no scan evidence) unless it is exactly the knock that attempt
 * expects next (a static sequence may repeat a port, `[7000, 7000, 8000]`; rotating
 * sequences never do, docs/SEQUENCE.md). With no attempt under way (one just completed), a
 * twin is ignored unless it may begin a new attempt or belongs to a code not used yet (the
 * next code may share a port with the last, and its knocks may arrive out of order).
 * @module
 */

/** How long a matched knock's twin is ignored, ms. */
export const DUPLICATE_MS = 10_000;
/** Recent matched knocks kept per source (code, time pairs). */
const KEPT = 8;

/** What a source keeps of its matched knocks: code, time, code, time … newest last. */
export interface RecentKnocks {
  recent?: number[];
}

/**
 * True when `code` matched lately for this source.
 *
 * @example
 * ```ts
 * import { recentlyMatched, rememberMatch } from "./duplicates.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const state = {};
 * rememberMatch(state, 14000, 1_000);
 * assertEquals(recentlyMatched(state, 14000, 2_000), true); // the SYN again, 1 s later
 * assertEquals(recentlyMatched(state, 14002, 2_000), false);
 * assertEquals(recentlyMatched(state, 14000, 12_001), false); // too late to be a twin
 * ```
 */
export function recentlyMatched(state: RecentKnocks, code: number, now: number): boolean {
  const recent = state.recent;
  if (!recent) return false;
  for (let i = 0; i < recent.length; i += 2) {
    if (recent[i] === code && now - recent[i + 1] <= DUPLICATE_MS && now >= recent[i + 1]) {
      return true;
    }
  }
  return false;
}

/** Notes that `code` fitted a sequence of this source at `now`. */
export function rememberMatch(state: RecentKnocks, code: number, now: number): void {
  const recent = state.recent ??= [];
  if (recent.length >= KEPT * 2) recent.splice(0, 2);
  recent.push(code, now);
}
