/**
 * The real firewall backends of a config: nft and iptables, both driven through the
 * command runner.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Config } from "../config/types.ts";
import type { Firewalls } from "./firewall.ts";
import { IptablesFirewall } from "./iptables.ts";
import { NftFirewall } from "./nft.ts";
import type { CommandRunner } from "./runner.ts";

/** The real backends, through the runner. */
export function systemFirewalls(config: Config, runner: CommandRunner, clock: Clock): Firewalls {
  return {
    nft: new NftFirewall(runner, { clock, mode: config.nftMode }),
    iptables: new IptablesFirewall(runner, {
      clock,
      paths: {
        v4: `/usr/sbin/${config.iptablesTool}`,
        v6: `/usr/sbin/${config.iptablesTool.replace("iptables", "ip6tables")}`,
      },
    }),
  };
}
