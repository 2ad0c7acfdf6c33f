/** `sesame nft-ruleset`: print the nftables table listen would apply, for review. @module */
import { nftRuleset } from "../actions/nft_rules.ts";
import { loadConfig } from "../config/load.ts";
import { parseFlags, stringFlag } from "./args.ts";

/** Runs `sesame nft-ruleset`; returns the exit code. */
export async function nftRulesetCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("nft-ruleset", args, { config: { type: "string", short: "c" } });
  const config = await loadConfig(stringFlag(parsed, "config", "nft-ruleset", true));
  console.log(nftRuleset(config.doors, [], Date.now()).trimEnd());
  return 0;
}
