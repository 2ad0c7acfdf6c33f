/**
 * sesame's nftables rules as text, pure: the whole table (sets with timeouts, the input
 * chain, a gateway's forward and nat chains) and the element lines of one opening. The
 * backend (nft.ts) sends them; `sesame nft-ruleset` prints them.
 * @module
 */
import { knockPorts, portSpans } from "./knock_ports.ts";
import { parseAddress } from "../address.ts";
import type { Door } from "../config/types.ts";
import type { OpenRecord } from "../store/store.ts";
import { nftSetBase } from "./nft_names.ts";

/** nft takes element timeouts down to 1 s in practice; shorter ones are rounded up. */
const MIN_TIMEOUT_MS = 1000;

/** The admin's own sets the doors name (`family table set`), each with the type it must have. */
export function adminSets(doors: readonly Door[]): Map<string, "ipv4_addr" | "ipv6_addr"> {
  const sets = new Map<string, "ipv4_addr" | "ipv6_addr">();
  for (const door of doors) {
    const own = door.open?.nft?.sets;
    if (own?.v4) sets.set(own.v4, "ipv4_addr");
    if (own?.v6) sets.set(own.v6, "ipv6_addr");
  }
  return sets;
}

/** The door's set names. */
function sets(door: string): { v4: string; v6: string } {
  const base = nftSetBase(door);
  return { v4: `${base}_v4`, v6: `${base}_v6` };
}

/** One element line (add, delete, add: creates or refreshes the timeout atomically, on every kernel). */
export function elementLines(record: OpenRecord, now: number): string[] {
  const address = parseAddress(record.source);
  if (!address || address.text !== record.source) {
    throw new TypeError(`not a canonical address: ${JSON.stringify(record.source)}`);
  }
  const family = address.family === 4 ? "v4" : "v6";
  const own = record.firewall?.sets;
  const set = own ? own[family] : `inet sesame ${sets(record.door)[family]}`;
  if (!set) {
    throw new TypeError(
      `door ${record.door} names no IPv${address.family} set: cannot open for ${record.source}`,
    );
  }
  const timeout = Math.max(MIN_TIMEOUT_MS, Math.ceil(record.until - now));
  const target = `${set} { ${address.text}`;
  // In the admin's own set an element may be the admin's (permanent): never delete or
  // change one, only create (an element already there is left as it is: see ALREADY_THERE).
  if (own) return [`create element ${target} timeout ${timeout}ms }`];
  return [
    `add element ${target} }`,
    `delete element ${target} }`,
    `add element ${target} timeout ${timeout}ms }`,
  ];
}

/**
 * The whole table as an `nft -f` script: created if missing, deleted and rebuilt in the
 * same transaction (all or nothing), with the open `records` put back. Pure.
 *
 * @example
 * ```ts
 * import { nftRuleset } from "./nft_rules.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({
 *   doors: { legacy: { sequence: [7000, 8000], open: { nft: { port: 22 } } } },
 * });
 * const script = nftRuleset(doors, [], 0);
 * assertEquals(script.includes("tcp dport { 22 } drop"), true);
 * ```
 */
export function nftRuleset(
  doors: readonly Door[],
  records: readonly OpenRecord[],
  now: number,
  options: RulesetOptions = {},
): string {
  const reply = (protocol: "tcp" | "udp") =>
    options.closedReply !== "reject"
      ? "drop"
      : protocol === "tcp"
      ? "reject with tcp reset"
      : "reject";
  // Doors that name the admin's own sets have no rules here: the admin's ruleset holds them.
  const guarded = doors.filter((d) => d.open?.nft && !d.open.nft.sets);
  const lines = [
    "# sesame's table: generated, replaced as a whole on every start and reload",
    "table inet sesame {}",
    "delete table inet sesame",
  ];
  if (guarded.length === 0 && !options.capture) return lines.join("\n") + "\n";
  lines.push(
    "table inet sesame {",
    "  # sesame checks its long-lived nft session with this set; it allows nothing",
    "  set session_probe { type ipv4_addr; flags timeout; }",
  );
  for (const door of guarded) {
    const { v4, v6 } = sets(door.name);
    lines.push(
      `  set ${v4} { type ipv4_addr; flags timeout; }`,
      `  set ${v6} { type ipv6_addr; flags timeout; }`,
    );
  }
  const local = guarded.filter((d) => !d.open!.nft!.gateway);
  const gateways = guarded.filter((d) => d.open!.nft!.gateway);
  lines.push(
    "  chain input {",
    "    type filter hook input priority filter - 10; policy accept;",
    "    # connections opened while a door was open live on after it closes",
    "    ct state established,related accept",
  );
  // Every door's sources first, then the drops: doors may protect the same port (one door
  // per person), and a drop of the first would shadow the second's sources.
  const drops: string[] = [];
  for (const door of local) {
    const { ports, protocol } = door.open!.nft!;
    const { v4, v6 } = sets(door.name);
    const match = `${protocol} dport { ${ports.join(", ")} }`;
    lines.push(
      `    # door ${door.name}`,
      `    ${match} ip saddr @${v4} accept`,
      `    ${match} ip6 saddr @${v6} accept`,
    );
    drops.push(`    ${match} ${reply(protocol)}`);
  }
  for (const door of gateways) {
    const { ports, protocol, gateway } = door.open!.nft!;
    // The knocker's connections to a dnat port are forwarded before input; anyone else's
    // would reach a local program there.
    if (gateway!.kind === "dnat") {
      drops.push(`    ${protocol} dport { ${ports[0]} } ${reply(protocol)}`);
    }
  }
  if (drops.length > 0) {
    lines.push("    # everyone else, after every door's sources", ...new Set(drops));
  }
  lines.push("  }", ...(gateways.length > 0 ? gatewayChains(gateways) : []));
  if (options.untrack !== false) lines.push(...untrackedKnocks(doors));
  if (options.capture) {
    lines.push(...captureChain(doors, options.capture, options.closedReply ?? "drop"));
  }
  lines.push("}");
  const names = new Set(guarded.map((d) => d.name));
  for (const record of records) {
    if (names.has(record.door) && record.until > now) lines.push(...elementLines(record, now));
  }
  return lines.join("\n") + "\n";
}

/** Options for {@link nftRuleset}. */
export interface RulesetOptions {
  /**
   * Keep knocks out of conntrack (raw chains), unless that would lock knockers out (see
   * untrack_decision.ts). @default true
   */
  readonly untrack?: boolean;
  /**
   * How a protected port refuses everyone else: `drop` (silence) or `reject` (a TCP reset,
   * an ICMP port unreachable), as the host's other closed ports answer. @default "drop"
   */
  readonly closedReply?: "drop" | "reject";
  /**
   * The capture intake (`listen.capture: nflog`): the first packet of each knock goes to
   * this NFLOG group, and every pool port answers as a closed port does. @default none
   */
  readonly capture?: { readonly group: number; readonly addresses?: readonly string[] };
}

/**
 * The raw chains that keep knocks out of conntrack: every knock port (pools, decoys and SPA
 * ports) of a local address, in and out. A knock then costs no conntrack entry, so no flood
 * of them can fill the table (which drops every new connection of the host once full).
 * The listeners answer without conntrack; replies from pool ports go out untracked too,
 * which is why a pool must not overlap the host's ephemeral port range.
 */
function untrackedKnocks(doors: readonly Door[]): string[] {
  const ports = knockPorts(doors);
  const protocols = (["tcp", "udp"] as const).filter((p) => ports[p].length > 0);
  if (protocols.length === 0) return [];
  const set = (p: "tcp" | "udp") => `{ ${portRanges(ports[p])} }`;
  return [
    "  # knocks never enter conntrack: a flood of them cannot fill its table",
    "  chain knocks_in {",
    "    type filter hook prerouting priority raw; policy accept;",
    ...protocols.map((p) => `    fib daddr type local ${p} dport ${set(p)} notrack`),
    "  }",
    "  chain knocks_out {",
    "    type filter hook output priority raw; policy accept;",
    ...protocols.map((p) => `    ${p} sport ${set(p)} notrack`),
    "  }",
  ];
}

/**
 * The capture intake's chain: the first packet of each knock (a SYN without ACK, a
 * datagram) to a local address goes to the NFLOG group, each at once (`queue-threshold
 * 1`: batched, a knock reached the reader a second late), and then every pool packet is
 * answered as the host's closed ports answer, so a scan tells pool ports from unused ones
 * by nothing. Before sesame's input chain, and before the admin's (priority filter - 20).
 */
function captureChain(
  doors: readonly Door[],
  capture: { readonly group: number; readonly addresses?: readonly string[] },
  closedReply: "drop" | "reject",
): string[] {
  const ports = knockPorts(doors);
  // Only knocks to the addresses listen names count, as with the sockets intake.
  const addresses = capture.addresses ?? ["::"];
  const v4 = addresses.filter((a) => !a.includes(":") && a !== "0.0.0.0");
  const v6 = addresses.filter((a) => a.includes(":") && a !== "::");
  const to = addresses.includes("::") ? ["fib daddr type local"] : [
    ...(addresses.includes("0.0.0.0") ? ["meta nfproto ipv4 fib daddr type local"] : []),
    ...(v4.length > 0 ? [`ip daddr { ${v4.join(", ")} }`] : []),
    ...(v6.length > 0 ? [`ip6 daddr { ${v6.join(", ")} }`] : []),
  ];
  // The counter says how many the kernel handed over: set against what the reader parsed.
  const log = `counter log group ${capture.group} queue-threshold 1`;
  const lines = [
    "  # per source (an IPv6 /64): knocks beyond 20 a second (after a burst of 100) are",
    "  # dropped unheard: with nothing to ban on (a SYN proves no source), this keeps a",
    "  # scanner to one sweep of a 1 000-port pool every 50 s",
    `  set capture_rate_v4 { type ipv4_addr; size 65535; flags dynamic, timeout; timeout 60s; }`,
    `  set capture_rate_v6 { type ipv6_addr; size 65535; flags dynamic, timeout; timeout 60s; }`,
    "  # knocks go to the capture intake (NFLOG); pool ports then answer as unused ports do",
    "  chain capture {",
    "    type filter hook input priority filter - 20; policy accept;",
  ];
  const limit = "limit rate over 20/second burst 100 packets";
  for (const protocol of ["tcp", "udp"] as const) {
    if (ports[protocol].length === 0) continue;
    const set = `{ ${portRanges(ports[protocol])} }`;
    const first = protocol === "tcp" ? " tcp flags & (syn | ack) == syn" : "";
    lines.push(
      `    ${protocol} dport ${set}${first} add @capture_rate_v4 { ip saddr ${limit} } drop`,
      `    ${protocol} dport ${set}${first} add @capture_rate_v6 { ip6 saddr & ffff:ffff:ffff:ffff:: ${limit} } drop`,
    );
    for (const match of to) lines.push(`    ${match} ${protocol} dport ${set}${first} ${log}`);
    // reject: nothing is bound there, so the kernel's own reset or ICMP answers, exactly
    // as for an unused port (nft's reject differs: TOS, IPv6 flow label). drop: dropped.
    if (closedReply === "drop") lines.push(`    ${protocol} dport ${set} drop`);
  }
  lines.push("  }");
  return lines;
}

/**
 * Ports as nft writes a set of them: sorted, runs as ranges.
 *
 * @example
 * ```ts
 * import { portRanges } from "./nft_rules.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(portRanges([7002, 20000, 7000, 7001, 20001, 9]), "9, 7000-7002, 20000-20001");
 * ```
 */
export function portRanges(ports: readonly number[]): string {
  return portSpans(ports).map(([a, b]) => a === b ? String(a) : `${a}-${b}`).join(", ");
}

/**
 * The chains of doors that open a host behind this router: forward (the knocker's new
 * connections to the inside host pass, everyone else's are dropped), prerouting nat (a
 * dnat door sends the knocker's connections to the router's port on to the inside host)
 * and postrouting nat (masquerade, for inside hosts that would not answer through here).
 */
function gatewayChains(doors: readonly Door[]): string[] {
  const forward = [
    "  chain forward {",
    "    type filter hook forward priority filter - 10; policy accept;",
    "    ct state established,related accept",
  ];
  const prerouting: string[] = [];
  const postrouting: string[] = [];
  const drops: string[] = [];
  for (const door of doors) {
    const { ports, protocol, gateway } = door.open!.nft!;
    const g = gateway!;
    // Each of the inside host's addresses is gated for the knockers of its own family.
    for (const { host, family } of g.hosts) {
      const ip = family === 4 ? "ip" : "ip6";
      const set = `${ip} saddr @${sets(door.name)[family === 4 ? "v4" : "v6"]}`;
      const inside = `${ip} daddr ${host} ${protocol} dport { ${g.toPorts.join(", ")} }`;
      if (g.kind === "forward") {
        forward.push(`    # door ${door.name}: forward to ${host}`, `    ${inside} ${set} accept`);
        drops.push(`    ${inside} drop`);
      } else {
        const to = family === 4 ? `${host}:${g.toPorts[0]}` : `[${host}]:${g.toPorts[0]}`;
        forward.push(
          `    # door ${door.name}: dnat to ${to}`,
          `    ct status dnat ${inside} ${set} accept`,
        );
        prerouting.push(
          `    # door ${door.name}`,
          `    fib daddr type local ${protocol} dport ${ports[0]} ${set} dnat ${ip} to ${to}`,
        );
      }
      if (g.masquerade) {
        postrouting.push(`    # door ${door.name}`, `    ${inside} ${set} masquerade`);
      }
    }
  }
  if (drops.length > 0) {
    forward.push("    # everyone else, after every door's sources", ...new Set(drops));
  }
  const chains = [...forward, "  }"];
  if (prerouting.length > 0) {
    chains.push(
      "  chain prerouting {",
      "    type nat hook prerouting priority dstnat - 10; policy accept;",
      ...prerouting,
      "  }",
    );
  }
  if (postrouting.length > 0) {
    chains.push(
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat - 10; policy accept;",
      ...postrouting,
      "  }",
    );
  }
  return chains;
}
