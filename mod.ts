/**
 * sesame: port knocking with rotating, one-time knock sequences.
 *
 * The library behind the `sesame` command, for programs that load a config, derive a
 * door's code, knock, or run the daemon themselves. Every name exported here is public
 * API; everything else is internal. The twins of the daemon's I/O seams (a manual clock,
 * memory listeners, a dry-run firewall, a recording runner) are in `./testing`.
 *
 * @example Derive a door's current code and knock it
 * ```ts
 * import { codeAt, parseConfig, sendKnock } from "./mod.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const config = parseConfig(
 *   'doors:\n  ssh:\n    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"\n    ports: "20000-20999"\n',
 *   "inline.yaml",
 * );
 * const { knocks } = await codeAt(config.doors[0], Date.now());
 * assertEquals(knocks.length, 4);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = listener.addr.port;
 * const accepted = listener.accept().then((conn) => conn.close());
 * assertEquals(await sendKnock({ port, protocol: "tcp" }, { host: "127.0.0.1" }), "accepted");
 * await accepted;
 * ```
 * @module
 */

// Configs: load, validate, and the doors they describe.
export { loadConfig, parseConfig, type ParseConfigOptions } from "./lib/config/load.ts";
export { validateConfig, type ValidateOptions } from "./lib/config/validate.ts";
export type {
  ClusterSettings,
  Config,
  Door,
  DoorBase,
  DoorPool,
  DoorUser,
  FirewallSpec,
  GatewaySpec,
  KnockDoor,
  NftSets,
  OpenAction,
  RotatingDoor,
  ScanPolicy,
  SpaDoor,
  SpaSpec,
  StaticDoor,
} from "./lib/config/types.ts";
export type { Address, Cidr } from "./lib/address.ts";

// Codes: a door's sequence at a time or for a counter, and the derivation behind it.
export { codeAt, codeForCounter, codeForCounterSync, type DoorCode } from "./lib/code.ts";
export {
  type BoundSource,
  counterAt,
  deriveSequence,
  deriveSequenceSync,
  type SequenceSpec,
} from "./lib/sequence.ts";
export { type AcceptWindow, acceptWindow, type WindowSpec } from "./lib/window.ts";
export { decodeSecret, encodeSecret, generateSecret } from "./lib/secret.ts";

// Knocking.
export {
  formatKnock,
  type HeardKnock,
  type HeardPacket,
  type Knock,
  parseKnock,
  type Proof,
  type Protocol,
  type ProtocolMode,
} from "./lib/knock.ts";
export { type KnockResult, sendKnock, type SendKnockOptions } from "./lib/net/sender.ts";
export { encodeSpa, type HmacDigest, type SpaKeys } from "./lib/spa/fko.ts";

// The daemon and its seams.
export {
  Daemon,
  type DaemonEvent,
  type DaemonOptions,
  type DaemonStatus,
} from "./lib/daemon/daemon.ts";
export { type Clock, systemClock, type Timer } from "./lib/clock.ts";
export type { RevokeRequest } from "./lib/daemon/admin.ts";
export type { FleetGrant, FleetStatus } from "./lib/cluster/fleet.ts";
export type { Grant } from "./lib/cluster/fleet_keys.ts";
export type { ReloadOutcome } from "./lib/daemon/reloads.ts";
export type { LogSettings } from "./lib/config/log_target.ts";
export type { LogTarget } from "./lib/log_sinks.ts";
export type { DoorEvent } from "./lib/daemon/report.ts";
export {
  blamesClient,
  type Decision,
  type RefusalEvidence,
  type RefusalReason,
} from "./lib/engine/decision.ts";
export type { Evidence } from "./lib/engine/scan_detector.ts";
export type { CodeOwner, UsedCode } from "./lib/engine/used_codes.ts";
export { Counters, type DoorCounts, Histogram } from "./lib/counters.ts";
export {
  askDaemon,
  type ControlAnswer,
  controlPath,
  type ControlRequest,
} from "./lib/daemon/control.ts";
export type { InstanceLock } from "./lib/daemon/instance_lock.ts";
export type {
  FirewallGrant,
  LoadResult,
  OpenRecord,
  SpaDigest,
  Store,
  StoreChanges,
  StoredCode,
  StoredState,
} from "./lib/store/store.ts";
export { MemoryStore } from "./lib/store/store.ts";
export { readStore, SqliteStore, type StoreSnapshot } from "./lib/store/sqlite.ts";
export type {
  BindFailure,
  Endpoint,
  KnockSink,
  Listeners,
  ListenersFactory,
  ListenersOptions,
} from "./lib/net/listeners.ts";
export { SocketListeners } from "./lib/net/listeners.ts";
export type { Firewall, Firewalls, Records, StartOptions } from "./lib/actions/firewall.ts";
export type { CommandResult, CommandRunner, RunOptions, Session } from "./lib/actions/runner.ts";
export { nftRuleset, type RulesetOptions } from "./lib/actions/nft_rules.ts";

// Errors a caller catches.
export {
  ConfigError,
  type ConfigIssue,
  FirewallError,
  formatIssue,
  type SourcePosition,
  StateFileError,
  UsageError,
} from "./lib/errors.ts";
