/** `sesame nft-ruleset`: print the nftables table listen would apply, for review. @module */
import { resolveClosedReply } from "../actions/host_ruleset.ts";
import { NFT_PATH } from "../actions/nft.ts";
import { nftRuleset } from "../actions/nft_rules.ts";
import { runCommand } from "../actions/runner.ts";
import { loadConfig } from "../config/load.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";

/** The flags of `sesame nft-ruleset`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = { config: { type: "string", short: "c" } } satisfies FlagSpec;

/** Runs `sesame nft-ruleset`; returns the exit code. */
export async function nftRulesetCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("nft-ruleset", args, FLAGS);
  const config = await loadConfig(stringFlag(parsed, "config", "nft-ruleset", true));
  // closed_reply auto reads this host's rules, as listen does (drop when they cannot be read).
  const runner = {
    run: runCommand,
    spawn: () => {
      throw new Error("not needed");
    },
    close() {},
  };
  const closedReply = await resolveClosedReply(
    config.closedReply,
    async (list) => {
      const r = await runCommand([NFT_PATH, ...list], { timeoutMs: 10_000, capture: true });
      return r.code === 0 ? r.output ?? "" : "";
    },
    runner,
  );
  const capture = config.capture.kind === "nflog"
    ? { capture: { group: config.capture.group, addresses: config.addresses } }
    : {};
  console.log(nftRuleset(config.doors, [], Date.now(), { closedReply, ...capture }).trimEnd());
  return 0;
}
