/**
 * One batcher for the firewall backends: items added while a flush runs wait and go into
 * the next flush together, so a burst costs a few transactions, not one per item, and
 * flushes never overlap (a long-lived nft session takes one line at a time).
 * @module
 */

/**
 * Collects items and flushes them in batches, one flush at a time.
 *
 * @example
 * ```ts
 * import { Batcher } from "./batcher.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const batches: number[][] = [];
 * const batcher = new Batcher<number>(async (items) => { batches.push(items); await Promise.resolve(); });
 * await Promise.all([batcher.add(1), batcher.add(2), batcher.add(3)]);
 * assertEquals(batches, [[1], [2, 3]]); // 2 and 3 waited for the first flush
 * ```
 */
export class Batcher<T> {
  readonly #flush: (items: T[]) => Promise<void | (Error | undefined)[]>;
  #items: T[] = [];
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #running = false;

  /**
   * @param flush writes one batch; its rejection rejects every item of the batch, or it
   *   returns one error (or undefined) per item, for a batch that partly failed.
   */
  constructor(flush: (items: T[]) => Promise<void | (Error | undefined)[]>) {
    this.#flush = flush;
  }

  /** Adds an item; resolves when the batch holding it has been flushed. */
  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#items.push(item);
      this.#waiters.push({ resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    while (this.#items.length > 0) {
      const items = this.#items;
      const waiters = this.#waiters;
      this.#items = [];
      this.#waiters = [];
      try {
        const errors = await this.#flush(items);
        waiters.forEach((w, i) => {
          const error = errors?.[i];
          if (error) w.reject(error);
          else w.resolve();
        });
      } catch (e) {
        for (const w of waiters) w.reject(e as Error);
      }
    }
    this.#running = false;
  }
}
