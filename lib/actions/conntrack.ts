/**
 * Ending the connections of revoked doors (`sesame revoke --established`): the kernel's
 * connection tracking keeps an accepted connection alive after its door closes, by design
 * (`ct state established`); deleting its entries ends it.
 * @module
 */
import { logger } from "../log.ts";
import type { OpenRecord } from "../store/store.ts";
import type { CommandRunner } from "./runner.ts";

const log = logger("daemon");
const CONNTRACK = "/usr/sbin/conntrack";

/**
 * The conntrack commands that drop what `record`'s door let in: per protected port, or
 * every connection of the address for a door on the admin's own sets (they name no port).
 * TCP: live connections only (not the TIME_WAIT remains of closed ones).
 *
 * @example
 * ```ts
 * import { conntrackCommands } from "./conntrack.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const argvs = conntrackCommands({
 *   door: "ssh", source: "192.0.2.7", until: 0, close: null,
 *   firewall: { kind: "nft", ports: [22], protocol: "tcp" },
 * });
 * assertEquals(argvs, [[
 *   "/usr/sbin/conntrack", "-D", "-s", "192.0.2.7", "-p", "tcp", "--state", "ESTABLISHED", "--dport", "22",
 * ]]);
 * ```
 */
export function conntrackCommands(record: OpenRecord): string[][] {
  const base = [
    CONNTRACK,
    "-D",
    ...(record.source.includes(":") ? ["-f", "ipv6"] : []),
    "-s",
    record.source,
  ];
  const fw = record.firewall;
  const state = fw?.protocol === "udp" ? [] : ["--state", "ESTABLISHED"];
  return fw && fw.ports.length > 0
    ? fw.ports.map((p) => [...base, "-p", fw.protocol, ...state, "--dport", String(p)])
    : [base];
}

/** Deletes the conntrack entries of `records`' doors; returns how many were deleted. */
export async function dropConnections(
  runner: CommandRunner,
  records: readonly OpenRecord[],
): Promise<number> {
  let dropped = 0;
  for (const r of records) {
    for (const argv of conntrackCommands(r)) {
      const result = await runner.run(argv, { timeoutMs: 5000, essential: true });
      const count = /(\d+) flow entries have been deleted/.exec(result.error)?.[1];
      if (count === undefined) {
        log.error("conntrack: cannot drop the connections of {source}: {error}", {
          source: r.source,
          error: result.error || `exit code ${result.code}`,
        });
      } else dropped += Number(count);
    }
  }
  return dropped;
}
