/**
 * Config validation: plain data in, a {@link Config} or a {@link ConfigError} listing every
 * issue with its key path and, through `locate`, its file position. Pure: files named by
 * `secret_file` are read through the injected `readSecretFile`.
 * @module
 */
import { type Cidr, parseCidr } from "../address.ts";
import { parseDuration } from "../duration.ts";
import { ConfigError, type ConfigIssue, type SourcePosition } from "../errors.ts";
import { describe, parsePortList } from "../ports.ts";
import type { Knock, Protocol, ProtocolMode } from "../sequence.ts";
import { decodeSecret } from "../secret.ts";
import type { Config, Door, DoorPool, FirewallSpec, OpenAction } from "./types.ts";

/** A key path into the document, e.g. `["doors", "ssh", "length"]`. */
export type KeyPath = readonly (string | number)[];

/** Options for {@link validateConfig}. */
export interface ValidateOptions {
  /** Finds a path's position in the source; `atKey` asks for the key rather than the value. */
  locate?: (path: KeyPath, atKey: boolean) => SourcePosition | undefined;
  /** Reads a `secret_file`; returns its text or throws an Error whose message says why not. */
  readSecretFile?: (path: string) => string;
}

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
  reorderWindowMs: 5,
  scanThreshold: 6,
  scanWindowMs: 2000,
  scanCooldownMs: 60_000,
  decoys: 2,
  /** Pools larger than this bind only the ports of the codes in the window. */
  maxPoolBind: 4096,
  sourcePrefix: { ipv4: 32, ipv6: 64 },
} as const;

/** What a door name may be: safe as an argv value, a log field and (with "-" as "_") an nft name. */
export const DOOR_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const TOP_KEYS = ["listen", "state_file", "allow", "deny", "doors"];
const LISTEN_KEYS = [
  "nft_mode",
  "addresses",
  "max_sources",
  "reorder_window",
  "scan_threshold",
  "scan_window",
  "scan_cooldown",
];
/** Keys only a rotating door takes (a static door, one with "sequence", refuses them). */
const ROTATING_KEYS = [
  "secret",
  "secret_file",
  "ports",
  "exclude",
  "length",
  "protocol",
  "period",
  "skew",
  "bind_source",
  "source_prefix",
  "bind",
];
const DOOR_KEYS = [
  ...ROTATING_KEYS,
  "sequence",
  "decoys",
  "sequence_timeout",
  "open",
  "allow",
  "deny",
];
const OPEN_KEYS = ["for", "command", "close_command", "timeout", "log", "nft", "iptables"];
const FIREWALL_KEYS = ["port", "ports", "protocol"];

/**
 * Validates a parsed config document.
 *
 * @example
 * ```ts
 * import { validateConfig } from "./validate.ts";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000, "8000/udp", 9000] } } });
 * config.doors[0].kind; // "static"
 * ```
 * @throws {ConfigError} listing every problem found.
 */
export function validateConfig(raw: unknown, options: ValidateOptions = {}): Config {
  const c = new Checker(options);
  const config = c.config(raw);
  if (c.issues.length > 0 || !config) throw new ConfigError(c.issues);
  return config;
}

class Checker {
  readonly issues: ConfigIssue[] = [];
  constructor(private readonly options: ValidateOptions) {}

  fail(path: KeyPath, message: string, atKey = false): undefined {
    this.issues.push({
      path: path.join("."),
      message,
      position: this.options.locate?.(path, atKey),
    });
    return undefined;
  }

  /** A mapping with only known keys; `undefined` (after an issue) otherwise. */
  map(
    value: unknown,
    path: KeyPath,
    known: readonly string[],
  ): Record<string, unknown> | undefined {
    if (!isMapping(value)) return this.fail(path, `must be a mapping, received ${describe(value)}`);
    const record = value;
    for (const key of Object.keys(record)) {
      if (!known.includes(key)) {
        const hint = nearest(key, known);
        this.fail(
          [...path, key],
          `unknown key${hint ? `; did you mean "${hint}"?` : `; known keys: ${known.join(", ")}`}`,
          true,
        );
      }
    }
    return record;
  }

  int(value: unknown, path: KeyPath, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value)) {
      return this.fail(path, `must be a whole number, received ${describe(value)}`) ?? fallback;
    }
    if (value < min || value > max) {
      return this.fail(path, `must be ${min}–${max}, received ${value}`) ?? fallback;
    }
    return value;
  }

  duration(value: unknown, path: KeyPath, fallback: number, minMs: number, maxMs: number): number {
    if (value === undefined) return fallback;
    const ms = parseDuration(value);
    if (ms === undefined) {
      return this.fail(
        path,
        `must be a duration such as "500ms", "30s" or "5m", received ${describe(value)}`,
      ) ??
        fallback;
    }
    if (ms < minMs || ms > maxMs) {
      return this.fail(path, `must be between ${minMs} ms and ${maxMs} ms, received ${ms} ms`) ??
        fallback;
    }
    return ms;
  }

  bool(value: unknown, path: KeyPath, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") {
      return this.fail(path, `must be true or false, received ${describe(value)}`) ?? fallback;
    }
    return value;
  }

  cidrs(value: unknown, path: KeyPath): Cidr[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      return this.fail(path, `must be a list of addresses or CIDRs, received ${describe(value)}`) ??
        [];
    }
    const out: Cidr[] = [];
    value.forEach((item, i) => {
      const cidr = typeof item === "string" ? parseCidr(item.trim()) : undefined;
      if (cidr) out.push(cidr);
      else {this.fail(
          [...path, i],
          `must be an address or CIDR such as 192.0.2.0/24 or 2001:db8::/32, received ${
            describe(item)
          }`,
        );}
    });
    return out;
  }

  argv(value: unknown, path: KeyPath): string[] | undefined {
    if (value === undefined) return undefined;
    if (
      !Array.isArray(value) || value.length === 0 ||
      !value.every((v) => typeof v === "string" && v !== "")
    ) {
      return this.fail(
        path,
        `must be a non-empty list of strings (argv, run without a shell), received ${
          describe(value)
        }`,
      );
    }
    if (!(value[0] as string).startsWith("/")) {
      return this.fail(
        [...path, 0],
        `must be an absolute path (no PATH lookup for a security tool), received ${
          describe(value[0])
        }`,
      );
    }
    return value as string[];
  }

  config(raw: unknown): Config | undefined {
    const top = this.map(raw ?? undefined, [], TOP_KEYS);
    if (!top) return undefined;
    const listen = top.listen === undefined
      ? {}
      : this.map(top.listen, ["listen"], LISTEN_KEYS) ?? {};
    let addresses = ["::"];
    if (listen.addresses !== undefined) {
      const list = listen.addresses;
      if (!Array.isArray(list) || list.length === 0) {
        this.fail(
          ["listen", "addresses"],
          `must be a non-empty list of addresses, received ${describe(list)}`,
        );
      } else {
        addresses = [];
        list.forEach((a, i) => {
          const cidr = typeof a === "string" ? parseCidr(a) : undefined;
          if (!cidr || a.includes("/")) {
            this.fail(["listen", "addresses", i], `must be an IP address, received ${describe(a)}`);
          } else addresses.push(a);
        });
        if (addresses.includes("::") && addresses.includes("0.0.0.0")) {
          this.fail(
            ["listen", "addresses"],
            `"::" already receives IPv4 on Linux; binding "0.0.0.0" beside it fails on every port: list only "::"`,
          );
        }
      }
    }
    let stateFile: string | undefined;
    if (top.state_file !== undefined) {
      if (typeof top.state_file !== "string" || top.state_file === "") {
        this.fail(["state_file"], `must be a file path, received ${describe(top.state_file)}`);
      } else stateFile = top.state_file;
    }
    const doors: Door[] = [];
    const rawDoors = isMapping(top.doors) ? top.doors : this.fail(
      ["doors"],
      `must be a mapping of door names to doors, received ${describe(top.doors)}`,
    );
    if (rawDoors) {
      const names = Object.keys(rawDoors);
      if (names.length === 0) this.fail(["doors"], "must name at least one door");
      const nftNames = new Map<string, string>();
      for (const name of names) {
        const door = this.door(name, rawDoors[name]);
        if (!door) continue;
        doors.push(door);
        if (door.open?.nft && door.open.iptables) {
          this.fail(
            ["doors", name, "open", "iptables"],
            `a door takes "nft" or "iptables", not both`,
            true,
          );
        }
        const nft = nftSetBase(name);
        if (nftNames.has(nft)) {
          this.fail(
            ["doors", name],
            `door names "${
              nftNames.get(nft)
            }" and "${name}" collide in the firewall ("-" is read as "_")`,
            true,
          );
        }
        nftNames.set(nft, name);
      }
    }
    return {
      addresses,
      stateFile,
      maxSources: this.int(
        listen.max_sources,
        ["listen", "max_sources"],
        DEFAULTS.maxSources,
        1,
        10_000_000,
      ),
      reorderWindowMs: this.duration(
        listen.reorder_window,
        ["listen", "reorder_window"],
        DEFAULTS.reorderWindowMs,
        0,
        1000,
      ),
      nftMode: listen.nft_mode === undefined
        ? "session"
        : listen.nft_mode === "session" || listen.nft_mode === "batch"
        ? listen.nft_mode
        : this.fail(
          ["listen", "nft_mode"],
          `must be session or batch, received ${describe(listen.nft_mode)}`,
        ) ?? "session",
      scan: {
        // Distinct missed knocks (ports that fit no sequence in the window) a source may
        // make in the window: a knocker makes a few at most, a sweep one per pool port.
        threshold: this.int(
          listen.scan_threshold,
          ["listen", "scan_threshold"],
          DEFAULTS.scanThreshold,
          2,
          1000,
        ),
        windowMs: this.duration(
          listen.scan_window,
          ["listen", "scan_window"],
          DEFAULTS.scanWindowMs,
          0,
          600_000,
        ),
        cooldownMs: this.duration(
          listen.scan_cooldown,
          ["listen", "scan_cooldown"],
          DEFAULTS.scanCooldownMs,
          0,
          86_400_000,
        ),
      },
      allow: this.cidrs(top.allow, ["allow"]),
      deny: this.cidrs(top.deny, ["deny"]),
      doors,
    };
  }

  door(name: string, raw: unknown): Door | undefined {
    const path = ["doors", name];
    if (!DOOR_NAME.test(name)) {
      this.fail(
        path,
        `door name must be 1–32 letters, digits, "_" or "-", starting with a letter or digit`,
        true,
      );
    }
    const d = this.map(raw, path, DOOR_KEYS);
    if (!d) return undefined;
    const at = (key: string) => [...path, key];
    const common = {
      name,
      sequenceTimeoutMs: this.duration(
        d.sequence_timeout,
        at("sequence_timeout"),
        DEFAULTS.sequenceTimeoutMs,
        1,
        3_600_000,
      ),
      open: d.open === undefined ? undefined : this.open(d.open, at("open")),
      allow: this.cidrs(d.allow, at("allow")),
      deny: this.cidrs(d.deny, at("deny")),
    };
    if (d.sequence !== undefined) {
      for (const key of ROTATING_KEYS) {
        if (d[key] !== undefined) {
          this.fail(at(key), `a static door (one with "sequence") takes no "${key}"`, true);
        }
      }
      const sequence = this.staticSequence(d.sequence, at("sequence"));
      const decoys = this.int(d.decoys, at("decoys"), DEFAULTS.decoys, 0, 10);
      if (!sequence) return undefined;
      const decoyPorts = decoysOf(sequence, decoys);
      return {
        ...common,
        kind: "static",
        sequence,
        decoys: decoyPorts,
        pool: poolOf(sequence, decoyPorts),
      };
    }
    if (d.decoys !== undefined) this.fail(at("decoys"), `only a static door takes "decoys"`, true);

    const secret = this.secret(d, path);
    const candidates = this.candidates(d, path);
    const protocol = this.protocolMode(d.protocol, at("protocol"));
    const length = this.int(d.length, at("length"), DEFAULTS.length, 1, 16);
    if (candidates && length > candidates.length) {
      this.fail(
        at("length"),
        `must be at most the ${candidates.length} ports of the pool, received ${length}`,
      );
    }
    const prefix = d.source_prefix === undefined
      ? {}
      : this.map(d.source_prefix, at("source_prefix"), ["ipv4", "ipv6"]) ?? {};
    if (!secret || !candidates) return undefined;
    const tcp = protocol === "udp" ? [] : candidates;
    const udp = protocol === "tcp" ? [] : candidates;
    const bindSource = this.bool(d.bind_source, at("bind_source"), false);
    let bind: "pool" | "window" = candidates.length > DEFAULTS.maxPoolBind ? "window" : "pool";
    if (d.bind !== undefined) {
      if (d.bind === "pool" || d.bind === "window") bind = d.bind;
      else this.fail(at("bind"), `must be pool or window, received ${describe(d.bind)}`);
    }
    if (bind === "window" && bindSource) {
      // Each source has its own codes: there is no one window of ports to bind.
      this.fail(
        at("bind"),
        `"window" cannot work with bind_source: true (every source has its own code); use a pool of at most ${DEFAULTS.maxPoolBind} ports`,
        d.bind === undefined,
      );
    }
    return {
      ...common,
      kind: "rotating",
      secret,
      secretFile: typeof d.secret_file === "string" ? d.secret_file : undefined,
      candidates,
      length,
      protocol,
      periodMs: this.duration(d.period, at("period"), DEFAULTS.periodMs, 1000, 366 * 86_400_000),
      skew: this.int(d.skew, at("skew"), DEFAULTS.skew, 0, 10),
      bindSource,
      bind,
      sourcePrefix: {
        ipv4: this.int(
          prefix.ipv4,
          [...at("source_prefix"), "ipv4"],
          DEFAULTS.sourcePrefix.ipv4,
          0,
          32,
        ),
        ipv6: this.int(
          prefix.ipv6,
          [...at("source_prefix"), "ipv6"],
          DEFAULTS.sourcePrefix.ipv6,
          0,
          128,
        ),
      },
      pool: { tcp, udp },
    };
  }

  secret(d: Record<string, unknown>, path: KeyPath): Uint8Array | undefined {
    const hasInline = d.secret !== undefined;
    const hasFile = d.secret_file !== undefined;
    if (hasInline === hasFile) {
      return this.fail(
        path,
        `a rotating door needs exactly one of "secret" or "secret_file" (or "sequence" for a static door)`,
        true,
      );
    }
    let text: unknown = d.secret;
    const key = hasInline ? "secret" : "secret_file";
    if (hasFile) {
      if (typeof d.secret_file !== "string" || d.secret_file === "") {
        return this.fail(
          [...path, key],
          `must be a file path, received ${describe(d.secret_file)}`,
        );
      }
      if (!this.options.readSecretFile) {
        return this.fail([...path, key], "secret files cannot be read here");
      }
      try {
        text = this.options.readSecretFile(d.secret_file).trim();
      } catch (e) {
        return this.fail(
          [...path, key],
          `cannot read ${JSON.stringify(d.secret_file)}: ${(e as Error).message}`,
        );
      }
    }
    // Never echo the value: it is a secret, even when malformed.
    const bytes = typeof text === "string" ? decodeSecret(text) : undefined;
    if (!bytes) {
      return this.fail(
        [...path, key],
        "must be base64url text (as `sesame keygen` prints) of at least 16 bytes",
      );
    }
    return bytes;
  }

  candidates(d: Record<string, unknown>, path: KeyPath): number[] | undefined {
    if (d.ports === undefined) {
      return this.fail(
        path,
        `a rotating door needs "ports", its pool, such as "20000-20999"`,
        true,
      );
    }
    const ports = parsePortList(d.ports);
    if (!ports.ok) return this.fail([...path, "ports"], ports.error);
    let excluded: number[] = [];
    if (d.exclude !== undefined) {
      const ex = parsePortList(d.exclude);
      if (!ex.ok) return this.fail([...path, "exclude"], ex.error);
      excluded = ex.ports;
    }
    const skip = new Set(excluded);
    const candidates = ports.ports.filter((p) => !skip.has(p));
    if (candidates.length < 2) {
      return this.fail(
        [...path, "ports"],
        `must leave at least 2 ports after "exclude", received ${candidates.length}`,
      );
    }
    return candidates;
  }

  protocolMode(value: unknown, path: KeyPath): ProtocolMode {
    if (value === undefined) return DEFAULTS.protocol;
    if (value === "tcp" || value === "udp" || value === "mixed") return value;
    return this.fail(path, `must be tcp, udp or mixed, received ${describe(value)}`) ??
      DEFAULTS.protocol;
  }

  staticSequence(value: unknown, path: KeyPath): Knock[] | undefined {
    if (!Array.isArray(value) || value.length === 0 || value.length > 32) {
      return this.fail(
        path,
        `must be a list of 1–32 knocks such as [7000, "8000/udp", 9000], received ${
          describe(value)
        }`,
      );
    }
    const knocks: Knock[] = [];
    value.forEach((item, i) => {
      const knock = parseKnock(item);
      if (knock) knocks.push(knock);
      else {this.fail(
          [...path, i],
          `must be a port with an optional protocol ("8000", "8000/udp", "8000:tcp"), received ${
            describe(item)
          }`,
        );}
    });
    return knocks.length === value.length ? knocks : undefined;
  }

  open(value: unknown, path: KeyPath): OpenAction | undefined {
    const o = this.map(value, path, OPEN_KEYS);
    if (!o) return undefined;
    const command = this.argv(o.command, [...path, "command"]);
    const closeCommand = this.argv(o.close_command, [...path, "close_command"]);
    return {
      forMs: this.duration(o.for, [...path, "for"], DEFAULTS.forMs, 1000, 7 * 86_400_000),
      command,
      closeCommand,
      commandTimeoutMs: this.duration(
        o.timeout,
        [...path, "timeout"],
        DEFAULTS.commandTimeoutMs,
        100,
        600_000,
      ),
      log: this.bool(o.log, [...path, "log"], true),
      nft: o.nft === undefined ? undefined : this.firewall(o.nft, [...path, "nft"]),
      iptables: o.iptables === undefined
        ? undefined
        : this.firewall(o.iptables, [...path, "iptables"]),
    };
  }

  firewall(value: unknown, path: KeyPath): FirewallSpec | undefined {
    const f = this.map(value, path, FIREWALL_KEYS);
    if (!f) return undefined;
    if ((f.port === undefined) === (f.ports === undefined)) {
      return this.fail(path, `needs "port" (or "ports"): the protected service, such as 22`, true);
    }
    const key = f.port === undefined ? "ports" : "port";
    const ports = parsePortList(f[key]);
    if (!ports.ok) return this.fail([...path, key], ports.error);
    if (ports.ports.length > 64) {
      return this.fail(
        [...path, key],
        `at most 64 protected ports, received ${ports.ports.length}`,
      );
    }
    const protocol = f.protocol ?? "tcp";
    if (protocol !== "tcp" && protocol !== "udp") {
      return this.fail([...path, "protocol"], `must be tcp or udp, received ${describe(protocol)}`);
    }
    return { ports: ports.ports, protocol };
  }
}

/**
 * Parses one knock as written in a static sequence or on the command line:
 * `7000`, `"7000"`, `"7000/udp"`, `"7000:tcp"`.
 *
 * @example
 * ```ts
 * import { parseKnock } from "./validate.ts";
 * parseKnock("8000/udp"); // { port: 8000, protocol: "udp" }
 * ```
 */
export function parseKnock(value: unknown, protocol: Protocol = "tcp"): Knock | undefined {
  const text = typeof value === "number"
    ? String(value)
    : typeof value === "string"
    ? value.trim()
    : "";
  const m = /^(\d{1,5})(?:[/:](tcp|udp))?$/i.exec(text);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, protocol: (m[2]?.toLowerCase() as Protocol | undefined) ?? protocol };
}

/** The firewall name of a door (nft sets, iptables comments): "-" becomes "_". */
export function nftSetBase(door: string): string {
  return `door_${door.replaceAll("-", "_")}`;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function poolOf(sequence: readonly Knock[], decoys: DoorPool): DoorPool {
  const sorted = (p: Protocol) =>
    [...new Set([...sequence.filter((k) => k.protocol === p).map((k) => k.port), ...decoys[p]])]
      .sort((a, b) => a - b);
  return { tcp: sorted("tcp"), udp: sorted("udp") };
}

/**
 * Decoy ports of a static door: the `n` ports on each side of every knock's port (same
 * protocol) that are not themselves knocks. A sweep in port order reaches a decoy before
 * the sequence; a knock on a decoy marks its source as a scanner.
 */
function decoysOf(sequence: readonly Knock[], n: number): DoorPool {
  const result: DoorPool = { tcp: [], udp: [] };
  for (const protocol of ["tcp", "udp"] as const) {
    const own = new Set(sequence.filter((k) => k.protocol === protocol).map((k) => k.port));
    const decoys = new Set<number>();
    for (const port of own) {
      for (let d = 1; d <= n; d++) {
        for (const p of [port - d, port + d]) {
          if (p >= 1 && p <= 65535 && !own.has(p)) decoys.add(p);
        }
      }
    }
    (result[protocol] as number[]).push(...[...decoys].sort((a, b) => a - b));
  }
  return result;
}

/** The known key closest to a misspelt one (edit distance ≤ 2), for "did you mean". */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
