/**
 * The config's schema in data: defaults, the keys each mapping takes, and the rule for
 * door names. The README's key table documents the same values.
 * @module
 */

/** Defaults, as documented in the README. */
export const DEFAULTS = {
  length: 4,
  protocol: "tcp",
  periodMs: 30_000,
  skew: 1,
  sequenceTimeoutMs: 10_000,
  forMs: 30_000,
  commandTimeoutMs: 10_000,
  maxSources: 100_000,
  reorderWindowMs: 500,
  scanThreshold: 6,
  scanWindowMs: 2000,
  scanCooldownMs: 60_000,
  decoys: 2,
  /** Most ports in a rotating door's pool: every one of them listens (see the README). */
  maxPool: 16384,
  sourcePrefix: { ipv4: 32, ipv6: 64 },
  /** The NFLOG group of `listen.capture: nflog`. */
  nflogGroup: 5173,
} as const;

/** What a door name may be: safe as an argv value, a log field and (with "-" as "_") an nft name. */
export const DOOR_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
/** Keys of the top level. */
export const TOP_KEYS = ["listen", "state_file", "cluster", "allow", "deny", "doors"];
/** Keys of `cluster`. */
export const CLUSTER_KEYS = ["node", "groups", "etcd"];
/** Keys of `cluster.etcd`. */
export const ETCD_KEYS = [
  "endpoints",
  "prefix",
  "ca_file",
  "cert_file",
  "key_file",
  "user",
  "password_file",
  "timeout",
];
/** Keys of `listen`. */
export const LISTEN_KEYS = [
  "capture",
  "nflog_group",
  "log",
  "metrics",
  "metrics_public",
  "metrics_file",
  "closed_reply",
  "nft_mode",
  "iptables",
  "addresses",
  "max_sources",
  "reorder_window",
  "scan_threshold",
  "scan_window",
  "scan_cooldown",
];
/** Keys only a rotating door takes (a static door, one with "sequence", refuses them). */
export const ROTATING_KEYS = [
  "secret",
  "secret_file",
  "users",
  "ports",
  "exclude",
  "length",
  "protocol",
  "period",
  "skew",
  "bind_source",
  "source_prefix",
];
/** Keys of a door's `spa` (a single-packet door, fwknop-compatible). */
export const SPA_KEYS = [
  "port",
  "key_base64",
  "key_file",
  "hmac_key_base64",
  "hmac_key_file",
  "hmac_digest",
  "max_age",
  "allow_other_address",
  "require_source_address",
  "access",
];
/** Keys of a door. */
export const DOOR_KEYS = [
  ...ROTATING_KEYS,
  "spa",
  "sequence",
  "decoys",
  "sequence_timeout",
  "open",
  "allow",
  "deny",
  "share",
  "fleet",
];
/** Keys of a door's `open`. */
export const OPEN_KEYS = ["for", "command", "close_command", "timeout", "log", "nft", "iptables"];
/** Keys of `open.nft` and `open.iptables`. */
export const FIREWALL_KEYS = ["port", "ports", "protocol", "set", "forward", "dnat"];
/** Keys of `open.nft.forward` and `open.nft.dnat`. */
export const GATEWAY_KEYS = ["port", "to", "protocol", "masquerade"];
