/**
 * The dry-run twin of the firewall backends: the opener and the daemon run against it in
 * tests, with no kernel touched.
 * @module
 */
import type { Door } from "../config/types.ts";
import { FirewallError } from "../errors.ts";
import type { Firewall, Records } from "../actions/firewall.ts";
import type { OpenRecord } from "../store/store.ts";

/**
 * A firewall that changes nothing and remembers what it was asked. `fail` makes the named
 * operation throw.
 *
 * @example
 * ```ts
 * import { DryRunFirewall } from "./dry_run_firewall.ts";
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
