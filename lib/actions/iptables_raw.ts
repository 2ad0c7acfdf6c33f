/**
 * Knocks kept out of conntrack on the iptables backend, as the nft table's raw chains keep
 * them (docs/FIREWALL.md): in iptables' raw table, SESAME-KNOCKS-IN (jumped to from
 * PREROUTING) marks knocks to a local address NOTRACK, and SESAME-KNOCKS-OUT (from OUTPUT)
 * the listeners' answers. A knock then costs no conntrack entry, so a flood of them cannot
 * fill the table, which once full drops every new connection of the host.
 * @module
 */
import type { Door } from "../config/types.ts";
import { knockPorts, portSpans } from "./knock_ports.ts";

/** The raw table's chains, and the built-in chain that jumps to each. */
export const RAW_CHAINS = [
  { chain: "SESAME-KNOCKS-IN", from: "PREROUTING", match: "--dports", local: true },
  { chain: "SESAME-KNOCKS-OUT", from: "OUTPUT", match: "--sports", local: false },
] as const;

/** multiport takes 15 ports a rule, a range counting as two. */
const MULTIPORT_SLOTS = 15;

/** Ports as multiport lists (`7000,20000:20999`) of at most 15 slots each. */
export function multiportLists(ports: readonly number[]): string[] {
  const lists: string[] = [];
  let list: string[] = [], slots = 0;
  for (const [a, b] of portSpans(ports)) {
    const cost = a === b ? 1 : 2;
    if (slots + cost > MULTIPORT_SLOTS) {
      lists.push(list.join(","));
      list = [];
      slots = 0;
    }
    list.push(a === b ? String(a) : `${a}:${b}`);
    slots += cost;
  }
  if (list.length > 0) lists.push(list.join(","));
  return lists;
}

/**
 * The raw table's part as an iptables-restore script (`--noflush`: only sesame's two
 * chains are declared, hence emptied, and filled again; left empty when not `untrack`).
 * The same for both families. Pure.
 *
 * @example
 * ```ts
 * import { rawScript } from "./iptables_raw.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({
 *   doors: { legacy: { sequence: [7000, 8000], open: { iptables: { port: 22 } } } },
 * });
 * // A static door's pool: its ports and their neighbours (a scan of them resets an attempt).
 * const out = "-A SESAME-KNOCKS-OUT -p tcp -m multiport --sports 6998:7002,7998:8002 -j CT --notrack";
 * assertEquals(rawScript(doors).includes(out), true);
 * ```
 */
export function rawScript(doors: readonly Door[], untrack = true): string {
  const ports = untrack ? knockPorts(doors) : { tcp: [], udp: [] };
  const lines = ["*raw", ...RAW_CHAINS.map((c) => `:${c.chain} - [0:0]`)];
  for (const { chain, match, local } of RAW_CHAINS) {
    for (const protocol of ["tcp", "udp"] as const) {
      for (const list of multiportLists(ports[protocol])) {
        const to = local ? " -m addrtype --dst-type LOCAL" : "";
        lines.push(`-A ${chain} -p ${protocol}${to} -m multiport ${match} ${list} -j CT --notrack`);
      }
    }
  }
  lines.push("COMMIT");
  return lines.join("\n") + "\n";
}

/**
 * An admin's rule (`iptables -S` lines) untracked knocks could fall foul of: one sorting by
 * state NEW but not UNTRACKED, whatever it then does (accept, or jump to a chain that
 * accepts the pools: untracked knocks would miss it and fall through, often to a drop),
 * one dropping or rejecting UNTRACKED, or one negating a state set. The first, if any.
 */
export function trackedAccept(rules: string): string | undefined {
  return rules.split("\n").find((line) => {
    if (/^-A SESAME/.test(line)) return false;
    const match = /(!\s+)?--(?:ct)?state (\S+)/.exec(line);
    if (!match) return false;
    const states = match[2].split(",");
    const untracked = states.includes("UNTRACKED");
    return match[1] !== undefined || // a negated set: untracked packets fall in it
      (states.includes("NEW") && !untracked) ||
      (untracked && /-j (DROP|REJECT)\b/.test(line));
  });
}
