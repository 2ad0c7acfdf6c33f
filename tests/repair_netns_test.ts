/**
 * Two tools fighting over the ruleset, in a network namespace of the test's own with real
 * nft: `nft flush ruleset` every second for 30 s. Every flush is repaired, at once (no
 * pause for a repeat offender: a paused repair is an open port), each in under 50 ms, and
 * a bystander probing the protected port all along is let through only in those moments.
 */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { SECRET_B64 } from "./_daemon.ts";
import { ADDR, canRunLab, Lab, lines } from "./_netns.ts";
import { spawnListen } from "./_process.ts";

const ignore = !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/nft"));
const SERVICE = 2222;
const FLUSHES = 30;

Deno.test({
  name: "repairs: nft flush ruleset every second for 30 s is put back each time, at once",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["::"], metrics: "127.0.0.1:9464" }
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    open: { for: 30s, nft: { port: ${SERVICE} } }
`,
    );
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`], [
      "ip",
      "netns",
      "exec",
      lab.ns.server,
    ]);
    await p.waitForLog(/listening on/, 10_000);
    const prober = lab.spawn(
      "bystander",
      lab.deno("tests/_prober.ts", ADDR.server.toBystander, String(SERVICE), String(FLUSHES + 2)),
    );
    const result = new Response(prober.stdout).text();
    for (let i = 0; i < FLUSHES; i++) {
      const out = await lab.exec("server", ["nft", "flush", "ruleset"]);
      assertEquals(out.code, 0);
      // The kernel and the daemon work in real time: one flush a second, as the report did.
      await new Promise((r) => setTimeout(r, 1000));
    }
    const { probes, through } = JSON.parse(await result);
    const scrape = await lab.exec("server", [
      "python3",
      "-c",
      "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9464/metrics',timeout=5).read().decode())",
    ]);
    const metrics = new TextDecoder().decode(scrape.stdout);
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    const repairs = value("sesame_firewall_repairs_total");
    const fast = value('sesame_firewall_repair_seconds_bucket\\{le="0.05"\\}');
    const sum = value("sesame_firewall_repair_seconds_sum");
    console.log(
      `repairs: ${repairs} of ${FLUSHES} flushes put back, ${fast} in under 50 ms (mean ${
        Math.round(sum / repairs * 1000)
      } ms); the bystander got through ${through} of ${probes} probes (${
        (100 * through / probes).toFixed(1)
      } %)`,
    );
    assertEquals(repairs, FLUSHES, `every flush was repaired:\n${p.log()}`);
    // None waited (the old back-off held repairs for 2 s and more). How fast they are is a
    // measurement (BENCHMARKS.md: under 50 ms each on a quiet machine), not asserted here.
    const underASecond = value('sesame_firewall_repair_seconds_bucket\\{le="1"\\}');
    assertEquals(underASecond, FLUSHES, "no repair waited");
    assert(through / probes < 0.3, `the bystander got through ${through} of ${probes} probes`);
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});

Deno.test({
  name:
    "repairs: iptables -F every second for 10 s is put back each time, the port open at most a poll (250 ms) each time",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["::"], metrics: "127.0.0.1:9464" }
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    open: { for: 30s, iptables: { port: ${SERVICE} } }
`,
    );
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`], [
      "ip",
      "netns",
      "exec",
      lab.ns.server,
    ]);
    await p.waitForLog(/listening on/, 10_000);
    const flushes = 10;
    const prober = lab.spawn(
      "bystander",
      lab.deno("tests/_prober.ts", ADDR.server.toBystander, String(SERVICE), String(flushes + 2)),
    );
    const result = new Response(prober.stdout).text();
    for (let i = 0; i < flushes; i++) {
      assertEquals((await lab.exec("server", ["iptables", "-w", "-F"])).code, 0);
      // Real time: one flush a second, as the report did.
      await new Promise((r) => setTimeout(r, 1000));
    }
    const { probes, through } = JSON.parse(await result);
    const scrape = await lab.exec("server", [
      "python3",
      "-c",
      "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9464/metrics',timeout=5).read().decode())",
    ]);
    const metrics = new TextDecoder().decode(scrape.stdout);
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    const repairs = value("sesame_firewall_repairs_total");
    const sum = value("sesame_firewall_repair_seconds_sum");
    console.log(
      `iptables repairs: ${repairs} of ${flushes} flushes put back (mean ${
        Math.round(sum / repairs * 1000)
      } ms after the check; the check runs every 250 ms); the bystander got through ${through} of ${probes} probes (${
        (100 * through / probes).toFixed(1)
      } %)`,
    );
    assert(repairs >= flushes - 1, `${repairs} repairs for ${flushes} flushes:\n${p.log()}`);
    // A 1 s poll left the port open 50-94 % of the time here; 250 ms about a fifth.
    assert(through / probes < 0.5, `the bystander got through ${through} of ${probes} probes`);
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});
