/**
 * Config validation: plain data in, a {@link Config} or a {@link ConfigError} listing every
 * issue with its key path and, through `locate`, its file position. Pure: files named by
 * `secret_file` are read through the injected `readSecretFile`. Doors are validated in
 * door.ts; this file checks the top level and what spans doors.
 * @module
 */
import { parseCidr } from "../address.ts";
import { ConfigError } from "../errors.ts";
import { describe } from "../ports.ts";
import { nftSetBase } from "../actions/nft_names.ts";
import { Checker, type CheckerOptions, isMapping } from "./checker.ts";
import { validateDoor } from "./door.ts";
import { checkCluster, withFleet } from "./cluster.ts";
import { DEFAULTS, LISTEN_KEYS, TOP_KEYS } from "./schema.ts";
import { checkLog } from "./log_target.ts";
import type { Config, Door } from "./types.ts";

/** Options for {@link validateConfig}. */
export type ValidateOptions = CheckerOptions;

/**
 * Validates a parsed config document.
 *
 * @example
 * ```ts
 * import { validateConfig } from "./validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000, "8000/udp", 9000] } } });
 * assertEquals(config.doors[0].kind, "static");
 * ```
 * @throws {ConfigError} listing every problem found.
 */
export function validateConfig(raw: unknown, options: ValidateOptions = {}): Config {
  const c = new Checker(options);
  const config = checkConfig(c, raw);
  if (c.issues.length > 0 || !config) throw new ConfigError(c.issues);
  return c.warnings.length > 0 ? { ...config, warnings: c.warnings } : config;
}

function checkConfig(c: Checker, raw: unknown): Config | undefined {
  const top = c.map(raw ?? undefined, [], TOP_KEYS);
  if (!top) return undefined;
  const listen = top.listen === undefined ? {} : c.map(top.listen, ["listen"], LISTEN_KEYS) ?? {};
  const nflog = listen.capture === "nflog";
  const clustered = top.cluster !== undefined;
  let addresses = ["::"];
  if (listen.addresses !== undefined) {
    const list = listen.addresses;
    if (!Array.isArray(list) || list.length === 0) {
      c.fail(
        ["listen", "addresses"],
        `must be a non-empty list of addresses, received ${describe(list)}`,
      );
    } else {
      addresses = [];
      list.forEach((a, i) => {
        const cidr = typeof a === "string" ? parseCidr(a) : undefined;
        if (!cidr || a.includes("/")) {
          c.fail(["listen", "addresses", i], `must be an IP address, received ${describe(a)}`);
        } else addresses.push(a);
      });
      if (addresses.includes("::") && addresses.includes("0.0.0.0")) {
        c.fail(
          ["listen", "addresses"],
          `"::" already receives IPv4 on Linux; binding "0.0.0.0" beside it fails on every port: list only "::"`,
        );
      }
    }
  }
  let stateFile: string | undefined;
  if (top.state_file !== undefined) {
    if (typeof top.state_file !== "string" || top.state_file === "") {
      c.fail(["state_file"], `must be a file path, received ${describe(top.state_file)}`);
    } else stateFile = top.state_file;
  }
  const doors: Door[] = [];
  const rawDoors = isMapping(top.doors) ? top.doors : c.fail(
    ["doors"],
    `must be a mapping of door names to doors, received ${describe(top.doors)}`,
  );
  if (rawDoors) {
    const names = Object.keys(rawDoors);
    if (names.length === 0) c.fail(["doors"], "must name at least one door");
    const nftNames = new Map<string, string>();
    for (const name of names) {
      // The capture intake binds nothing: a pool is one set lookup for the kernel.
      const valid = validateDoor(c, name, rawDoors[name], nflog ? 65_535 : DEFAULTS.maxPool);
      if (!valid) continue;
      const door = withFleet(c, valid, rawDoors[name] as Record<string, unknown>, clustered);
      doors.push(door);
      if (door.open?.nft && door.open.iptables) {
        c.fail(
          ["doors", name, "open", "iptables"],
          `a door takes "nft" or "iptables", not both`,
          true,
        );
      }
      const nft = nftSetBase(name);
      if (nftNames.has(nft)) {
        c.fail(
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
  crossDoorChecks(c, doors);
  const cluster = checkCluster(c, top.cluster);
  return {
    addresses,
    stateFile,
    maxSources: c.int(
      listen.max_sources,
      ["listen", "max_sources"],
      DEFAULTS.maxSources,
      1,
      10_000_000,
    ),
    closedReply: c.oneOf(
      listen.closed_reply,
      ["listen", "closed_reply"],
      "auto",
      [
        "auto",
        "reject",
        "drop",
      ] as const,
    ),
    reorderWindowMs: c.duration(
      listen.reorder_window,
      ["listen", "reorder_window"],
      DEFAULTS.reorderWindowMs,
      0,
      10_000,
    ),
    iptablesTool: listen.iptables === undefined
      ? "iptables"
      : listen.iptables === "iptables" || listen.iptables === "iptables-nft" ||
          listen.iptables === "iptables-legacy"
      ? listen.iptables
      : c.fail(
        ["listen", "iptables"],
        `must be iptables, iptables-nft or iptables-legacy, received ${describe(listen.iptables)}`,
      ) ?? "iptables",
    nftMode: listen.nft_mode === undefined
      ? "session"
      : listen.nft_mode === "session" || listen.nft_mode === "batch"
      ? listen.nft_mode
      : c.fail(
        ["listen", "nft_mode"],
        `must be session or batch, received ${describe(listen.nft_mode)}`,
      ) ?? "session",
    scan: {
      // Distinct missed knocks (ports that fit no sequence in the window) a source may
      // make in the window: a knocker makes a few at most, a sweep one per pool port.
      threshold: c.int(
        listen.scan_threshold,
        ["listen", "scan_threshold"],
        DEFAULTS.scanThreshold,
        2,
        1000,
      ),
      windowMs: c.duration(
        listen.scan_window,
        ["listen", "scan_window"],
        DEFAULTS.scanWindowMs,
        0,
        600_000,
      ),
      cooldownMs: c.duration(
        listen.scan_cooldown,
        ["listen", "scan_cooldown"],
        DEFAULTS.scanCooldownMs,
        0,
        86_400_000,
      ),
    },
    ...checkMetrics(c, listen),
    log: checkLog(c, listen.log),
    capture: c.oneOf(listen.capture, ["listen", "capture"], "sockets", ["sockets", "nflog"]) ===
        "nflog"
      ? {
        kind: "nflog",
        group: c.int(listen.nflog_group, ["listen", "nflog_group"], DEFAULTS.nflogGroup, 1, 65535),
      }
      : listen.nflog_group === undefined
      ? { kind: "sockets" }
      : c.fail(["listen", "nflog_group"], `only listen.capture: nflog takes a group`) ??
        { kind: "sockets" },
    ...(cluster ? { cluster } : {}),
    allow: c.cidrs(top.allow, ["allow"]),
    deny: c.cidrs(top.deny, ["deny"]),
    doors,
  };
}

/**
 * `listen.metrics: "127.0.0.1:9464"` (or `"[::1]:9464"`): where /metrics is served. A
 * non-loopback address shows the doors' activity to the network: refused unless
 * `listen.metrics_public: true`.
 */
function checkMetrics(
  c: Checker,
  listen: Record<string, unknown>,
): Pick<Config, "metrics" | "metricsFile"> {
  const isPublic = c.bool(listen.metrics_public, ["listen", "metrics_public"], false);
  const file = listen.metrics_file;
  let metricsFile: string | undefined;
  if (file !== undefined) {
    if (typeof file !== "string" || !file.startsWith("/") || !file.endsWith(".prom")) {
      c.fail(
        ["listen", "metrics_file"],
        `must be an absolute path ending in .prom (node_exporter's textfile collector reads *.prom), such as "/var/lib/prometheus/node-exporter/sesame.prom", received ${
          describe(file)
        }`,
      );
    } else metricsFile = file;
  }
  const withFile = metricsFile === undefined ? {} : { metricsFile };
  if (listen.metrics === undefined) return withFile;
  const at = ["listen", "metrics"];
  const text = listen.metrics;
  const match = typeof text === "string" ? /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text) : null;
  const hostname = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  const address = hostname === undefined ? undefined : parseCidr(hostname);
  if (!match || !address || hostname!.includes("/") || !(port >= 1 && port <= 65535)) {
    c.fail(
      at,
      `must be ADDRESS:PORT, such as "127.0.0.1:9464" or "[::1]:9464", received ${describe(text)}`,
    );
    return {};
  }
  const loopback = hostname === "::1" || /^127\./.test(hostname!);
  if (!loopback && !isPublic) {
    c.fail(
      at,
      `${hostname} is not a loopback address: the metrics would show every door's activity to the network. Serve them on 127.0.0.1 (scrape through a tunnel or a local agent), or set listen.metrics_public: true`,
    );
    return {};
  }
  return { metrics: { hostname: hostname!, port }, ...withFile };
}

/**
 * What spans doors: a knock port belongs to one door (a knock there would count for two),
 * and a protected port is never a knock port (the listener would answer in its place).
 */
function crossDoorChecks(c: Checker, doors: readonly Door[]): void {
  const owner = new Map<string, string>();
  const spaPorts = new Map<number, string>();
  const hmacKeys = new Map<string, string>();
  for (const door of doors) {
    if (door.kind !== "spa") continue;
    spaPorts.set(door.spa.port, door.name);
    // The HMAC tells whose packet it is: two doors on a port with one HMAC key cannot be told apart.
    const key = `${door.spa.port}/${btoa(String.fromCharCode(...door.spa.keys.hmac))}`;
    const twin = hmacKeys.get(key);
    if (twin !== undefined) {
      c.fail(
        ["doors", door.name, "spa"],
        `has the same HMAC key as door "${twin}" on port ${door.spa.port}: packets could not be told apart; give each door keys of its own (sesame keygen --spa)`,
      );
    }
    hmacKeys.set(key, door.name);
  }
  for (const door of doors) {
    const key = door.kind === "static" ? "sequence" : "ports";
    const spaClash = door.pool.udp.find((p) => spaPorts.has(p));
    if (spaClash !== undefined) {
      c.fail(
        ["doors", door.name, key],
        `knock port ${spaClash}/udp is the SPA port of door "${
          spaPorts.get(spaClash)
        }": SPA packets and knocks cannot share a port`,
      );
    }
    const own = door.kind === "static"
      ? door.sequence.map((k) => `${k.port}/${k.protocol}`)
      : [...door.pool.tcp.map((p) => `${p}/tcp`), ...door.pool.udp.map((p) => `${p}/udp`)];
    const clash = own.find((k) => owner.has(k) && owner.get(k) !== door.name);
    if (clash) {
      c.fail(
        ["doors", door.name, key],
        `knock port ${clash} belongs to door "${
          owner.get(clash)
        }" too: a knock there would count for both doors; give each door its own ports`,
      );
    }
    for (const k of own) if (!owner.has(k)) owner.set(k, door.name);
  }
  // A dnat door's router port is its own: another door guarding it, or forwarding it too,
  // would make whose knock reaches what depend on rule order.
  const routerPorts = new Map<string, string>();
  for (const door of doors) {
    for (const kind of ["nft", "iptables"] as const) {
      const spec = door.open?.[kind];
      if (!spec || spec.gateway?.kind === "forward") continue;
      for (const p of spec.ports) {
        const k = `${p}/${spec.protocol}`;
        const other = routerPorts.get(k);
        const dnat = spec.gateway?.kind === "dnat";
        if (other !== undefined && other !== door.name && (dnat || other.startsWith("dnat:"))) {
          c.fail(
            ["doors", door.name, "open", kind],
            `port ${k} is door "${
              other.replace(/^dnat:/, "")
            }"'s too: a dnat door's router port belongs to that door alone`,
          );
        }
        if (!routerPorts.has(k) || dnat) routerPorts.set(k, dnat ? `dnat:${door.name}` : door.name);
      }
    }
  }
  for (const door of doors) {
    for (const kind of ["nft", "iptables"] as const) {
      const spec = door.open?.[kind];
      const spaHit = spec && !spec.gateway && spec.protocol === "udp"
        ? spec.ports.find((p) => spaPorts.has(p))
        : undefined;
      if (spaHit !== undefined) {
        c.fail(
          ["doors", door.name, "open", kind],
          `protected port ${spaHit}/udp is the SPA port of door "${
            spaPorts.get(spaHit)
          }": its packets would be dropped before sesame reads them`,
        );
      }
      const hit = spec?.gateway?.kind === "forward"
        ? undefined // the inside host's ports: not this host's
        : spec?.ports.map((p) => `${p}/${spec.protocol}`).find((k) => owner.has(k));
      if (hit) {
        c.fail(
          ["doors", door.name, "open", kind],
          `protected port ${hit} is a knock port of door "${
            owner.get(hit)
          }": sesame would answer there in the service's place`,
        );
      }
    }
  }
}
