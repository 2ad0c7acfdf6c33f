/**
 * Host checks before binding: enough file descriptors for every socket (Deno cannot raise
 * the limit), and pool ports inside the kernel's ephemeral range (outgoing connections
 * may take them).
 * @module
 */
import type { Door } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import { ephemeralPortRange, openFileLimit } from "../system.ts";

const log = logger("daemon");
/** Descriptors kept free beside the sockets: state, nft, commands, logs. */
const FD_MARGIN = 64;

/**
 * Refuses to start when `sockets` would not fit under the open-file limit.
 * @throws {ConfigError} naming the limit and how to raise it.
 */
export async function checkDescriptors(sockets: number): Promise<void> {
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

/** Warns about pool ports inside the kernel's ephemeral port range. */
export async function warnEphemeral(doors: readonly Door[]): Promise<void> {
  const range = await ephemeralPortRange();
  if (!range) return;
  for (const door of doors) {
    const ports = [...door.pool.tcp, ...door.pool.udp];
    const inside = ports.filter((p) => p >= range[0] && p <= range[1]).length;
    if (inside > 0) {
      log.warning(
        "door {door}: {inside} pool ports lie in the kernel's ephemeral range {lo}-{hi} (net.ipv4.ip_local_port_range): outgoing connections may take them",
        { door: door.name, inside, lo: range[0], hi: range[1] },
      );
    }
  }
}
