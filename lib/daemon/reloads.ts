/**
 * Reloads one at a time, whoever asks (SIGHUP, `sesame reload`): a request made while a
 * reload runs waits for exactly one more, shared by everyone who asked meanwhile, which
 * reads the config after their edit. Each asker learns that run's outcome.
 * @module
 */

/** What a reload did: the changes now in force, or why the running config stays. */
export type ReloadOutcome =
  | { readonly ok: true; readonly changes: readonly string[] }
  | {
    readonly ok: false;
    readonly error: string;
    /** The new config is in force (its rules, its doors), but something failed after. */
    readonly applied?: true;
  };

/** A reload whose config is in force, but whose knock ports could not be bound. */
export class AppliedButUnheard extends Error {
  /** @param message what failed. */
  constructor(message: string) {
    super(message);
    this.name = "AppliedButUnheard";
  }
}

/**
 * Runs reloads one at a time.
 *
 * @example Requests during a reload share the next one
 * ```ts
 * import { ReloadQueue } from "./reloads.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * let runs = 0;
 * const queue = new ReloadQueue(() => Promise.resolve({ ok: true, changes: [`run ${++runs}`] }));
 * const [a, b, c] = [queue.request(), queue.request(), queue.request()];
 * const first = await a;
 * assertEquals(first.ok ? first.changes : [], ["run 1"]);
 * assertEquals(await b, await c); // both asked while run 1 ran: both get run 2
 * assertEquals(runs, 2);
 * ```
 */
export class ReloadQueue {
  readonly #run: () => Promise<ReloadOutcome>;
  #running: Promise<ReloadOutcome> | undefined;
  #next: Promise<ReloadOutcome> | undefined;

  /** @param run one reload; it should not throw (a throw becomes a refusal). */
  constructor(run: () => Promise<ReloadOutcome>) {
    this.#run = run;
  }

  /** Asks for a reload that starts now or after the running one; resolves with its outcome. */
  request(): Promise<ReloadOutcome> {
    if (!this.#running) return this.#start();
    this.#next ??= this.#running.then(() => {
      this.#next = undefined;
      return this.#start();
    });
    return this.#next;
  }

  /** Resolves when no reload runs (the next queued one included). */
  async idle(): Promise<void> {
    while (this.#running || this.#next) await (this.#next ?? this.#running);
  }

  #start(): Promise<ReloadOutcome> {
    const run = this.#run().catch((e): ReloadOutcome => ({
      ok: false,
      error: String((e as Error)?.message ?? e),
    })).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }
}
