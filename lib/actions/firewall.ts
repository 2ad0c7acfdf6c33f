/**
 * The seam between the opener and a kernel firewall: one interface, one file per backend
 * (nft.ts, iptables.ts) and a dry-run twin for tests. A backend lets one source through a
 * door's protected ports until a time, and keeps everyone else out while sesame runs and
 * after it stops.
 * @module
 */
import type { Door } from "../config/types.ts";
import { FirewallError } from "../errors.ts";
import type { OpenRecord } from "../store/store.ts";

/** A kernel firewall backend, with a lifecycle: start, open/close, shutdown. */
export interface Firewall {
  /**
   * Installs sesame's rules for `doors` in one transaction, replacing earlier ones, with
   * the still-open `records` let through for their remaining time (start and reload).
   * Throws when it cannot: the daemon must not run with unprotected ports.
   */
  start(
    doors: readonly Door[],
    records: Records,
    options?: StartOptions,
  ): Promise<void>;
  /** Lets `record.source` through `record`'s ports until `record.until` (extends when already open). */
  open(record: OpenRecord): Promise<void>;
  /** Removes `record.source`'s access (backends whose kernel does not expire it by itself). */
  close(record: OpenRecord): Promise<void>;
  /** Removes `record.source`'s access now, before its time (`sesame revoke`), on every backend. */
  revoke(record: OpenRecord): Promise<void>;
  /**
   * True while sesame's rules stand as the last {@link start} left them, compared by
   * structure: elements and their expiries are not changes.
   */
  intact(): Promise<boolean>;
  /**
   * Calls `onChange` soon after anything may have changed sesame's rules (another tool
   * reloading the firewall); the caller then asks {@link intact}. Until {@link shutdown}.
   */
  watch(onChange: () => void): void;
  /** Releases what the backend holds (processes, timers); the rules stay, so the ports stay protected. */
  shutdown(): Promise<void>;
}

/**
 * The doors still open, for {@link Firewall.start}: a list, or a function read when the
 * rules are written (so an opening made meanwhile is not left out).
 */
export type Records = readonly OpenRecord[] | (() => readonly OpenRecord[]);

/** The records now. */
export function recordsNow(records: Records): readonly OpenRecord[] {
  return typeof records === "function" ? records() : records;
}

/** Options for {@link Firewall.start}. */
export interface StartOptions {
  /**
   * A repair after another tool removed sesame's rules: put back what can be put back even
   * when part of the config cannot be applied (then throw). @default false
   */
  readonly repair?: boolean;
}

/** The firewall backends by kind. */
export type Firewalls = Readonly<Record<"nft" | "iptables", Firewall>>;

/**
 * A firewall that changes nothing and remembers what it was asked: tests, and the
 * non-root demo. `fail` makes the named operation throw.
 *
 * @example
 * ```ts
 * import { DryRunFirewall } from "./firewall.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const fw = new DryRunFirewall();
 * await fw.open({ door: "ssh", source: "192.0.2.7", until: 1000, close: null });
 * assertEquals(fw.calls, ["open ssh 192.0.2.7"]);
 * ```
 */
export class DryRunFirewall implements Firewall {
  /** Every call, as `operation door source` (start: `start N doors`). */
  readonly calls: string[] = [];
  /** Operations that throw a FirewallError. */
  readonly fail: Set<"start" | "open" | "close"> = new Set();
  /** What {@link intact} answers: set it to false as another tool flushing the rules would. */
  standing = true;
  /** The callback given to {@link watch}: tests call it as a firewall change would. */
  changed: (() => void) | undefined;

  async start(doors: readonly Door[], _records: Records): Promise<void> {
    await this.#call("start", `start ${doors.length} doors`);
    this.standing = true;
  }

  open(record: OpenRecord): Promise<void> {
    return this.#call("open", `open ${record.door} ${record.source}`);
  }

  close(record: OpenRecord): Promise<void> {
    return this.#call("close", `close ${record.door} ${record.source}`);
  }

  revoke(record: OpenRecord): Promise<void> {
    return this.#call("close", `revoke ${record.door} ${record.source}`);
  }

  intact(): Promise<boolean> {
    return Promise.resolve(this.standing);
  }

  watch(onChange: () => void): void {
    this.changed = onChange;
  }

  shutdown(): Promise<void> {
    this.changed = undefined;
    return Promise.resolve();
  }

  async #call(operation: "start" | "open" | "close", text: string): Promise<void> {
    this.calls.push(text);
    await Promise.resolve();
    if (this.fail.has(operation)) throw new FirewallError(`dry run: ${operation} fails`);
  }
}
