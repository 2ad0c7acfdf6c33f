/**
 * What the iptables backend writes, pure: the SESAME chain of one family as an
 * iptables-restore script, and the ACCEPT rule of an open door (with its --datestop).
 * @module
 */
import { parseAddress } from "../address.ts";
import type { Door } from "../config/types.ts";
import type { OpenRecord } from "../store/store.ts";

/** sesame's chain in the filter table, jumped to from INPUT. */
export const CHAIN = "SESAME";

/** The address family an iptables script is for: iptables (v4) or ip6tables (v6). */
export type IptablesFamily = "v4" | "v6";

/**
 * iptables' --datestop takes UTC seconds and still matches during that second: stop at
 * the second before the door's time (never late), but no earlier than the next second.
 */
function datestop(until: number, now: number): string {
  const second = Math.max(Math.floor(until / 1000) - 1, Math.floor(now / 1000) + 1);
  return new Date(second * 1000).toISOString().slice(0, 19);
}

export function familyOf(source: string): IptablesFamily {
  const address = parseAddress(source);
  if (!address || address.text !== source) {
    throw new TypeError(`not a canonical address: ${JSON.stringify(source)}`);
  }
  return address.family === 4 ? "v4" : "v6";
}

/** The ACCEPT rule of an open record (without -A/-I/-D). */
export function acceptRule(record: OpenRecord, now: number): string {
  const grant = record.firewall!;
  const stop = datestop(record.until, now);
  return `-s ${record.source} -p ${grant.protocol} -m multiport --dports ${
    grant.ports.join(",")
  } ` +
    `-m time --datestop ${stop} -m comment --comment "sesame ${record.door}" -j ACCEPT`;
}

/**
 * The chain for one family as an iptables-restore script (--noflush: only SESAME is
 * replaced), with the open `records`' rules, or ACCEPT `rules` already rendered. Pure.
 *
 * @example
 * ```ts
 * import { iptablesScript } from "./iptables_rules.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({
 *   doors: { legacy: { sequence: [7000, 8000], open: { iptables: { port: 22 } } } },
 * });
 * const script = iptablesScript("v4", doors, [], 0);
 * assertEquals(script.includes("--dports 22 -m comment --comment \"sesame legacy\" -j DROP"), true);
 * ```
 */
export function iptablesScript(
  family: IptablesFamily,
  doors: readonly Door[],
  records: readonly OpenRecord[],
  now: number,
  rules: readonly string[] = [],
  closedReply: "drop" | "reject" = "drop",
): string {
  const lines = [
    "*filter",
    `:${CHAIN} - [0:0]`,
    `-A ${CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    ...rules.map((rule) => `-A ${CHAIN} ${rule}`),
  ];
  const guarded = doors.filter((d) => d.open?.iptables);
  const names = new Set(guarded.map((d) => d.name));
  for (const r of records) {
    if (
      r.firewall?.kind === "iptables" && names.has(r.door) && r.until > now &&
      familyOf(r.source) === family
    ) {
      lines.push(`-A ${CHAIN} ${acceptRule(r, now)}`);
    }
  }
  for (const door of guarded) {
    const { ports, protocol } = door.open!.iptables!;
    lines.push(
      `-A ${CHAIN} -p ${protocol} -m multiport --dports ${
        ports.join(",")
      } -m comment --comment "sesame ${door.name}" -j ${
        closedReply === "drop"
          ? "DROP"
          : protocol === "tcp"
          ? "REJECT --reject-with tcp-reset"
          : "REJECT"
      }`,
    );
  }
  lines.push("COMMIT");
  return lines.join("\n") + "\n";
}
