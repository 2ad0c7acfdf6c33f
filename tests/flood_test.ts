import { assert, assertEquals } from "./_assert.ts";
import { spawnScript, tempDir, writePrivate } from "./_cli.ts";
import { knockAll, randomBase, sleep, startDaemon } from "./_daemon.ts";
import { eventually, spawnListen } from "./_process.ts";

function flood(port: string, count: number, seconds: number, subnet: number): Deno.ChildProcess {
  return spawnScript("tests/_flood.ts", [
    "127.0.0.1",
    port,
    String(count),
    String(seconds),
    String(subnet),
  ]);
}

Deno.test("flood: 20 000 sources of wrong knocks stay under the source cap, and a real knock still opens", async () => {
  const base = randomBase(20);
  await using d = await startDaemon(`
listen: { addresses: ["127.0.0.1"], max_sources: 5000 }
doors:
  legacy:
    sequence: [${base}, ${base + 5}, ${base + 10}]
    open: { for: 5s }
  noisy:
    sequence: ["${base + 15}/udp", "${base + 16}/udp"]
    decoys: 0
    open: { for: 5s }
`);
  // Wrong knocks: each source sends the second knock of the UDP door only.
  const child = flood(String(base + 16), 20_000, 8, 50);
  let peak = 0;
  const watch = setInterval(() => peak = Math.max(peak, d.daemon.trackedSources), 20);
  await eventually(() => d.daemon.counters.knocks > 1000, 5000); // the flood is under way
  await knockAll(
    "127.0.0.1",
    [base, base + 5, base + 10].map((port) => ({ port, protocol: "tcp" as const })),
    {
      localAddress: "127.0.0.2",
    },
  );
  const opened = await d.waitFor((e) => e.kind === "opened", 5000);
  const out = await child.output();
  clearInterval(watch);
  peak = Math.max(peak, d.daemon.trackedSources);
  const sent = Number(new TextDecoder().decode(out.stdout));
  assert(sent > 5000, `the flood sent ${sent} datagrams: enough to exceed the cap`);
  assertEquals(opened.kind === "opened" && opened.source, "127.0.0.2");
  assert(peak <= 5000, `tracked sources peaked at ${peak}, over the cap of 5000`);
  assert(peak >= 4000, `tracked sources peaked at ${peak}: the flood did reach the daemon`);
});

Deno.test("flood: scanners' warnings are rate-limited in the log", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  await writePrivate(
    `${dir.path}/c.yaml`,
    `listen: { addresses: ["127.0.0.1"] }\ndoors:\n  legacy:\n    sequence: ["${base + 5}/udp", "${
      base + 6
    }/udp"]\n    open: { for: 5s }\n`,
  );
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await p.waitForLog(/listening on/);
  // Every source hits a decoy (base+3): 3 000 scanners, each worth a warning.
  const child = flood(`${base + 3}`, 3000, 5, 60);
  const sent = Number(new TextDecoder().decode((await child.output()).stdout));
  assert(sent >= 1000, `sent ${sent}`);
  assert(await eventually(() => /looks like a scanner/.test(p.log()), 3000));
  await sleep(300); // a child process: the rest of its lines reach its log
  const warnings = p.log().split("\n").filter((l) => l.includes("looks like a scanner")).length;
  assert(warnings <= 25, `${warnings} scanner warnings for ${sent} scanners: not rate-limited`);
  p.kill("SIGTERM");
  await p.child.status;
  assert(/suppressed \d+ more/.test(p.log()), "the suppressed lines are summed up");
});

Deno.test("flood: a connection flood of reset probes does not stop the listeners", async () => {
  const base = randomBase(20);
  await using d = await startDaemon(`
listen: { addresses: ["127.0.0.1"] }
doors:
  legacy:
    sequence: [${base}, ${base + 5}, ${base + 10}]
    open: { for: 5s }
`);
  const child = spawnScript("tests/_connflood.ts", [
    "127.0.0.1",
    String(base + 5),
    "6000",
    "300",
    "6",
    "70",
  ]);
  await eventually(() => d.daemon.counters.knocks + d.daemon.counters.acceptErrors > 500, 5000);
  await knockAll(
    "127.0.0.1",
    [base, base + 5, base + 10].map((port) => ({ port, protocol: "tcp" as const })),
    {
      localAddress: "127.0.0.2",
    },
  );
  await d.waitFor((e) => e.kind === "opened", 8000);
  const made = Number(new TextDecoder().decode((await child.output()).stdout));
  assert(made > 1000, `the flood made ${made} connections`);
  // Still listening after the flood: another knock opens for another source.
  await knockAll(
    "127.0.0.1",
    [base, base + 5, base + 10].map((port) => ({ port, protocol: "tcp" as const })),
    {
      localAddress: "127.0.0.3",
    },
  );
  await d.waitFor((e) => e.kind === "opened" && e.source === "127.0.0.3", 5000);
});
