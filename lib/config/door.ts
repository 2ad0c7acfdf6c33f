/**
 * Validation of one door: a rotating door (a secret, a pool, a rotation period) or a
 * static, knockd-style one (a fixed sequence with decoys), and its `open` action.
 * @module
 */
import { createHmac } from "node:crypto";
import { parseAddress } from "../address.ts";
import { type Knock, parseKnock, type ProtocolMode } from "../knock.ts";
import { describe, parsePortList } from "../ports.ts";
import { decoysOf, rotatingPool, staticPool } from "../pool.ts";
import { decodeSecret } from "../secret.ts";
import { type Checker, isMapping, type KeyPath } from "./checker.ts";
import {
  DEFAULTS,
  DOOR_KEYS,
  DOOR_NAME,
  FIREWALL_KEYS,
  GATEWAY_KEYS,
  OPEN_KEYS,
  ROTATING_KEYS,
  SPA_KEYS,
} from "./schema.ts";
import type { Door, DoorUser, FirewallSpec, OpenAction, SpaDoor } from "./types.ts";
import { HMAC_DIGESTS, type HmacDigest } from "../spa/fko.ts";

/**
 * Validates one door: a rotating door (secret and pool) or a static one (sequence).
 * Returns `undefined` when it is too broken to use; its issues are in `c`.
 */
export function validateDoor(c: Checker, name: string, raw: unknown): Door | undefined {
  const path = ["doors", name];
  if (!DOOR_NAME.test(name)) {
    c.fail(
      path,
      `door name must be 1–32 letters, digits, "_" or "-", starting with a letter or digit`,
      true,
    );
  }
  const d = c.map(raw, path, DOOR_KEYS);
  if (!d) return undefined;
  const at = (key: string) => [...path, key];
  const common = {
    name,
    sequenceTimeoutMs: c.duration(
      d.sequence_timeout,
      at("sequence_timeout"),
      DEFAULTS.sequenceTimeoutMs,
      1,
      3_600_000,
    ),
    open: d.open === undefined ? undefined : checkOpen(c, d.open, at("open")),
    allow: c.cidrs(d.allow, at("allow")),
    deny: c.cidrs(d.deny, at("deny")),
  };
  if (d.spa !== undefined) return checkSpaDoor(c, d, path, common);
  if (d.sequence !== undefined) {
    for (const key of ROTATING_KEYS) {
      if (d[key] !== undefined) {
        c.fail(at(key), `a static door (one with "sequence") takes no "${key}"`, true);
      }
    }
    const sequence = checkStaticSequence(c, d.sequence, at("sequence"));
    const decoys = c.int(d.decoys, at("decoys"), DEFAULTS.decoys, 0, 10);
    if (!sequence) return undefined;
    const decoyPorts = decoysOf(sequence, decoys);
    return {
      ...common,
      kind: "static",
      sequence,
      decoys: decoyPorts,
      pool: staticPool(sequence, decoyPorts),
    };
  }
  if (d.decoys !== undefined) c.fail(at("decoys"), `only a static door takes "decoys"`, true);

  const users = d.users === undefined ? undefined : checkUsers(c, d, path);
  const secret = d.users === undefined ? checkSecret(c, d, path) : users?.[0]?.secret;
  const candidates = checkCandidates(c, d, path);
  const protocol = checkProtocolMode(c, d.protocol, at("protocol"));
  const length = c.int(d.length, at("length"), DEFAULTS.length, 1, 16);
  if (candidates && length > candidates.length) {
    c.fail(
      at("length"),
      `must be at most the ${candidates.length} ports of the pool, received ${length}`,
    );
  }
  const prefix = d.source_prefix === undefined
    ? {}
    : c.map(d.source_prefix, at("source_prefix"), ["ipv4", "ipv6"]) ?? {};
  if (!secret || !candidates) return undefined;
  const bindSource = c.bool(d.bind_source, at("bind_source"), false);
  return {
    ...common,
    kind: "rotating",
    secret,
    fingerprint: secretFingerprint(secret),
    secretFile: users
      ? users[0].secretFile
      : typeof d.secret_file === "string"
      ? d.secret_file
      : undefined,
    ...(users ? { users } : {}),
    candidates,
    length,
    protocol,
    periodMs: c.duration(d.period, at("period"), DEFAULTS.periodMs, 1000, 366 * 86_400_000),
    skew: c.int(d.skew, at("skew"), DEFAULTS.skew, 0, 10),
    bindSource,
    sourcePrefix: {
      ipv4: c.int(
        prefix.ipv4,
        [...at("source_prefix"), "ipv4"],
        DEFAULTS.sourcePrefix.ipv4,
        0,
        32,
      ),
      ipv6: c.int(
        prefix.ipv6,
        [...at("source_prefix"), "ipv6"],
        DEFAULTS.sourcePrefix.ipv6,
        0,
        128,
      ),
    },
    pool: rotatingPool(candidates, protocol),
  };
}

/**
 * `users: { alice: { secret_file: ... }, bob: { secret: ... } }`: one door, a secret per
 * user. Names follow the door-name rules; two users with one secret are refused (their
 * codes could not be told apart).
 */
function checkUsers(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
): DoorUser[] | undefined {
  const at = [...path, "users"];
  for (const key of ["secret", "secret_file"]) {
    if (d[key] !== undefined) {
      c.fail(
        [...path, key],
        `a door with "users" takes no "${key}": each user has their own`,
        true,
      );
    }
  }
  const raw = isMapping(d.users) ? d.users : undefined;
  if (!raw || Object.keys(raw).length === 0) {
    return c.fail(
      at,
      `must map user names to their secrets, such as { alice: { secret_file: /etc/sesame/alice.key } }, received ${
        describe(d.users)
      }`,
    );
  }
  const users: DoorUser[] = [];
  const byFingerprint = new Map<string, string>();
  for (const [name, value] of Object.entries(raw)) {
    const userPath = [...at, name];
    if (!DOOR_NAME.test(name)) {
      c.fail(
        userPath,
        `user name must be 1–32 letters, digits, "_" or "-", starting with a letter or digit`,
        true,
      );
      continue;
    }
    const u = c.map(value, userPath, ["secret", "secret_file"]);
    if (!u) continue;
    const secret = checkSecret(c, u, userPath, "a user");
    if (!secret) continue;
    const fingerprint = secretFingerprint(secret);
    const twin = byFingerprint.get(fingerprint);
    if (twin !== undefined) {
      c.fail(
        userPath,
        `has the same secret as user "${twin}": every user needs a secret of their own (sesame keygen)`,
        true,
      );
      continue;
    }
    byFingerprint.set(fingerprint, name);
    users.push({
      name,
      secret,
      fingerprint,
      ...(typeof u.secret_file === "string" ? { secretFile: u.secret_file } : {}),
    });
  }
  return users.length === Object.keys(raw).length ? users : undefined;
}

/**
 * `spa: { port, key_base64 | key_file, hmac_key_base64 | hmac_key_file, hmac_digest,
 * max_age, allow_other_address, access }`: a door opened by one fwknop packet. Keys are
 * fwknop's KEY_BASE64 and HMAC_KEY_BASE64 (standard base64), never echoed.
 */
function checkSpaDoor(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
  common: Omit<SpaDoor, "kind" | "spa" | "pool">,
): SpaDoor | undefined {
  for (const key of [...ROTATING_KEYS, "sequence", "decoys"]) {
    if (d[key] !== undefined) {
      c.fail([...path, key], `an SPA door (one with "spa") takes no "${key}"`, true);
    }
  }
  const at = [...path, "spa"];
  const s = c.map(d.spa, at, SPA_KEYS);
  if (!s) return undefined;
  const port = c.int(s.port, [...at, "port"], 62201, 1, 65535);
  const key = spaKey(c, s, at, "key", 16);
  const hmac = spaKey(c, s, at, "hmac_key", 16);
  const digest = s.hmac_digest ?? "sha256";
  if (!HMAC_DIGESTS.includes(digest as HmacDigest)) {
    c.fail(
      [...at, "hmac_digest"],
      `must be one of ${HMAC_DIGESTS.join(", ")}, received ${describe(digest)}`,
    );
  }
  const access: { protocol: "tcp" | "udp"; port: number }[] = [];
  const rawAccess = s.access === undefined ? [] : s.access;
  if (!Array.isArray(rawAccess)) {
    c.fail([...at, "access"], `must be a list such as ["tcp/22"], received ${describe(rawAccess)}`);
  } else {
    rawAccess.forEach((a, i) => {
      const m = typeof a === "string" ? /^(tcp|udp)\/(\d{1,5})$/.exec(a) : null;
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        c.fail([...at, "access", i], `must be "tcp/PORT" or "udp/PORT", received ${describe(a)}`);
      } else access.push({ protocol: m[1] as "tcp" | "udp", port: Number(m[2]) });
    });
  }
  const spec = common.open?.nft ?? common.open?.iptables;
  const within = (a: { protocol: string; port: number }) =>
    !spec || spec.sets !== undefined ||
    (spec.protocol === a.protocol &&
      (spec.gateway?.kind === "forward" ? spec.gateway.toPorts : spec.ports).includes(a.port));
  const outside = access.find((a) => !within(a));
  if (outside) {
    c.fail(
      [...at, "access"],
      `${outside.protocol}/${outside.port} is not among the ports this door opens: clients asking for it would be refused`,
    );
  }
  const maxAgeMs = c.duration(s.max_age, [...at, "max_age"], 120_000, 1000, 3_600_000);
  const allowOtherAddress = c.bool(s.allow_other_address, [...at, "allow_other_address"], false);
  const requireSourceAddress = c.bool(
    s.require_source_address,
    [...at, "require_source_address"],
    false,
  );
  if (!key || !hmac) return undefined;
  return {
    ...common,
    kind: "spa",
    spa: {
      port,
      keys: { encryption: key.bytes, hmac: hmac.bytes, hmacDigest: digest as HmacDigest },
      keyFiles: [key.file, hmac.file].filter((f): f is string => f !== undefined),
      maxAgeMs,
      allowOtherAddress,
      requireSourceAddress,
      access,
    },
    pool: { tcp: [], udp: [] },
  };
}

/** One SPA key: `NAME_base64` inline or `NAME_file` holding it; at least `min` bytes. */
function spaKey(
  c: Checker,
  s: Record<string, unknown>,
  at: KeyPath,
  name: "key" | "hmac_key",
  min: number,
): { bytes: Uint8Array; file?: string } | undefined {
  const inline = s[`${name}_base64`], file = s[`${name}_file`];
  if ((inline === undefined) === (file === undefined)) {
    return c.fail(
      at,
      `needs exactly one of "${name}_base64" or "${name}_file" (fwknop's ${name.toUpperCase()}_BASE64; sesame keygen --spa makes them)`,
      true,
    );
  }
  const where = [...at, inline === undefined ? `${name}_file` : `${name}_base64`];
  let text = inline;
  if (typeof file === "string") {
    if (!c.options.readSecretFile) return c.fail(where, "key files cannot be read here");
    try {
      text = c.options.readSecretFile(file).trim();
    } catch (e) {
      return c.fail(where, `cannot read ${JSON.stringify(file)}: ${(e as Error).message}`);
    }
    // fwknop --key-gen's (and sesame keygen --spa's) format: "KEY_BASE64: …" and
    // "HMAC_KEY_BASE64: …" lines, so one file may hold both keys.
    const label = name === "key" ? "KEY_BASE64" : "HMAC_KEY_BASE64";
    const line = (text as string).split("\n").map((l) => l.trim()).find((l) =>
      l.startsWith(`${label}:`) || l.startsWith(`${label} `)
    );
    if (line) text = line.slice(label.length).replace(/^[:\s]+/, "").trim();
  }
  // Never echo the value: it is a key, even when malformed.
  const bytes = typeof text === "string" && /^[A-Za-z0-9+/]+={0,2}$/.test(text)
    ? Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0))
    : undefined;
  if (!bytes || bytes.length < min) {
    return c.fail(where, `must be base64 (as fwknop --key-gen prints) of at least ${min} bytes`);
  }
  return { bytes, ...(typeof file === "string" ? { file } : {}) };
}

function checkSecret(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
  who = "a rotating door",
): Uint8Array | undefined {
  const hasInline = d.secret !== undefined;
  const hasFile = d.secret_file !== undefined;
  if (hasInline === hasFile) {
    return c.fail(
      path,
      who === "a rotating door"
        ? `a rotating door needs exactly one of "secret", "secret_file" or "users" (or "sequence" for a static door)`
        : `${who} needs exactly one of "secret" or "secret_file"`,
      true,
    );
  }
  let text: unknown = d.secret;
  const key = hasInline ? "secret" : "secret_file";
  if (hasFile) {
    if (typeof d.secret_file !== "string" || d.secret_file === "") {
      return c.fail(
        [...path, key],
        `must be a file path, received ${describe(d.secret_file)}`,
      );
    }
    if (!c.options.readSecretFile) {
      return c.fail([...path, key], "secret files cannot be read here");
    }
    try {
      text = c.options.readSecretFile(d.secret_file).trim();
    } catch (e) {
      return c.fail(
        [...path, key],
        `cannot read ${JSON.stringify(d.secret_file)}: ${(e as Error).message}`,
      );
    }
  }
  // Never echo the value: it is a secret, even when malformed.
  const bytes = typeof text === "string" ? decodeSecret(text) : undefined;
  if (!bytes) {
    return c.fail(
      [...path, key],
      "must be base64url text (as `sesame keygen` prints) of at least 16 bytes",
    );
  }
  return bytes;
}

function checkCandidates(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
): number[] | undefined {
  if (d.ports === undefined) {
    return c.fail(
      path,
      `a rotating door needs "ports", its pool, such as "20000-20999"`,
      true,
    );
  }
  const ports = parsePortList(d.ports);
  if (!ports.ok) return c.fail([...path, "ports"], ports.error);
  let excluded: number[] = [];
  if (d.exclude !== undefined) {
    const ex = parsePortList(d.exclude);
    if (!ex.ok) return c.fail([...path, "exclude"], ex.error);
    excluded = ex.ports;
  }
  const skip = new Set(excluded);
  const candidates = ports.ports.filter((p) => !skip.has(p));
  if (candidates.length > DEFAULTS.maxPool) {
    // Every pool port listens, so that a scan never narrows the code down: the pool must bind.
    return c.fail(
      [...path, "ports"],
      `must be at most ${DEFAULTS.maxPool} ports (every pool port listens, and ${DEFAULTS.maxPool} TCP and ${DEFAULTS.maxPool} UDP sockets bind in under a second on 2 cores), received ${candidates.length}`,
    );
  }
  if (candidates.length < 2) {
    return c.fail(
      [...path, "ports"],
      `must leave at least 2 ports after "exclude", received ${candidates.length}`,
    );
  }
  return candidates;
}

function checkProtocolMode(c: Checker, value: unknown, path: KeyPath): ProtocolMode {
  if (value === undefined) return DEFAULTS.protocol;
  if (value === "tcp" || value === "udp" || value === "mixed") return value;
  return c.fail(path, `must be tcp, udp or mixed, received ${describe(value)}`) ??
    DEFAULTS.protocol;
}

function checkStaticSequence(c: Checker, value: unknown, path: KeyPath): Knock[] | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.length > 32) {
    return c.fail(
      path,
      `must be a list of 1–32 knocks such as [7000, "8000/udp", 9000], received ${describe(value)}`,
    );
  }
  const knocks: Knock[] = [];
  value.forEach((item, i) => {
    const knock = parseKnock(item);
    if (knock) knocks.push(knock);
    else {c.fail(
        [...path, i],
        `must be a port with an optional protocol ("8000", "8000/udp", "8000:tcp"), received ${
          describe(item)
        }`,
      );}
  });
  return knocks.length === value.length ? knocks : undefined;
}

function checkOpen(c: Checker, value: unknown, path: KeyPath): OpenAction | undefined {
  const o = c.map(value, path, OPEN_KEYS);
  if (!o) return undefined;
  const command = c.argv(o.command, [...path, "command"]);
  const closeCommand = c.argv(o.close_command, [...path, "close_command"]);
  return {
    forMs: c.duration(o.for, [...path, "for"], DEFAULTS.forMs, 1000, 7 * 86_400_000),
    command,
    closeCommand,
    commandTimeoutMs: c.duration(
      o.timeout,
      [...path, "timeout"],
      DEFAULTS.commandTimeoutMs,
      100,
      600_000,
    ),
    // A door with no other action is only its log lines: those stay on.
    log: c.bool(o.log, [...path, "log"], true) ||
      (o.command === undefined && o.nft === undefined && o.iptables === undefined),
    nft: o.nft === undefined ? undefined : checkFirewall(c, o.nft, [...path, "nft"]),
    iptables: o.iptables === undefined
      ? undefined
      : checkFirewall(c, o.iptables, [...path, "iptables"]),
  };
}

function checkFirewall(c: Checker, value: unknown, path: KeyPath): FirewallSpec | undefined {
  const f = c.map(value, path, FIREWALL_KEYS);
  if (!f) return undefined;
  if (f.set !== undefined) return checkSets(c, f, path);
  if (f.forward !== undefined || f.dnat !== undefined) return checkGateway(c, f, path);
  if ((f.port === undefined) === (f.ports === undefined)) {
    return c.fail(path, `needs "port" (or "ports"): the protected service, such as 22`, true);
  }
  const key = f.port === undefined ? "ports" : "port";
  const ports = parsePortList(f[key]);
  if (!ports.ok) return c.fail([...path, key], ports.error);
  // iptables' multiport match takes at most 15 ports; nft sets take many more.
  const most = path[path.length - 1] === "iptables" ? 15 : 64;
  if (ports.ports.length > most) {
    return c.fail(
      [...path, key],
      `at most ${most} protected ports${
        most === 15 ? " (iptables' multiport match takes 15)" : ""
      }, received ${ports.ports.length}`,
    );
  }
  const protocol = f.protocol ?? "tcp";
  if (protocol !== "tcp" && protocol !== "udp") {
    return c.fail([...path, "protocol"], `must be tcp or udp, received ${describe(protocol)}`);
  }
  return { ports: ports.ports, protocol };
}

/**
 * `nft: { forward: { to: { host, port | ports }, protocol, masquerade } }` or
 * `nft: { dnat: { port, to: { host, port }, protocol, masquerade } }`: a door on a router
 * that opens a host behind it (nft only: sesame's table holds the forward and nat chains).
 */
function checkGateway(
  c: Checker,
  f: Record<string, unknown>,
  path: KeyPath,
): FirewallSpec | undefined {
  if (path[path.length - 1] !== "nft") {
    return c.fail(
      [...path, f.forward !== undefined ? "forward" : "dnat"],
      `only "nft" takes forward and dnat doors (sesame's nftables table holds their chains); iptables cannot here`,
      true,
    );
  }
  const others = ["port", "ports", "protocol", "forward", "dnat"].filter((k) =>
    f[k] !== undefined && k !== (f.forward !== undefined ? "forward" : "dnat")
  );
  if (others.length > 0) {
    return c.fail(
      [...path, others[0]],
      `a ${f.forward !== undefined ? "forward" : "dnat"} door takes no "${
        others[0]
      }" beside it: put the ports under "to" (and dnat's own "port")`,
      true,
    );
  }
  const kind = f.forward !== undefined ? "forward" : "dnat";
  const at = [...path, kind];
  const g = c.map(f[kind], at, GATEWAY_KEYS);
  if (!g) return undefined;
  const to = c.map(g.to, [...at, "to"], ["host", "port", "ports"]);
  if (!to) {
    return kind === "forward" && g.to === undefined
      ? c.fail(at, `needs "to": { host: 192.168.1.10, port: 22 }, the inside host and port`, true)
      : undefined;
  }
  const address = typeof to.host === "string" ? parseAddress(to.host) : undefined;
  if (!address) {
    return c.fail(
      [...at, "to", "host"],
      `must be the inside host's IPv4 or IPv6 address, received ${describe(to.host)}`,
    );
  }
  if ((to.port === undefined) === (to.ports === undefined)) {
    return c.fail([...at, "to"], `needs "port" (or "ports"): the inside host's service`, true);
  }
  const toKey = to.port === undefined ? "ports" : "port";
  const toPorts = parsePortList(to[toKey]);
  if (!toPorts.ok) return c.fail([...at, "to", toKey], toPorts.error);
  if (kind === "dnat" && toPorts.ports.length !== 1) {
    return c.fail([...at, "to", toKey], `a dnat door forwards to one port`);
  }
  if (toPorts.ports.length > 64) {
    return c.fail([...at, "to", toKey], `at most 64 ports, received ${toPorts.ports.length}`);
  }
  let own: number[] = toPorts.ports;
  if (kind === "dnat") {
    const port = typeof g.port === "number" || typeof g.port === "string"
      ? parsePortList(g.port)
      : undefined;
    if (!port?.ok || port.ports.length !== 1) {
      return c.fail(
        [...at, "port"],
        `must be the router's own port the knocker connects to, such as 2222, received ${
          describe(g.port)
        }`,
      );
    }
    own = port.ports;
  } else if (g.port !== undefined) {
    return c.fail([...at, "port"], `a forward door takes no "port": the ports go under "to"`);
  }
  const protocol = g.protocol ?? "tcp";
  if (protocol !== "tcp" && protocol !== "udp") {
    return c.fail([...at, "protocol"], `must be tcp or udp, received ${describe(protocol)}`);
  }
  return {
    ports: own,
    protocol,
    gateway: {
      kind,
      host: address.text,
      family: address.family,
      toPorts: toPorts.ports,
      masquerade: c.bool(g.masquerade, [...at, "masquerade"], false),
    },
  };
}

/** An nft set of the admin's own table: `family table set`. */
const SET_REF = /^(ip|ip6|inet) [A-Za-z][A-Za-z0-9_]{0,63} [A-Za-z][A-Za-z0-9_]{0,63}$/;

/**
 * `nft: { set: { ipv4: "inet filter ssh_v4", ipv6: "inet filter ssh_v6" } }`: the admin's
 * ruleset holds the rules (and drops the port while sesame is down); sesame only adds
 * and removes elements.
 */
function checkSets(
  c: Checker,
  f: Record<string, unknown>,
  path: KeyPath,
): FirewallSpec | undefined {
  const at = [...path, "set"];
  if (path[path.length - 1] !== "nft") {
    return c.fail(at, `only "nft" takes "set" (sets in your own nftables table)`, true);
  }
  for (const key of ["port", "ports"]) {
    if (f[key] !== undefined) {
      c.fail(
        [...path, key],
        `a door with "set" takes no "${key}": your own rules name the ports`,
        true,
      );
    }
  }
  const sets = c.map(f.set, at, ["ipv4", "ipv6"]);
  if (!sets) return undefined;
  const ref = (key: "ipv4" | "ipv6") => {
    const v = sets[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || !SET_REF.test(v.trim())) {
      return c.fail(
        [...at, key],
        `must be "FAMILY TABLE SET", such as "inet filter ssh_${
          key === "ipv4" ? "v4" : "v6"
        }", received ${describe(v)}`,
      );
    }
    return v.trim().replace(/\s+/g, " ");
  };
  const v4 = ref("ipv4"), v6 = ref("ipv6");
  if (v4 === undefined && v6 === undefined) {
    return c.fail(at, `needs "ipv4" or "ipv6" (or both): the sets your rules use`, true);
  }
  return {
    ports: [],
    protocol: "tcp",
    sets: { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) },
  };
}

/**
 * The fingerprint of a secret: names it (in used codes, logs, status) without revealing
 * it. The first 12 bytes of HMAC-SHA256(secret, "sesame/fingerprint/v1"), base64url.
 *
 * @example
 * ```ts
 * import { secretFingerprint } from "./door.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(secretFingerprint(new Uint8Array(32)).length, 16);
 * ```
 */
export function secretFingerprint(secret: Uint8Array): string {
  return createHmac("sha256", secret).update("sesame/fingerprint/v1").digest().subarray(0, 12)
    .toString("base64url");
}
