/**
 * sesame: port knocking with rotating, one-time knock sequences.
 *
 * The library behind the `sesame` command: sequence derivation (sequence v1), config
 * parsing with located errors, the pure per-source state machine and knock engine, and
 * the daemon with its seams (store, firewall, listeners) and their in-memory twins.
 * Every name exported here is public API; everything else is internal.
 *
 * @example Derive a door's current code
 * ```ts
 * import { codeAt, parseConfig } from "./mod.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const config = parseConfig(
 *   'doors:\n  ssh:\n    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"\n    ports: "20000-20999"\n',
 *   "inline.yaml",
 * );
 * const { knocks } = await codeAt(config.doors[0], Date.now());
 * assertEquals(knocks.length, 4);
 * ```
 * @module
 */
export {
  type Address,
  type Cidr,
  cidrContains,
  isPermitted,
  maskBytes,
  normalizeHost,
  parseAddress,
  parseCidr,
} from "./lib/address.ts";
export {
  formatKnock,
  type Knock,
  parseKnock,
  type Protocol,
  type ProtocolMode,
} from "./lib/knock.ts";
export {
  type BoundSource,
  counterAt,
  deriveSequence,
  deriveSequenceSync,
  importSecret,
  type SequenceSpec,
} from "./lib/sequence.ts";
export { type AcceptWindow, acceptWindow, counterForKnock, type WindowSpec } from "./lib/window.ts";
export { codeAt, codeForCounter, codeForCounterSync, type DoorCode } from "./lib/code.ts";
export { loadConfig, parseConfig, type ParseConfigOptions } from "./lib/config/load.ts";
export { validateConfig, type ValidateOptions } from "./lib/config/validate.ts";
export { DEFAULTS } from "./lib/config/schema.ts";
export type { KeyPath } from "./lib/config/checker.ts";
export type {
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
export { userDoors } from "./lib/config/types.ts";
export {
  ConfigError,
  type ConfigIssue,
  FirewallError,
  formatIssue,
  type SourcePosition,
  StateFileError,
  UsageError,
} from "./lib/errors.ts";
export { formatDuration, parseDuration } from "./lib/duration.ts";
export { parsePortList, type PortListResult } from "./lib/ports.ts";
export { decodeSecret, encodeSecret, generateSecret } from "./lib/secret.ts";
export {
  advance,
  type AdvanceOptions,
  encodeSequence,
  type KnockCode,
  knockCode,
  type Progress,
  type Step,
} from "./lib/engine/tracker.ts";
export {
  type Decision,
  KnockEngine,
  type KnockEngineOptions,
  type MissingSequence,
  type RefusalReason,
} from "./lib/engine/engine.ts";
export { type CodeOwner, type UsedCode, UsedCodes } from "./lib/engine/used_codes.ts";
export type { Evidence } from "./lib/engine/scan_detector.ts";
export { Counters, type DoorCounts, Histogram } from "./lib/counters.ts";
export {
  Daemon,
  type DaemonEvent,
  type DaemonOptions,
  type DaemonStatus,
} from "./lib/daemon/daemon.ts";
export {
  askDaemon,
  type ControlAnswer,
  controlPath,
  type ControlRequest,
} from "./lib/daemon/control.ts";
export { type MetricsView, renderMetrics } from "./lib/daemon/metrics.ts";
export { type InstanceLock, takeInstanceLock } from "./lib/daemon/instance_lock.ts";
export type { DoorEvent } from "./lib/daemon/opener.ts";
export {
  type FirewallGrant,
  type LoadResult,
  MemoryStore,
  type OpenRecord,
  type SpaDigest,
  type Store,
  type StoreChanges,
  type StoredCode,
  type StoredState,
} from "./lib/store/store.ts";
export { readStore, SqliteStore, type StoreSnapshot } from "./lib/store/sqlite.ts";
export {
  type BindFailure,
  type Endpoint,
  type KnockHandler,
  type Listeners,
  type ListenersFactory,
  MemoryListeners,
  type PacketHandler,
  SocketListeners,
} from "./lib/net/listeners.ts";
export { type KnockResult, sendKnock, type SendKnockOptions } from "./lib/net/sender.ts";
export {
  DryRunFirewall,
  type Firewall,
  type Firewalls,
  type Records,
  recordsNow,
  type StartOptions,
} from "./lib/actions/firewall.ts";
export type { CommandResult, CommandRunner, Session } from "./lib/actions/runner.ts";
export { nftRuleset } from "./lib/actions/nft.ts";
export { type IptablesFamily, iptablesScript } from "./lib/actions/iptables.ts";
export {
  b64,
  decodeSpa,
  encodeSpa,
  HMAC_DIGESTS,
  type HmacDigest,
  type SpaDecodeError,
  type SpaKeys,
  type SpaPacket,
  verifySpaHmac,
} from "./lib/spa/fko.ts";
export { type SpaDecision, SpaGate } from "./lib/spa/gate.ts";
