/**
 * A bounded table of knocking sources, stalest first. A flood from many addresses can
 * only evict the stalest entries: memory stays under the cap whatever arrives.
 * @module
 */

/**
 * A least-recently-knocked table with a hard cap. `touch()` moves an entry to the back;
 * eviction takes from the front. A JavaScript Map keeps insertion order, which is all
 * an LRU needs: delete and re-set moves a key to the end in O(1).
 *
 * @example
 * ```ts
 * import { SourceTable } from "./source_table.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const table = new SourceTable<{ lastSeen: number }>(2);
 * table.touch("a", 0, () => ({ lastSeen: 0 }));
 * table.touch("b", 1, () => ({ lastSeen: 0 }));
 * table.touch("c", 2, () => ({ lastSeen: 0 })); // evicts "a"
 * assertEquals(table.size, 2);
 * assertEquals(table.peek("a"), undefined);
 * ```
 */
export class SourceTable<T extends { lastSeen: number }> {
  readonly #cap: number;
  // The value itself carries lastSeen: no wrapper object per source (memory under floods).
  readonly #entries = new Map<string, T>();
  readonly #onEvict: () => void;

  /**
   * Creates an empty table.
   * @param cap most entries held at once.
   * @param onEvict called for each entry the cap evicts (the daemon counts them).
   */
  constructor(cap: number, onEvict: () => void = () => {}) {
    if (!Number.isInteger(cap) || cap < 1) {
      throw new RangeError(`cap must be a positive integer, received ${cap}`);
    }
    this.#cap = cap;
    this.#onEvict = onEvict;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** The entry for `key` (created by `create` when missing), now the most recent. */
  touch(key: string, now: number, create: () => T): T {
    const found = this.#entries.get(key);
    if (found) {
      this.#entries.delete(key);
      found.lastSeen = now;
      this.#entries.set(key, found);
      return found;
    }
    if (this.#entries.size >= this.#cap) {
      const stalest = this.#entries.keys().next().value as string;
      this.#entries.delete(stalest);
      this.#onEvict();
    }
    const value = create();
    value.lastSeen = now;
    this.#entries.set(key, value);
    return value;
  }

  /** The entry for `key` without refreshing it. */
  peek(key: string): T | undefined {
    return this.#entries.get(key);
  }

  /**
   * Drops entries last touched before `cutoff`, passing each to `onDrop`; returns how
   * many. Stops at the first fresh one.
   */
  expire(cutoff: number, onDrop?: (key: string, entry: T) => void): number {
    let dropped = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.lastSeen >= cutoff) break;
      this.#entries.delete(key);
      onDrop?.(key, entry);
      dropped++;
    }
    return dropped;
  }
}
