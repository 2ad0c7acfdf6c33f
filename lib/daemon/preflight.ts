/**
 * Host checks before binding: enough file descriptors for every socket (Deno cannot raise
 * the limit), and pool ports inside the kernel's ephemeral range (outgoing connections
 * may take them).
 * @module
 */
import type { Config } from "../config/types.ts";
import { wantedEndpoints } from "./binding.ts";
import type { Door } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import { ephemeralPortRange, forwarding, openFileLimit } from "../system.ts";

const log = logger("daemon");
/** Descriptors kept free beside the sockets: state, nft, commands, logs. */
const FD_MARGIN = 64;

/**
 * Refuses to start when `sockets` would not fit under the open-file limit.
 * @throws {ConfigError} naming the limit and how to raise it.
 */
export async function checkDescriptors(sockets: number): Promise<void> {
  if (sockets === 0) return;
  const limit = await openFileLimit();
  if (limit && sockets + FD_MARGIN > limit.soft) {
    throw new ConfigError([{
      path: "doors",
      message:
        `needs ${sockets} sockets (+${FD_MARGIN} spare) but the open file limit is ${limit.soft}` +
        ` (hard ${limit.hard}): raise it (systemd LimitNOFILE=${
          sockets + 1024
        }, or ulimit -n) or shrink the pools`,
    }]);
  }
}

/** The sockets `config`'s intake binds: one per endpoint for the dummy listeners, none for the capture. */
export function socketsNeeded(config: Config): number {
  return config.capture.kind === "nflog"
    ? 0
    : wantedEndpoints(config.doors, config.addresses).length;
}

/**
 * Pool ports inside the kernel's ephemeral port range: refused where sesame's nft table
 * keeps knocks out of conntrack (the host's own connections from such a port would have
 * their replies untracked, and its `ct state established` rules would drop them), warned
 * about elsewhere (outgoing connections may take them).
 * @throws {ConfigError} for the refused ones.
 */
export async function checkEphemeral(doors: readonly Door[]): Promise<void> {
  const range = await ephemeralPortRange();
  if (!range) return;
  const untracked = doors.some((d) => d.open?.nft && !d.open.nft.sets);
  const refused = [];
  for (const door of doors) {
    const ports = [
      ...door.pool.tcp,
      ...door.pool.udp,
      ...door.kind === "spa" ? [door.spa.port] : [],
    ];
    const inside = ports.filter((p) => p >= range[0] && p <= range[1]);
    if (inside.length === 0) continue;
    if (untracked) {
      refused.push({
        path: `doors.${door.name}`,
        message: `${inside.length} of its knock ports (${
          inside[0]
        }…) lie in the kernel's ephemeral range ${range[0]}-${
          range[1]
        } (net.ipv4.ip_local_port_range): sesame keeps knocks out of conntrack, which would break the host's own connections from those ports. Move the pool below ${
          range[0]
        }, or narrow the range (sysctl net.ipv4.ip_local_port_range)`,
      });
      continue;
    }
    log.warning(
      "door {door}: {inside} pool ports lie in the kernel's ephemeral range {lo}-{hi} (net.ipv4.ip_local_port_range): outgoing connections may take them",
      { door: door.name, inside: inside.length, lo: range[0], hi: range[1] },
    );
  }
  if (refused.length > 0) throw new ConfigError(refused);
}

/**
 * What a router needs for the doors that open hosts behind it, as warnings: forwarding
 * on (a door forwards nothing otherwise), and dnat ports no local program listens on
 * (its listener would never see a knocker, and nobody else reaches it through sesame).
 */
export async function gatewayWarnings(doors: readonly Door[]): Promise<string[]> {
  const warnings: string[] = [];
  const families = new Map<4 | 6, string[]>();
  const oneFamily: { door: string; host: string; other: 4 | 6 }[] = [];
  for (const door of doors) {
    const spec = door.open?.nft;
    const g = spec?.gateway;
    if (!spec || !g) continue;
    for (const { family } of g.hosts) {
      families.set(family, [...families.get(family) ?? [], door.name]);
    }
    if (g.hosts.length === 1) {
      oneFamily.push({
        door: door.name,
        host: g.hosts[0].host,
        other: g.hosts[0].family === 4 ? 6 : 4,
      });
    }
    if (g.kind === "dnat" && spec.protocol === "tcp" && portTaken(spec.ports[0])) {
      warnings.push(
        `door ${door.name}: a local program listens on TCP port ${
          spec.ports[0]
        }, the door's dnat port: knockers are sent on to ${
          g.hosts.map((h) => h.host).join(" and ")
        }, everyone else is dropped there, so that program is cut off`,
      );
    }
  }
  // The inside host's other family passes this router ungated: say so where it can.
  for (const { door, host, other } of oneFamily) {
    if (await forwarding(other) === false) continue;
    warnings.push(
      `door ${door} gates only ${host}: if that host has an IPv${other} address too, it is reachable over IPv${other} through this router without a knock; name both, e.g. to: { host: [${host}, ${
        other === 6 ? '"fd00::10"' : "192.168.1.10"
      }] }`,
    );
  }
  for (const [family, names] of families) {
    if (await forwarding(family) === false) {
      const sysctl = family === 4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding";
      warnings.push(
        `door${names.length > 1 ? "s" : ""} ${names.join(", ")} open${
          names.length > 1 ? "" : "s"
        } an IPv${family} host behind this router, but forwarding is off here (${sysctl} = 0): nothing will pass until sysctl -w ${sysctl}=1`,
      );
    }
  }
  return warnings;
}

/** True when binding TCP `port` fails because something holds it. */
function portTaken(port: number): boolean {
  for (const hostname of ["::", "0.0.0.0"]) {
    try {
      Deno.listen({ hostname, port }).close();
      return false;
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse) return true;
    }
  }
  return false;
}

/**
 * A config `listen` can run: every door has an action (a client-side door has none).
 * @throws {ConfigError} naming each door without `open`.
 */
export function assertRunnable(config: Config): void {
  const clientOnly = config.doors.filter((d) => !d.open);
  if (clientOnly.length > 0) {
    throw new ConfigError(clientOnly.map((d) => ({
      path: `doors.${d.name}`,
      message: `has no "open": it is a client-side door; listen needs an action for every door`,
    })));
  }
}
