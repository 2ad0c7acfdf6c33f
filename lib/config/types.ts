/**
 * The validated configuration: what the daemon, the client and `code` work from.
 * Produced only by {@link validateConfig}; every field is already checked.
 * @module
 */
import type { LogSettings } from "./log_target.ts";
import type { Cidr } from "../address.ts";
import type { Knock, Protocol, ProtocolMode } from "../knock.ts";
import type { DoorPool } from "../pool.ts";
import type { SpaKeys } from "../spa/fko.ts";

export type { DoorPool };

/** What happens when a door opens. */
export interface OpenAction {
  /** How long the door stays open, in ms. */
  readonly forMs: number;
  /** argv run on open, with `{ip}` and `{door}` substituted; never through a shell. */
  readonly command?: readonly string[];
  /** argv run when the door closes (after `forMs`). */
  readonly closeCommand?: readonly string[];
  /** Time limit for each command, in ms; a command still running then is killed. */
  readonly commandTimeoutMs: number;
  /** Log the open and close (always on when no other action is set). */
  readonly log: boolean;
  /** Let the source through sesame's nftables table to these ports; the kernel closes it. */
  readonly nft?: FirewallSpec;
  /** Let the source through sesame's iptables chain to these ports; closed after `forMs`. */
  readonly iptables?: FirewallSpec;
}

/**
 * A door on a router that opens a host behind it: `forward` lets the knocker's new
 * connections to the inside host's ports through the forward hook; `dnat` forwards the
 * knocker's new connections to the router's `port` on to the inside host (port forwarding).
 */
export interface GatewaySpec {
  /** Discriminant. */
  readonly kind: "forward" | "dnat";
  /**
   * The inside host's addresses (canonical text), at most one per family: a dual-stack
   * host is named by both, or its other family's address would pass ungated.
   */
  readonly hosts: readonly { readonly host: string; readonly family: 4 | 6 }[];
  /** The inside host's ports (dnat: exactly one). */
  readonly toPorts: readonly number[];
  /** Source NAT to the router's address, for inside hosts whose replies would not come back through it. */
  readonly masquerade: boolean;
}

/** The ports a firewall backend protects for a door, and opens for a knocking source. */
export interface FirewallSpec {
  /**
   * Protected ports, ascending; empty for a door that names the admin's own sets. On a
   * gateway door: `forward`, the inside host's ports; `dnat`, the router's own port.
   */
  readonly ports: readonly number[];
  /** Their protocol. */
  readonly protocol: Protocol;
  /**
   * nft only: sets in the admin's own table (`"inet filter ssh_v4"`), per family, that the
   * admin's rules use; sesame then only adds and removes elements in them.
   */
  readonly sets?: NftSets;
  /** nft only: a door that opens a host behind this router instead of this host's ports. */
  readonly gateway?: GatewaySpec;
}

/** Sets of the admin's own nftables table, as `family table set`. */
export interface NftSets {
  /** The set for IPv4 sources. */
  readonly v4?: string;
  /** The set for IPv6 sources. */
  readonly v6?: string;
}

/** What every door has. */
export interface DoorBase {
  /** The door's name: letters, digits, `_` and `-`. */
  readonly name: string;
  /** Longest time from first to last knock, in ms. */
  readonly sequenceTimeoutMs: number;
  /** The action; absent on a client-side door. */
  readonly open?: OpenAction;
  /** Sources allowed to knock (empty: all). */
  readonly allow: readonly Cidr[];
  /** Sources never heard (wins over allow). */
  readonly deny: readonly Cidr[];
  /** Ports the daemon binds for this door. */
  readonly pool: DoorPool;
  /** With `cluster`: the group whose nodes all open this door when one decides it. */
  readonly share?: string;
  /**
   * With `cluster`: `required`, no open without an etcd quorum; `local`, this node's own
   * store when etcd cannot be reached (a break-glass door). Absent without `cluster`.
   */
  readonly fleet?: "required" | "local";
}

/** A door whose sequence is derived from a secret and rotates every period. */
export interface RotatingDoor extends DoorBase {
  /** Discriminant. */
  readonly kind: "rotating";
  /** The shared secret (never logged). */
  readonly secret: Uint8Array;
  /** Names the secret without revealing it: see `secretFingerprint`. */
  readonly fingerprint: string;
  /** Where the secret came from, when it was `secret_file` (for the permission check). */
  readonly secretFile?: string;
  /**
   * A door with `users`: each user's own secret. The door's `secret` is then its first
   * user's; the daemon works from {@link userDoors}' one door per user.
   */
  readonly users?: readonly DoorUser[];
  /** The user whose secret this door's `secret` is (one of {@link userDoors}' doors). */
  readonly user?: string;
  /** Candidate ports: `ports` minus `exclude`, ascending. */
  readonly candidates: readonly number[];
  /** Knocks per sequence. */
  readonly length: number;
  /** Protocol mode. */
  readonly protocol: ProtocolMode;
  /** Rotation period, in ms. */
  readonly periodMs: number;
  /** Counters accepted on either side of the current one. */
  readonly skew: number;
  /** Sequences depend on the knocker's address. */
  readonly bindSource: boolean;
  /** Bits of the knocker's address that count, per family. */
  readonly sourcePrefix: { readonly ipv4: number; readonly ipv6: number };
}

/** One user of a door with `users`: a name and a secret of their own. */
export interface DoorUser {
  /** The user's name (door-name rules). */
  readonly name: string;
  /** The user's secret (never logged). */
  readonly secret: Uint8Array;
  /** Names the secret without revealing it. */
  readonly fingerprint: string;
  /** Where the secret came from, when it was `secret_file`. */
  readonly secretFile?: string;
}

/** A knockd-style door with a fixed sequence. */
export interface StaticDoor extends DoorBase {
  /** Discriminant. */
  readonly kind: "static";
  /** The fixed sequence. */
  readonly sequence: readonly Knock[];
  /** Decoy ports around the sequence (also in `pool`): a knock there marks a scanner. */
  readonly decoys: DoorPool;
}

/** A door opened by one fwknop-compatible SPA packet (see docs/SPA.md). */
export interface SpaDoor extends DoorBase {
  /** Discriminant. */
  readonly kind: "spa";
  /** Its packets, keys and checks. */
  readonly spa: SpaSpec;
}

/** An SPA door's packets: where they come, the keys that make them, what they may ask. */
export interface SpaSpec {
  /** The UDP port packets come to (several SPA doors may share one). */
  readonly port: number;
  /** The AES key and the HMAC key (raw bytes) and the HMAC's digest. */
  readonly keys: SpaKeys;
  /** Where the keys came from, when files (for the permission check). */
  readonly keyFiles: readonly string[];
  /** A packet's timestamp may differ from the server's clock by at most this, ms. */
  readonly maxAgeMs: number;
  /** Open for the address inside a packet that names another one than its source. */
  readonly allowOtherAddress: boolean;
  /** Refuse `0.0.0.0` ("the packet's source"): the packet must name its own address. */
  readonly requireSourceAddress: boolean;
  /** What clients request by default (`sesame knock`): protocol and port pairs. */
  readonly access: readonly { readonly protocol: Protocol; readonly port: number }[];
}

/** A door that takes knock sequences: rotating or static. */
export type KnockDoor = RotatingDoor | StaticDoor;

/** Any kind of door. */
export type Door = RotatingDoor | StaticDoor | SpaDoor;

/** When a source counts as a scanner, and for how long it is ignored then. */
export interface ScanPolicy {
  /** Most distinct missed knocks (ports fitting no sequence in the window) a source may make within the window. */
  readonly threshold: number;
  /** The window, ms. */
  readonly windowMs: number;
  /** How long a scanner is ignored, ms. */
  readonly cooldownMs: number;
}

/** `cluster`: this node in a fleet of gateways sharing used codes and doors through etcd. */
export interface ClusterSettings {
  /** This node's name, unique in the fleet. */
  readonly node: string;
  /** The groups whose shared doors this node opens. */
  readonly groups: readonly string[];
  /** How to reach etcd. */
  readonly etcd: {
    /** Client URLs (origins). */
    readonly endpoints: readonly string[];
    /** Where sesame's keys live, e.g. `/sesame/`. */
    readonly prefix: string;
    /** CA, client certificate and key (PEM files), as written in the config. */
    readonly caFile?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
    /** etcd's user for this node, and the file holding its password (auth on). */
    readonly user?: string;
    readonly passwordFile?: string;
    /** Time limit of one call, ms. */
    readonly timeoutMs: number;
  };
}

/** A whole validated config. */
export interface Config {
  /** Addresses the daemon listens on. */
  readonly addresses: readonly string[];
  /** Where used counters and open doors are kept across restarts. */
  readonly stateFile?: string;
  /** Most sources tracked at once; the stalest is evicted beyond it. */
  readonly maxSources: number;
  /** Knocks arriving out of order within this many ms are put back in order. */
  readonly reorderWindowMs: number;
  /** Scanner detection: more than `threshold` distinct missed knocks within `windowMs`
   * (or any decoy) and a source is ignored for `cooldownMs`, on every door. */
  readonly scan: ScanPolicy;
  /** How nft openings are sent: one long-lived `nft -i` (session) or an `nft -f` per batch. */
  readonly nftMode: "session" | "batch";
  /** Which iptables to drive: Debian's default (the nf_tables variant) or one named. */
  readonly iptablesTool: "iptables" | "iptables-nft" | "iptables-legacy";
  /** Where Prometheus metrics are served (`/metrics`); absent: off. */
  readonly metrics?: { readonly hostname: string; readonly port: number };
  /** A file the metrics are written to every 15 s (node_exporter's textfile collector); absent: off. */
  readonly metricsFile?: string;
  /** How protected ports refuse everyone else: as the host's closed ports (`auto`), `reject` or `drop`. */
  readonly closedReply: "auto" | "reject" | "drop";
  /** Where `listen` logs (`listen.log`). */
  readonly log: LogSettings;
  /**
   * How knocks are heard (`listen.capture`): dummy listeners on every pool port
   * (`sockets`, a TCP knock proves its source by its handshake), or the kernel's NFLOG
   * group `group`, read through tcpdump (`nflog`: nothing binds, pool ports look closed,
   * a knock proves nothing about its source).
   */
  readonly capture: { readonly kind: "sockets" } | {
    readonly kind: "nflog";
    readonly group: number;
  };
  /** This node's fleet, when it is one of several gateways sharing codes and doors. */
  readonly cluster?: ClusterSettings;
  /** Sources allowed to knock any door (empty: all). */
  readonly allow: readonly Cidr[];
  /** Sources never heard, for any door. */
  readonly deny: readonly Cidr[];
  /** What stands in the config but deserves a word (`check` prints them, `listen` logs them). */
  readonly warnings?: readonly string[];
  /** The doors, in file order. */
  readonly doors: readonly Door[];
}

/**
 * The doors as the engine sees them: a door with `users` becomes one door per user (same
 * name, pool and action; the user's secret), in user order; other doors stay as they are.
 *
 * @example
 * ```ts
 * import { userDoors } from "./types.ts";
 * import { validateConfig } from "./validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { team: { ports: "20000-20099", users: {
 *   alice: { secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" },
 *   bob: { secret: "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" },
 * } } } });
 * assertEquals(userDoors(doors).map((d) => [d.name, d.kind === "rotating" && d.user]), [["team", "alice"], ["team", "bob"]]);
 * ```
 */
export function userDoors(doors: readonly Door[]): Door[] {
  return doors.flatMap((door) =>
    door.kind === "rotating" && door.users
      ? door.users.map((u): RotatingDoor => ({
        ...door,
        users: undefined,
        user: u.name,
        secret: u.secret,
        fingerprint: u.fingerprint,
        secretFile: u.secretFile,
      }))
      : [door]
  );
}

/**
 * The single-packet (SPA) doors among `doors`.
 *
 * @example
 * ```ts
 * import { spaDoors } from "./types.ts";
 * import { validateConfig } from "./validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000] } } });
 * assertEquals(spaDoors(doors), []);
 * ```
 */
export function spaDoors(doors: readonly Door[]): SpaDoor[] {
  return doors.filter((d): d is SpaDoor => d.kind === "spa");
}
