/** What a start makes of what the store loaded, given sesame's rules left in the kernel. */
import { assertEquals } from "./_assert.ts";
import { firstOrDeleted } from "../lib/daemon/recovery.ts";
import { DryRunFirewall } from "../lib/testing/mod.ts";
import { validateConfig } from "../lib/config/validate.ts";

/** A config with a door on each backend. */
const config = validateConfig({
  doors: {
    a: { sequence: [7000], open: { nft: { port: 22 } } },
    b: { sequence: [7100], open: { iptables: { port: 23 } } },
  },
});

/** Backends of which `left` holds sesame's rules from an earlier run. */
function firewalls(...left: ("nft" | "iptables")[]) {
  const backend = (kind: "nft" | "iptables") =>
    Object.assign(new DryRunFirewall(), { leftover: () => Promise.resolve(left.includes(kind)) });
  return { nft: backend("nft"), iptables: backend("iptables") };
}

Deno.test("recovery: a first start with sesame's rules in the kernel (either backend the config uses) is lost state; without them it is a first start", async () => {
  assertEquals((await firstOrDeleted({ kind: "first" }, config, firewalls())).kind, "first");
  for (const kind of ["nft", "iptables"] as const) {
    const loaded = await firstOrDeleted({ kind: "first" }, config, firewalls(kind));
    assertEquals(loaded.kind, "lost");
    assertEquals(
      loaded.kind === "lost" && loaded.evidence.includes(`sesame's ${kind} rules`),
      true,
    );
  }
  // A loaded state is what it is, rules or not.
  const ok = { kind: "ok" as const, state: { used: [], open: [] } };
  assertEquals(await firstOrDeleted(ok, config, firewalls("nft")), ok);
  // Without a state_file (memory), every start is first: with the rules there, lost.
  assertEquals((await firstOrDeleted(ok, config, firewalls("nft"), true)).kind, "lost");
  assertEquals(await firstOrDeleted(ok, config, firewalls(), true), ok);
  // A backend that cannot say counts as no rules.
  const failing = firewalls();
  failing.nft.leftover = () => Promise.reject(new Error("nft hung"));
  assertEquals((await firstOrDeleted({ kind: "first" }, config, failing)).kind, "first");
  // A backend the config does not use is not asked (command doors run no firewall tool).
  const commands = validateConfig({
    doors: { c: { sequence: [7200], open: { command: ["/bin/true"] } } },
  });
  assertEquals((await firstOrDeleted({ kind: "first" }, commands, firewalls("nft"))).kind, "first");
});
