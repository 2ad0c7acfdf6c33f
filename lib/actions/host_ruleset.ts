/**
 * What sesame reads of the host's own firewall rules: how its closed ports answer (for
 * `closed_reply: auto`). Read at start and reload, never on the knock path. (Whether
 * knocks can go untracked: untrack_decision.ts.)
 * @module
 */
import { logger } from "../log.ts";
import type { CommandRunner } from "./runner.ts";

const log = logger("nft");

/** Lists something with nft (`-j list ruleset`, …): its output, or "" when it fails. */
export type NftList = (args: readonly string[]) => Promise<string>;

/**
 * `closed_reply` as the protected ports will give it: `auto` becomes what the host's
 * other closed ports give (drop when something drops them, reject otherwise), said in
 * the log with why.
 */
export async function resolveClosedReply(
  wanted: "auto" | "drop" | "reject" = "drop",
  list: NftList,
  runner: CommandRunner,
): Promise<"drop" | "reject"> {
  if (wanted !== "auto") return wanted;
  const why = await silentInput(list, runner);
  const reply = why ? "drop" : "reject";
  log.info("closed_reply auto: protected ports {reply} ({why})", {
    reply,
    why: why ?? "no input chain drops what it does not accept: closed ports reset",
  });
  return reply;
}

interface Item {
  chain?: { table?: string; name?: string; hook?: string; policy?: string };
  rule?: { table?: string; chain?: string; expr?: Record<string, unknown>[] };
}

/**
 * Why the host's closed ports are silent, if they are: an input chain (nft, or
 * iptables-legacy, which nft cannot see) whose policy drops, or whose last rule drops or
 * rejects with anything but a TCP reset (nmap shows both as filtered).
 */
async function silentInput(list: NftList, runner: CommandRunner): Promise<string | undefined> {
  let items: Item[];
  try {
    items = JSON.parse(await list(["-j", "list", "ruleset"]) || "{}").nftables ?? [];
  } catch {
    return "the ruleset could not be read: drop, to be safe";
  }
  for (const { chain } of items) {
    if (!chain || chain.hook !== "input" || chain.table === "sesame") continue;
    if (chain.policy === "drop") return `table ${chain.table} drops by policy`;
    const rules = items.flatMap(({ rule }) =>
      rule && rule.table === chain.table && rule.chain === chain.name ? [rule] : []
    );
    const verdict = rules.at(-1)?.expr?.find((e) => "drop" in e || "reject" in e);
    if (!verdict) continue;
    const reject = verdict.reject as { type?: string } | undefined;
    if ("drop" in verdict || reject?.type !== "tcp reset") {
      return `table ${chain.table}'s input chain ends in ${"drop" in verdict ? "drop" : "reject"}`;
    }
  }
  const legacy = await runner.run(["/usr/sbin/iptables-legacy", "-w", "-S", "INPUT"], {
    timeoutMs: 10_000,
    essential: true,
    capture: true,
  });
  const lines = legacy.code === 0 ? (legacy.output ?? "").trim().split("\n") : [];
  if (lines.includes("-P INPUT DROP")) return "iptables-legacy's INPUT drops by policy";
  if (/-j (DROP|REJECT)(?! --reject-with tcp-reset)/.test(lines.at(-1) ?? "")) {
    return "iptables-legacy's INPUT ends in DROP or REJECT";
  }
  return undefined;
}
