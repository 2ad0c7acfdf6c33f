/**
 * Operating a team's door, against a real nft firewall in network namespaces this test
 * creates: two users on one door, `status` through the running daemon, `revoke` (with
 * and without `--established`), the failure lines and fail2ban's filter on the real log,
 * and /metrics read by an independent parser (python3-prometheus-client).
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { fail2banMatches } from "./_fail2ban.ts";
import { sleep } from "./_daemon.ts";
import { ADDR, canRunLab, Lab, lines } from "./_netns.ts";
import { eventually } from "./_process.ts";
import { parseConfig } from "../lib/config/load.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";

const ignore = !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/nft"));
const SERVICE = 2222;
const METRICS = 9464;
const ALICE = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const BOB = "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const POOL = `ports: "24000-24099", length: 3, period: 1h, skew: 2`;

const SERVER = (dir: string) =>
  `listen: { addresses: ["::"], metrics: "127.0.0.1:${METRICS}" }
state_file: ${dir}/state.db
doors:
  team:
    ${POOL.replaceAll(", ", "\n    ")}
    users:
      alice: { secret: "${ALICE}" }
      bob: { secret: "${BOB}" }
    open: { for: 60s, nft: { port: ${SERVICE} } }
`;
const client = (secret: string) => `doors:\n  team: { secret: "${secret}", ${POOL} }\n`;

/** `sesame listen` in the server namespace, its whole log kept. */
function startListen(lab: Lab, dir: string) {
  return lab.listen(`${dir}/server.yaml`);
}

async function cli(lab: Lab, host: "server" | "knocker" | "bystander", ...args: string[]) {
  const out = await lab.exec(host, lab.deno("cli.ts", ...args));
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * TCP knocks (completed handshakes) on pool ports in no code of either user near now:
 * a failure whatever the hour.
 */
async function wrongKnocks(lab: Lab, host: "knocker" | "bystander", target: string) {
  const taken = new Set<number>();
  const now = Math.floor(Date.now() / 3_600_000);
  for (const secret of [ALICE, BOB]) {
    const door = userDoors(parseConfig(client(secret), "c.yaml").doors)[0];
    for (let c = now - 3; c <= now + 3; c++) {
      for (const k of (await codeForCounter(door, c)).knocks) taken.add(k.port);
    }
  }
  const ports = [...Array(100).keys()].map((i) => 24000 + i).filter((p) => !taken.has(p));
  for (const port of ports.slice(0, 4)) await lab.canConnect(host, target, port);
}

Deno.test({
  name:
    "operations: two users on one nft door, status while running, revoke within 1 s, failure lines for fail2ban, metrics",
  ignore,
  async fn(t) {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    await writePrivate(`${dir.path}/server.yaml`, SERVER(dir.path));
    await writePrivate(`${dir.path}/alice.yaml`, client(ALICE));
    await writePrivate(`${dir.path}/bob.yaml`, client(BOB));
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    const forAlice = ADDR.server.toKnocker, forBob = ADDR.server.toBystander;
    const { child, log } = await startListen(lab, dir.path);
    const status = async () => {
      const out = await cli(lab, "server", "status", "-c", `${dir.path}/server.yaml`, "--json");
      assertEquals(out.code, 0, out.stderr);
      return JSON.parse(out.stdout);
    };

    let holder!: Deno.ChildProcess;
    await t.step("alice's code opens for her address only, and the log names her", async () => {
      assertEquals(await lab.canConnect("knocker", forAlice, SERVICE), false);
      const out = await cli(lab, "knocker", "knock", forAlice, "-c", `${dir.path}/alice.yaml`);
      assertEquals(out.code, 0, out.stderr);
      assert(await eventually(() => lab.canConnect("knocker", forAlice, SERVICE), 2000));
      assertEquals(await lab.canConnect("bystander", forBob, SERVICE), false);
      assertStringIncludes(log.text, `door team opened for ${ADDR.knocker.v4} (user alice) until`);
      holder = lab.spawn(
        "knocker",
        lab.deno("tests/_holder.ts", forAlice, String(SERVICE)),
        "piped",
      );
    });

    await t.step(
      "status --json, read through the running daemon, lists her with her user and expiry",
      async () => {
        const report = await status();
        assertEquals(report.daemon.pid > 0, true);
        const team = report.doors.find((d: { door: string }) => d.door === "team");
        assertEquals(team.users, ["alice", "bob"]);
        assertEquals(team.open.map((o: { source: string; user: string }) => [o.source, o.user]), [
          [ADDR.knocker.v4, "alice"],
        ]);
        assert(team.open[0].closes_in_s > 50 && team.open[0].closes_in_s <= 60);
        assertEquals(team.open[0].action, { kind: "nft", ports: [SERVICE], protocol: "tcp" });
      },
    );

    await t.step(
      "revoke --ip shuts her within 1 s; the established connection continues",
      async () => {
        const holderOut = lines(holder);
        assertEquals(await holderOut.next(), "connected");
        const started = Date.now();
        const out = await cli(
          lab,
          "server",
          "revoke",
          "-c",
          `${dir.path}/server.yaml`,
          "--door",
          "team",
          "--ip",
          ADDR.knocker.v4,
        );
        assertEquals(out.code, 0, out.stderr);
        assertStringIncludes(out.stdout, `closed door team for ${ADDR.knocker.v4} (user alice)`);
        assertEquals(await lab.canConnect("knocker", forAlice, SERVICE), false);
        assert(Date.now() - started < 1000 + 3000, "revoke and the probe took too long"); // the CLI's start included
        const writer = holder.stdin.getWriter();
        await writer.write(new TextEncoder().encode("go\n"));
        assertEquals(
          await holderOut.next(),
          "pong",
          "established connections continue after revoke",
        );
        writer.releaseLock();
        const team = (await status()).doors.find((d: { door: string }) => d.door === "team");
        assertEquals(team.open, []);
        // Nothing open any more: exit 1, said so.
        const again = await cli(
          lab,
          "server",
          "revoke",
          "-c",
          `${dir.path}/server.yaml`,
          "--door",
          "team",
          "--ip",
          ADDR.knocker.v4,
        );
        assertEquals(again.code, 1);
        assertStringIncludes(again.stderr, "nothing was open");
      },
    );

    await t.step(
      "bob's code opens for him and not for a third address; revoke --user --established drops his connection",
      async () => {
        const out = await cli(lab, "bystander", "knock", forBob, "-c", `${dir.path}/bob.yaml`);
        assertEquals(out.code, 0, out.stderr);
        assert(await eventually(() => lab.canConnect("bystander", forBob, SERVICE), 2000));
        assertStringIncludes(log.text, `door team opened for ${ADDR.bystander.v4} (user bob)`);
        assertEquals(await lab.canConnect("knocker", forAlice, SERVICE), false);
        assertEquals(await lab.canConnect("knocker", ADDR.server.v6ToKnocker, SERVICE), false);
        const bobs = lab.spawn(
          "bystander",
          lab.deno("tests/_holder.ts", forBob, String(SERVICE)),
          "piped",
        );
        const bobOut = lines(bobs);
        assertEquals(await bobOut.next(), "connected");
        const revoked = await cli(
          lab,
          "server",
          "revoke",
          "-c",
          `${dir.path}/server.yaml`,
          "--door",
          "team",
          "--user",
          "bob",
          "--established",
        );
        assertEquals(revoked.code, 0, revoked.stderr);
        // The holder's, and the probes' that linger in conntrack (TIME_WAIT).
        assert(
          Number(/dropped (\d+) established/.exec(revoked.stdout)?.[1]) >= 1,
          revoked.stdout,
        );
        const writer = bobs.stdin.getWriter();
        await writer.write(new TextEncoder().encode("go\n"));
        assertEquals(await bobOut.next(), "dead", "--established drops the connection");
        writer.releaseLock();
      },
    );

    await t.step(
      "a wrong sequence gives one info line with the source; fail2ban's filter matches every failed source",
      async () => {
        await wrongKnocks(lab, "knocker", forAlice);
        await wrongKnocks(lab, "bystander", forBob);
        for (const source of [ADDR.knocker.v4, ADDR.bystander.v4]) {
          const line = new RegExp(
            `\\[INF\\] sesame\\.refusal: knock failed from ${
              source.replaceAll(".", "\\.")
            } on door team: reason=wrong evidence=tcp`,
          );
          assert(
            await eventually(() => line.test(log.text), 3000),
            `no failure line for ${source}:\n${log.text}`,
          );
          // One line per source and door a minute, however many wrong knocks.
          assertEquals(log.text.split("\n").filter((l) => line.test(l)).length, 1);
        }
        const file = `${dir.path}/sesame.log`;
        await Deno.writeTextFile(file, log.text);
        const matched = await fail2banMatches(file);
        assertEquals(matched.sort(), [ADDR.bystander.v4, ADDR.knocker.v4].sort());
      },
    );

    await t.step("/metrics counts both opens and parses as Prometheus text", async () => {
      const samples = await scrape(lab);
      const value = (name: string, labels: Record<string, string>) =>
        samples.find(([n, l]) => n === name && Object.entries(labels).every(([k, v]) => l[k] === v))
          ?.[2];
      assertEquals(value("sesame_opens_total", { door: "team", user: "alice" }), 1);
      assertEquals(value("sesame_opens_total", { door: "team", user: "bob" }), 1);
      assertEquals(value("sesame_closes_total", { door: "team" }), 2);
      assertEquals(
        value("sesame_open_decisions_total", {}),
        2,
        "each decided open is accounted for",
      );
      assert((value("sesame_refusals_total", { door: "team", reason: "wrong" }) ?? 0) >= 2);
      assertEquals(value("sesame_open_doors", { door: "team" }), 0);
      assertEquals(value("sesame_open_latency_seconds_count", {}), 2);
      assert((value("sesame_knocks_total", { protocol: "tcp" }) ?? 0) >= 14);
      const rss = value("process_resident_memory_bytes", {}) ?? 0;
      const heap = value("sesame_heap_used_bytes", {}) ?? 0;
      assert(rss > heap && heap > 1_000_000, `memory: rss ${rss}, heap ${heap}`);
    });

    await t.step(
      "sesame reload through the socket says what changed; a broken config is refused (exit 1, the old one runs on); a scanner's ban survives both and sesame unban lifts it",
      async () => {
        const file = `${dir.path}/server.yaml`;
        // The bystander scans: more distinct pool ports than scan_threshold, at once.
        for (let port = 24010; port < 24020; port++) {
          await lab.canConnect("bystander", forBob, port);
        }
        const bans = async () =>
          ((await status()).bans as { source: string }[]).map((b) => b.source);
        assert(await eventually(async () => (await bans()).includes(ADDR.bystander.v4), 3000));

        // check knows the running daemon holds the knock ports: no "in use" warning.
        const checked = await cli(lab, "server", "check", "-c", file);
        assertEquals(checked.code, 0, checked.stderr);
        assertStringIncludes(checked.stdout, `sesame listen (pid ${child.pid}) runs`);
        assert(!checked.stdout.includes("in use"), checked.stdout);

        const same = await cli(lab, "server", "reload", "-c", file);
        assertEquals(
          [same.code, same.stdout.trim()],
          [0, "reloaded: nothing changed"],
          same.stderr,
        );
        await writePrivate(file, SERVER(dir.path).replace("open: { for: 60s", "open: { for: 90s"));
        const changed = await cli(lab, "server", "reload", "-c", file);
        assertEquals(changed.code, 0, changed.stderr);
        assertStringIncludes(changed.stdout, "door team changed");
        await writePrivate(file, SERVER(dir.path).replace("length: 3", "length: 99"));
        const refused = await cli(lab, "server", "reload", "-c", file);
        assertEquals(refused.code, 1, refused.stdout);
        assertStringIncludes(refused.stderr, "server.yaml:");
        assertStringIncludes(refused.stderr, "doors.team.length");
        // The file is broken, the daemon runs on the last good config: status still answers.
        const broken = await cli(lab, "server", "status", "-c", file);
        assertEquals(broken.code, 0, broken.stderr);
        assertStringIncludes(broken.stderr, "showing what the running daemon says");
        assertStringIncludes(broken.stdout, `daemon: pid ${child.pid}`);
        await writePrivate(file, SERVER(dir.path)); // status reads the file too
        assertEquals((await status()).daemon.pid, child.pid, "the daemon runs on");
        assertEquals(await bans(), [ADDR.bystander.v4], "bans survive reloads");

        const wrongIp = await cli(lab, "server", "unban", "-c", file, "--ip", "203.0.113.9");
        assertEquals(wrongIp.code, 1);
        const lifted = await cli(lab, "server", "unban", "-c", file, "--ip", ADDR.bystander.v4);
        assertEquals([lifted.code, lifted.stdout.trim()], [0, `unbanned ${ADDR.bystander.v4}`]);
        assertEquals(await bans(), []);
      },
    );

    child.kill("SIGTERM");
    await child.status;
  },
});

/** /metrics in the server namespace, parsed by python3-prometheus-client: [name, labels, value]. */
async function scrape(lab: Lab): Promise<[string, Record<string, string>, number][]> {
  const script = `
import json, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:${METRICS}/metrics", timeout=5).read().decode()
print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) for s in f.samples]))
`;
  const out = await lab.exec("server", ["/usr/bin/python3", "-c", script]);
  const dec = new TextDecoder();
  assertEquals(out.code, 0, dec.decode(out.stderr));
  await sleep(0);
  return JSON.parse(dec.decode(out.stdout));
}
