/**
 * Inside a test's network namespace: 10 000 iptables doors open at once, then all closing
 * together while one more door opens. Prints JSON: how long each phase took, the rules
 * left in the kernel, and whether the concurrent open went through.
 */
import { IptablesFirewall } from "../lib/actions/iptables.ts";
import { WorkerRunner } from "../lib/actions/runner.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { OpenRecord } from "../lib/store/store.ts";

const [tool, countText] = Deno.args;
const count = Number(countText);
const runner = new WorkerRunner();
const firewall = new IptablesFirewall(runner, {
  paths: { v4: `/usr/sbin/${tool}`, v6: `/usr/sbin/${tool.replace("iptables", "ip6tables")}` },
});
const { doors } = validateConfig({
  doors: { ssh: { sequence: [7000], open: { iptables: { port: 2222 } } } },
});
const grant = { kind: "iptables" as const, ports: [2222], protocol: "tcp" as const };
const record = (i: number): OpenRecord => ({
  door: "ssh",
  source: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  until: Date.now() + 600_000,
  close: null,
  firewall: grant,
});
await firewall.start(doors, []);
let t = performance.now();
await Promise.all(Array.from({ length: count }, (_, i) => firewall.open(record(i))));
const openAllMs = performance.now() - t;
// One more open while 10 000 are open: an admin's knock on a busy server.
t = performance.now();
await firewall.open(record(count));
const oneOpenMs = performance.now() - t;
// Everything closes together, and a knocker's door opens in the middle of it.
t = performance.now();
const closing = Array.from({ length: count + 1 }, (_, i) => firewall.close(record(i)));
const late = record(count + 1);
const lateOpen = firewall.open(late).then(() => true, () => false);
await Promise.all(closing);
const lateOpened = await lateOpen;
const closeAllMs = performance.now() - t;
const listing = new TextDecoder().decode(
  (await new Deno.Command(`/usr/sbin/${tool}`, { args: ["-w", "-S", "SESAME"] }).output()).stdout,
);
const accepts = listing.split("\n").filter((l) => l.includes(" -s ")).map((l) =>
  /-s (\S+?)\/32/.exec(l)?.[1]
);
console.log(JSON.stringify({ openAllMs, oneOpenMs, closeAllMs, lateOpened, accepts }));
await firewall.shutdown();
runner.close();
