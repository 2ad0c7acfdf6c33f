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
  /** In order: batches of items still filling, and exclusive jobs between them. */
  readonly #jobs: Job<T>[] = [];
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
      let last = this.#jobs[this.#jobs.length - 1];
      if (!last || last.kind !== "batch") {
        last = { kind: "batch", items: [], waiters: [] };
        this.#jobs.push(last);
      }
      last.items.push(item);
      last.waiters.push({ resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  /**
   * Runs `fn` alone: after the batches added before it, before those added after it
   * (a firewall's whole-table replacement must not interleave with openings).
   */
  exclusive<R>(fn: () => Promise<R>): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#jobs.push({ kind: "exclusive", run: () => fn().then(resolve, reject) });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    for (let job = this.#jobs.shift(); job; job = this.#jobs.shift()) {
      if (job.kind === "exclusive") {
        await job.run();
        continue;
      }
      const { items, waiters } = job;
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

type Job<T> =
  | {
    readonly kind: "batch";
    readonly items: T[];
    readonly waiters: { resolve: () => void; reject: (e: Error) => void }[];
  }
  | { readonly kind: "exclusive"; readonly run: () => Promise<void> };
