/**
 * sesame: port knocking with rotating, one-time knock sequences.
 *
 * The library behind the `sesame` command: sequence derivation (sequence v1), config
 * parsing with located errors, the pure per-source state machine and the knock engine.
 *
 * @example Derive a door's current code
 * ```ts ignore
 * import { codeAt, loadConfig } from "./mod.ts";
 * const config = await loadConfig("/etc/sesame/sesame.yaml");
 * const { knocks } = await codeAt(config.doors[0], Date.now());
 * ```
 * @module
 */
export * from "./lib/address.ts";
export * from "./lib/code.ts";
export * from "./lib/config/load.ts";
export type * from "./lib/config/types.ts";
export {
  DEFAULTS,
  type KeyPath,
  parseKnock,
  validateConfig,
  type ValidateOptions,
} from "./lib/config/validate.ts";
export * from "./lib/duration.ts";
export * from "./lib/engine.ts";
export * from "./lib/errors.ts";
export * from "./lib/ports.ts";
export * from "./lib/secret.ts";
export * from "./lib/sequence.ts";
export * from "./lib/sources.ts";
export * from "./lib/tracker.ts";
export * from "./lib/net/sender.ts";
export { Daemon, type DaemonEvent, type DaemonOptions } from "./lib/daemon.ts";
export type { FirewallGrant, OpenRecord, State } from "./lib/state.ts";
export type { DoorEvent } from "./lib/actions/doorkeeper.ts";
export type { BindFailure, Endpoint } from "./lib/net/listeners.ts";
export type { CommandResult, CommandRunner } from "./lib/actions/runner.ts";
export { nftRuleset } from "./lib/actions/nft.ts";
export { type IptablesFamily, iptablesScript } from "./lib/actions/iptables.ts";
