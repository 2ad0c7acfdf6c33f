/**
 * Whether knocks can be kept out of conntrack without locking knockers out, decided at
 * each start and after each repair, for both backends alike. Untracked packets match no
 * `ct state new` (nft) or `--ctstate NEW` (iptables) rule: on a stateful ruleset (new
 * connections sorted by state, the rest dropped) untracked knocks would be dropped and
 * nobody could knock. So any such rule anywhere (nft's whole ruleset, which holds
 * iptables-nft's rules too, and each iptables tool's, iptables-legacy's included), a
 * listing that fails, or a knock port in the ephemeral range keeps knocks tracked.
 * @module
 */
import type { Door } from "../config/types.ts";
import { logger } from "../log.ts";
import { ephemeralPortRange } from "../system.ts";
import { trackedAccept } from "./iptables_raw.ts";
import { knockPorts } from "./knock_ports.ts";
import type { CommandRunner } from "./runner.ts";

const log = logger("firewall");
const TIMEOUT_MS = 10_000;

/** The tools looked at: nft, and iptables in each variant and family. */
export const RULESET_TOOLS = {
  nft: "/usr/sbin/nft",
  iptables: [
    "/usr/sbin/iptables",
    "/usr/sbin/ip6tables",
    "/usr/sbin/iptables-legacy",
    "/usr/sbin/ip6tables-legacy",
  ],
};

/**
 * The first rule in nft's ruleset (`nft -t list ruleset` output), outside sesame's own
 * table, that untracked knocks could fall foul of, as `table …: rule`: one that sorts by
 * state new without untracked, drops or rejects untracked packets, negates a state set, or
 * names a set or map of states (whose contents `-t` does not list).
 *
 * @example
 * ```ts
 * import { nftStateRule } from "./untrack_decision.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const ruleset = "table inet filter {\n\tchain input {\n\t\ttcp flags syn ct state new jump tcp\n\t}\n}\n";
 * assertEquals(nftStateRule(ruleset), "table inet filter: tcp flags syn ct state new jump tcp");
 * assertEquals(nftStateRule(ruleset.replace("new", "{ new, untracked }")), undefined);
 * ```
 */
export function nftStateRule(ruleset: string): string | undefined {
  let table = "";
  for (const line of ruleset.split("\n")) {
    const t = /^table (\S+ \S+) \{/.exec(line);
    if (t) table = t[1];
    else if (table !== "inet sesame" && /\bct state\b/.test(line)) {
      const after = line.slice(line.search(/\bct state\b/));
      const untracked = /\buntracked\b/.test(after);
      const risky = /\bct state\s+(vmap\s+)?@/.test(after) || /\bct state\s+!=/.test(after) ||
        (/\bnew\b/.test(after) && !untracked) ||
        (untracked && /\b(drop|reject)\b/.test(after));
      if (risky) return `table ${table}: ${line.trim()}`;
    }
  }
  return undefined;
}

/** Whether a program is installed. */
async function installed(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isFile, () => false);
}

/**
 * Whether an iptables tool can hold rules nft's ruleset does not show: a legacy one whose
 * tables the kernel has (listing them where it has none would load x_tables and create
 * empty legacy tables, or fail on a kernel without them). The nft variants' rules are in
 * nft's ruleset already; without nft, they are listed.
 */
async function worthListing(tool: string, haveNft: boolean): Promise<boolean> {
  const real = await Deno.realPath(tool).catch(() => tool);
  if (!/legacy/.test(real)) return !haveNft;
  const names = tool.includes("ip6") ? "/proc/net/ip6_tables_names" : "/proc/net/ip_tables_names";
  return (await Deno.readTextFile(names).catch(() => "")).trim() !== "";
}

/**
 * Why knocks must stay tracked, or undefined when they can be untracked: a rule sorting by
 * state new, rules that could not be read, or a knock port in the ephemeral range.
 */
export async function keepTracked(
  runner: CommandRunner,
  doors: readonly Door[],
  tools = RULESET_TOOLS,
): Promise<string | undefined> {
  const read = async (argv: string[]) => {
    const out = await runner.run(argv, { timeoutMs: TIMEOUT_MS, essential: true, capture: true });
    return out.code === 0 ? out.output ?? "" : undefined;
  };
  const advice =
    "which untracked knocks would miss; accept the knock pools by port before it (or let it take untracked packets too) to keep knocks out of conntrack";
  const haveNft = await installed(tools.nft);
  if (haveNft) {
    const ruleset = await read([tools.nft, "-t", "list", "ruleset"]);
    if (ruleset === undefined) return "nft list ruleset failed, so the rules are unknown";
    const rule = nftStateRule(ruleset);
    if (rule) return `a rule sorts by conntrack state new (nft ${rule}), ${advice}`;
  }
  for (const tool of tools.iptables) {
    if (!await installed(tool) || !await worthListing(tool, haveNft)) continue;
    const rules = await read([tool, "-w", "-S"]);
    if (rules === undefined) return `${tool} -S failed, so the rules are unknown`;
    const rule = trackedAccept(rules);
    if (rule) return `a rule sorts by conntrack state NEW (${tool}: ${rule}), ${advice}`;
  }
  const range = await ephemeralPortRange();
  const ports = knockPorts(doors);
  const inside = [...ports.tcp, ...ports.udp].find((p) =>
    range !== undefined && p >= range[0] && p <= range[1]
  );
  if (inside !== undefined) {
    return `knock port ${inside} lies in the kernel's ephemeral range ${range![0]}-${
      range![1]
    } (the host's own connections from it would lose their replies' tracking)`;
  }
  return undefined;
}

/**
 * {@link keepTracked} as a yes or no: true when knocks can go untracked. Said in the log
 * when they stay tracked; after a repair (`previous`: the decision before another tool
 * changed the rules, perhaps bringing a stateful ruleset), said only when it changes.
 */
export async function canUntrack(
  runner: CommandRunner,
  doors: readonly Door[],
  backend: "nft" | "iptables",
  previous?: boolean,
): Promise<boolean> {
  const reason = await keepTracked(runner, doors);
  if (previous === (reason === undefined)) return previous;
  if (reason === undefined) {
    log.info("{backend}: knocks go untracked again (nothing in the rules keeps them tracked now)", {
      backend,
    });
    return true;
  }
  log.warning(
    "{backend}: knocks stay in conntrack (a flood of them can fill its table): {reason}",
    {
      backend,
      reason,
    },
  );
  return false;
}
