/**
 * Reloads one at a time, whoever asks (SIGHUP, `sesame reload`): a request made while a
 * reload runs waits for exactly one more, shared by everyone who asked meanwhile, which
 * reads the config after their edit. Each asker learns that run's outcome.
 * @module
 */
import type { Config } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";

const log = logger("daemon");

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

/**
 * One reload from the config file, as the queue runs it: read (a file that does not load
 * is refused and said), then applied, unless a stop began meanwhile (nothing is applied
 * after a stop); every failure becomes an outcome.
 */
export function reloadFromFile(parts: {
  /** Reads the config file again; absent: the daemon has none. */
  readonly load?: () => Promise<Config>;
  /** True once the daemon is stopping. */
  readonly stopping: () => boolean;
  /** Applies a config; resolves with what changed. */
  readonly reload: (config: Config) => Promise<string[]>;
}): () => Promise<ReloadOutcome> {
  return async () => {
    const { load, stopping, reload } = parts;
    if (!load) return { ok: false, error: "this daemon has no config file to read again" };
    if (stopping()) return { ok: false, error: "the daemon is stopping" };
    let config: Config;
    try {
      config = await load();
    } catch (e) {
      log.error("reload refused, the running config stays:\n{error}", {
        error: (e as Error).message,
      });
      return { ok: false, error: (e as Error).message };
    }
    // A stop that began while the file was read wins: nothing is applied after it.
    if (stopping()) return { ok: false, error: "the daemon is stopping" };
    try {
      return { ok: true, changes: await reload(config) };
    } catch (e) {
      if (e instanceof AppliedButUnheard) return { ok: false, error: e.message, applied: true };
      const error = e instanceof ConfigError
        ? e.issues.map((i) => i.message).join("; ")
        : (e as Error).message;
      return { ok: false, error };
    }
  };
}

/**
 * What a reload may not change: the intake (its rules and listeners change together) and
 * the cluster (its connection and watch are made at start).
 * @throws {ConfigError} naming the key, with the restart that applies it.
 */
export function assertReloadable(running: Config, next: Config): void {
  for (const [key, path] of [["cluster", "cluster"], ["capture", "listen.capture"]] as const) {
    if (JSON.stringify(next[key]) !== JSON.stringify(running[key])) {
      throw new ConfigError([{
        path,
        message: `${
          key === "cluster" ? "the cluster settings" : "the intake"
        } change only at a restart (systemctl restart sesame)`,
      }]);
    }
  }
}
