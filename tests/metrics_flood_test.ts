/**
 * Under attack it keeps listening: idle connections to the metrics endpoint, as any local
 * user can open them, must not take the daemon's file descriptors. The daemon runs with a
 * lowered descriptor limit (1 024) and 20 000 idle connections are held open against it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ROOT, tempDir, writePrivate } from "./_cli.ts";
import { knockAll, randomBase } from "./_daemon.ts";
import { eventually, spawnListen } from "./_process.ts";

Deno.test("metrics: 20 000 idle connections leave the daemon running, knocks opening and metrics served", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const metricsPort = base + 15;
  await writePrivate(
    `${dir.path}/c.yaml`,
    `listen: { addresses: ["127.0.0.1"], metrics: "127.0.0.1:${metricsPort}" }
doors:
  legacy:
    sequence: [${base}, ${base + 5}, ${base + 10}]
    decoys: 0
    open: { for: 30s, command: ["/usr/bin/touch", "${dir.path}/opened-{ip}"] }
`,
  );
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`], [
    "/usr/bin/prlimit",
    "--nofile=1024:1024",
    "--",
  ]);
  await p.waitForLog(/listening on/);
  // Two processes of 10 000 each: a process here may hold at most 20 000 descriptors.
  const floods = [77, 78].map((subnet) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-q",
        "-A",
        `${ROOT}tests/_idle_conns.ts`,
        "127.0.0.1",
        String(metricsPort),
        "10000",
        "4",
        String(subnet),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
  // While they are held: the daemon opens a door.
  const outputs = floods.map((flood) => new Response(flood.stdout).text());
  for (const flood of floods) {
    const holding = flood.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!said.includes("holding")) {
      const { value, done } = await holding.read();
      if (done) break;
      said += value;
    }
    void holding.cancel();
  }
  await knockAll(
    "127.0.0.1",
    [base, base + 5, base + 10].map((port) => ({ port, protocol: "tcp" as const })),
    { localAddress: "127.0.0.2" },
  );
  assert(
    await eventually(() => Deno.stat(`${dir.path}/opened-127.0.0.2`).then(() => true, () => false)),
    `a knock opened while the connections were held:\n${p.log()}`,
  );
  let connected = 0;
  for (const [i, flood] of floods.entries()) {
    connected += Number(await outputs[i]);
    await flood.status;
  }
  assert(connected >= 19_000, `the flood held ${connected} connections`);
  const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await scrape.text();
  assertEquals(scrape.status, 200);
  const refused = Number(/^sesame_metrics_refused_total (\d+)$/m.exec(text)?.[1]);
  assert(refused >= 19_000, `refused ${refused} connections over the cap`);
  assert(!/FTL|internal error/.test(p.log()), p.log());
  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0, "the daemon was still running, and stops cleanly");
});
