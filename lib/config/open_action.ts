/**
 * Validation of a door's `open` action: how long, the commands (argv, never a shell), and
 * the firewall grant (nft or iptables, sesame's sets or the admin's own, a gateway's
 * forward or dnat).
 * @module
 */
import { parseAddress } from "../address.ts";
import { describe, parsePortList } from "../ports.ts";
import type { Checker, KeyPath } from "./checker.ts";
import { DEFAULTS, FIREWALL_KEYS, GATEWAY_KEYS, OPEN_KEYS } from "./schema.ts";
import type { FirewallSpec, OpenAction } from "./types.ts";

/** Validates a door's `open`; `undefined` when it is too broken to use (its issues are in `c`). */
export function checkOpen(c: Checker, value: unknown, path: KeyPath): OpenAction | undefined {
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
  const hosts = insideHosts(c, to.host, [...at, "to", "host"]);
  if (!hosts) return undefined;
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
      hosts,
      toPorts: toPorts.ports,
      masquerade: c.bool(g.masquerade, [...at, "masquerade"], false),
    },
  };
}

/**
 * `to.host`: the inside host's address, or a list of its IPv4 and IPv6 addresses (one of
 * each at most) for a dual-stack host.
 */
function insideHosts(
  c: Checker,
  value: unknown,
  at: KeyPath,
): { host: string; family: 4 | 6 }[] | undefined {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || list.length > 2) {
    return c.fail(
      at,
      `must be the inside host's address, or a list of its IPv4 and IPv6 addresses, received ${
        describe(value)
      }`,
    );
  }
  const hosts: { host: string; family: 4 | 6 }[] = [];
  for (const [i, item] of list.entries()) {
    const address = typeof item === "string" ? parseAddress(item) : undefined;
    const where = Array.isArray(value) ? [...at, i] : at;
    if (!address) {
      return c.fail(
        where,
        `must be the inside host's IPv4 or IPv6 address, received ${describe(item)}`,
      );
    }
    if (hosts.some((h) => h.family === address.family)) {
      return c.fail(
        where,
        `names a second IPv${address.family} address: one inside host per door, one address per family`,
      );
    }
    hosts.push({ host: address.text, family: address.family });
  }
  return hosts;
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
