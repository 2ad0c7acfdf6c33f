/**
 * The twins of sesame's I/O seams, in one place, for tests of sesame and of programs
 * built on it: a manual clock, listeners without sockets, a dry-run firewall, a recording
 * command runner and the memory store.
 *
 * @example A daemon on the twins opens a door, and closes it when the clock passes `for`
 * ```ts
 * import { Daemon, validateConfig } from "../../mod.ts";
 * import { DryRunFirewall, ManualClock, MemoryListeners, RecordingRunner } from "./mod.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({
 *   doors: { legacy: { sequence: [7000, 8000], open: { for: "5s", command: ["/sbin/allow", "{ip}"] } } },
 * });
 * const clock = new ManualClock(Date.UTC(2026, 0, 1));
 * let listeners: MemoryListeners | undefined;
 * const daemon = await Daemon.start({
 *   config,
 *   clock,
 *   runner: new RecordingRunner(),
 *   firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
 *   listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
 * });
 * listeners!.knock("192.0.2.7", "tcp", 7000);
 * listeners!.knock("192.0.2.7", "tcp", 8000);
 * await daemon.settled();
 * assertEquals(daemon.openDoors().map((r) => r.source), ["192.0.2.7"]);
 * clock.advance(5000);
 * await daemon.settled();
 * assertEquals(daemon.openDoors(), []);
 * await daemon.stop();
 * ```
 * @module
 */
export { ManualClock } from "./manual_clock.ts";
export { MemoryListeners } from "./memory_listeners.ts";
export { DryRunFirewall } from "./dry_run_firewall.ts";
export { RecordingRunner } from "./recording_runner.ts";
export { MemoryStore } from "../store/store.ts";
