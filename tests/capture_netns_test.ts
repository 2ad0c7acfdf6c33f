/**
 * The capture intake (`listen.capture: nflog`) in network namespaces this test creates,
 * with real nft and the real tcpdump: nothing binds on the pools; a SYN scan sees pool
 * ports as it sees unused ones; knocks open a door for the knocker only; refusals carry
 * evidence=capture, which fail2ban's filter never matches; a killed reader is logged and
 * back within seconds; another tool's flush brings the capture rules back.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { fail2banMatches } from "./_fail2ban.ts";
import { ADDR, canRunLab, Lab, lines } from "./_netns.ts";
import { eventually } from "./_process.ts";
import { parseConfig } from "../lib/config/load.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";
import { parseAddress } from "../lib/address.ts";

const ignore = !Deno.env.get("CI") && !(await canRunLab("/usr/bin/tcpdump"));
const SERVICE = 2222;
const GROUP = 4242;
const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const POOL = `ports: "24000-24099", length: 3, period: 1h, skew: 2, bind_source: true`;

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
const HMAC = btoa(String.fromCharCode(...new Uint8Array(64).fill(9)));
const SPA = `{ port: 62201, key_base64: "${KEY}", hmac_key_base64: "${HMAC}", access: ["tcp/${
  SERVICE + 1
}"] }`;

/**
 * Three pool ports in no code of `source` near now (the door is bind_source: its codes
 * are the source's own): knocking them is a failure, whatever the hour.
 */
async function wrongPorts(source: string): Promise<number[]> {
  const door = userDoors(
    parseConfig(`doors:\n  ssh: { secret: "${SECRET}", ${POOL} }\n`, "c.yaml").doors,
  )[0];
  const from = parseAddress(source)!;
  const now = Math.floor(Date.now() / 3_600_000);
  const taken = new Set<number>();
  for (let c = now - 3; c <= now + 3; c++) {
    for (const k of (await codeForCounter(door, c, from)).knocks) taken.add(k.port);
  }
  return [...Array(100).keys()].map((i) => 24099 - i).filter((p) => !taken.has(p)).slice(0, 3);
}

const server = (dir: string) =>
  `listen: { addresses: ["::"], capture: nflog, nflog_group: ${GROUP}, closed_reply: reject }
state_file: ${dir}/state.db
doors:
  ssh:
    secret: "${SECRET}"
    ${POOL.replaceAll(", ", "\n    ")}
    open: { for: 60s, nft: { port: ${SERVICE} } }
  spa:
    spa: ${SPA}
    open: { for: 60s, nft: { port: ${SERVICE + 1} } }
`;

Deno.test({
  name:
    "capture intake: nothing bound, pool ports look like unused ones to a SYN scan, knocks open for the knocker only, evidence=capture, the reader and the rules come back",
  ignore,
  async fn(t) {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const file = `${dir.path}/server.yaml`;
    await writePrivate(file, server(dir.path));
    await writePrivate(
      `${dir.path}/client.yaml`,
      `doors:\n  ssh: { secret: "${SECRET}", ${POOL} }\n  spa: { spa: ${SPA} }\n`,
    );
    for (const port of [SERVICE, SERVICE + 1]) {
      const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(port)));
      assertEquals(await lines(service).next(), "ready");
    }
    const { child, log } = await lab.listen(file);
    const target = ADDR.server.toKnocker;
    const text = (out: Deno.CommandOutput) => new TextDecoder().decode(out.stdout);

    await t.step(
      "nothing listens on the pool; a SYN scan sees pool and unused ports alike",
      async () => {
        const listening = text(await lab.exec("server", ["ss", "-Hlntu"]));
        assert(!/:24\d\d\d\b/.test(listening), listening);
        const scan = text(
          await lab.exec("bystander", [
            "nmap",
            "-sS",
            "-Pn",
            "-n",
            "--max-retries",
            "0",
            "-p",
            "24050,23999,25000",
            ADDR.server.toBystander,
          ]),
        );
        for (const port of [24050, 23999, 25000]) {
          assert(new RegExp(`^${port}/tcp\\s+closed\\s`, "m").test(scan), `${port}: ${scan}`);
        }
        // A connect scan, and a UDP scan of the SPA port beside an unused one (ICMP replies
        // are rate-limited: not in this namespace).
        await lab.exec("server", ["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
        const nmap = async (...args: string[]) =>
          text(
            await lab.exec("bystander", ["nmap", "-Pn", "-n", ...args, ADDR.server.toBystander]),
          );
        const connect = await nmap("-sT", "-p", "24050,23999");
        for (const port of [24050, 23999]) {
          assert(new RegExp(`^${port}/tcp\\s+closed\\s`, "m").test(connect), connect);
        }
        const udp = await nmap("-sU", "-p", "62201,62202");
        for (const port of [62201, 62202]) {
          assert(new RegExp(`^${port}/udp\\s+closed\\s`, "m").test(udp), udp);
        }
      },
    );

    await t.step("a knock opens the service for the knocker, not the bystander", async () => {
      assertEquals(await lab.canConnect("knocker", target, SERVICE), false);
      const out = await lab.exec(
        "knocker",
        lab.deno("cli.ts", "knock", target, "-c", `${dir.path}/client.yaml`, "--door", "ssh"),
      );
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assert(await eventually(() => lab.canConnect("knocker", target, SERVICE), 3000), log.text);
      assertEquals(await lab.canConnect("bystander", ADDR.server.toBystander, SERVICE), false);
    });

    await t.step(
      "a wrong sequence is a refusal with evidence=capture, which fail2ban never matches",
      async () => {
        for (const port of await wrongPorts(ADDR.bystander.v4)) {
          await lab.canConnect("bystander", ADDR.server.toBystander, port);
        }
        assert(
          await eventually(() => log.text.includes(`knock failed from ${ADDR.bystander.v4}`), 3000),
          log.text,
        );
        assertStringIncludes(log.text, "evidence=capture");
        await Deno.writeTextFile(`${dir.path}/sesame.log`, log.text);
        assertEquals(await fail2banMatches(`${dir.path}/sesame.log`), []);
      },
    );

    await t.step(
      "the reader killed: logged at error, running again within seconds, knocks heard",
      async () => {
        // The daemon's own reader: its child (pids are not the namespace's own).
        const pid = async () =>
          text(await lab.exec("server", ["pgrep", "-P", String(child.pid), "tcpdump"])).trim()
            .split("\n")[0];
        const first = await pid();
        assert(first !== "", "tcpdump runs");
        await lab.exec("server", ["kill", "-9", first]);
        assert(
          await eventually(() => log.text.includes("the knock reader (tcpdump) stopped"), 3000),
        );
        assert(
          await eventually(async () => {
            const now = await pid();
            return now !== "" && now !== first;
          }, 5000),
          "tcpdump runs again",
        );
        assert(await eventually(() => log.text.includes("the knock reader runs again"), 5000));
        // Heard again: the bystander's own correct knock now opens for it.
        const out = await lab.exec(
          "bystander",
          lab.deno(
            "cli.ts",
            "knock",
            ADDR.server.toBystander,
            "-c",
            `${dir.path}/client.yaml`,
            "--door",
            "ssh",
          ),
        );
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
        assert(
          await eventually(
            () => lab.canConnect("bystander", ADDR.server.toBystander, SERVICE),
            3000,
          ),
          log.text,
        );
      },
    );

    await t.step(
      "an SPA packet, read from the capture (no socket on 62201), opens its door for the knocker",
      async () => {
        assertEquals(await lab.canConnect("knocker", target, SERVICE + 1), false);
        const out = await lab.exec(
          "knocker",
          lab.deno("cli.ts", "knock", target, "-c", `${dir.path}/client.yaml`, "--door", "spa"),
        );
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
        assert(
          await eventually(() => lab.canConnect("knocker", target, SERVICE + 1), 3000),
          log.text,
        );
        assertEquals(
          await lab.canConnect("bystander", ADDR.server.toBystander, SERVICE + 1),
          false,
        );
        const status = await lab.exec("server", lab.deno("cli.ts", "status", "-c", file, "--json"));
        const daemon = JSON.parse(text(status)).daemon;
        assertEquals([daemon.intake.kind, daemon.intake.group], ["nflog", GROUP]);
        assert(daemon.intake.captured >= 4, JSON.stringify(daemon.intake));
        // What the kernel's capture rules counted (read every 5 s) against what was parsed:
        // nothing lost at this rate.
        const intake = async () =>
          JSON.parse(
            text(await lab.exec("server", lab.deno("cli.ts", "status", "-c", file, "--json"))),
          ).daemon.intake;
        assert(
          await eventually(async () => {
            const now = await intake();
            return now.logged > 0 && now.logged === now.captured;
          }, 8000),
          JSON.stringify(await intake()),
        );
      },
    );

    await t.step("another tool flushes the ruleset: the capture rules come back", async () => {
      await lab.nft("flush", "ruleset");
      assert(
        await eventually(
          async () =>
            (await lab.nft("list", "table", "inet", "sesame")).includes(`log group ${GROUP}`),
          5000,
        ),
        log.text,
      );
    });

    await t.step(
      "SIGKILL leaves the reader behind; the next start ends it and hears knocks",
      async () => {
        const reader = text(await lab.exec("server", ["pgrep", "-P", String(child.pid), "tcpdump"]))
          .trim();
        assert(reader !== "", "the daemon has a reader");
        child.kill("SIGKILL");
        await child.status;
        const again = await lab.listen(file);
        try {
          assert(
            await eventually(() => again.log.text.includes("ended a knock reader"), 5000),
            again.log.text,
          );
          for (const port of await wrongPorts(ADDR.knocker.v4)) {
            await lab.canConnect("knocker", target, port);
          }
          assert(
            await eventually(
              () => again.log.text.includes(`knock failed from ${ADDR.knocker.v4}`),
              5000,
            ),
            again.log.text,
          );
        } finally {
          again.child.kill("SIGTERM");
          await again.child.status;
        }
      },
    );
  },
});

Deno.test({
  name:
    "capture intake under the shipped unit's capabilities (its CapabilityBoundingSet, no new privileges): the reader runs as user tcpdump and a knock opens",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const file = `${dir.path}/server.yaml`;
    await writePrivate(file, server(dir.path));
    await writePrivate(
      `${dir.path}/client.yaml`,
      `doors:\n  ssh: { secret: "${SECRET}", ${POOL} }\n`,
    );
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    // The unit's own line, so that the test follows the unit.
    const unit = await Deno.readTextFile(new URL("../deploy/sesame.service", import.meta.url));
    const caps = /^CapabilityBoundingSet=(.+)$/m.exec(unit)![1].split(" ")
      .map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`);
    assert(/^NoNewPrivileges=yes$/m.test(unit));
    const child = lab.spawn("server", [
      "setpriv",
      `--bounding-set=-all,${caps.join(",")}`,
      "--inh-caps=-all",
      "--no-new-privs",
      "--",
      ...lab.deno("cli.ts", "listen", "-c", file),
    ]);
    let log = "";
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
    })().catch(() => {});
    try {
      assert(await eventually(() => log.includes("listening on NFLOG group"), 15_000), log);
      const target = ADDR.server.toKnocker;
      const out = await lab.exec(
        "knocker",
        lab.deno("cli.ts", "knock", target, "-c", `${dir.path}/client.yaml`, "--door", "ssh"),
      );
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assert(await eventually(() => lab.canConnect("knocker", target, SERVICE), 3000), log);
      assert(!log.includes("knock reader (tcpdump) stopped"), log);
      const ps = new TextDecoder().decode(
        (await lab.exec("server", ["ps", "-o", "user=", "-C", "tcpdump"])).stdout,
      );
      assertStringIncludes(ps, "tcpdump");
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  },
});

Deno.test({
  name:
    "capture intake on a drop pool: the client kernel's retransmitted SYN of the first knock, arriving mid-sequence, does not break it",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const file = `${dir.path}/server.yaml`;
    await writePrivate(
      file,
      server(dir.path).replace("closed_reply: reject", "closed_reply: drop"),
    );
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    const { child, log } = await lab.listen(file);
    try {
      const code = await lab.exec(
        "server",
        lab.deno(
          "cli.ts",
          "code",
          "-c",
          file,
          "--door",
          "ssh",
          "--from",
          ADDR.knocker.v4,
          "--json",
        ),
      );
      const ports = (JSON.parse(new TextDecoder().decode(code.stdout)).knocks as { port: number }[])
        .map((k) => k.port);
      // Knock 1 waits 3 s for an answer that never comes: its kernel sends the SYN again
      // after about 1 s, between knocks 2 and 3.
      const script = `
import socket, threading, time
def knock(port, wait):
    s = socket.socket(); s.settimeout(wait)
    try: s.connect(("${ADDR.server.toKnocker}", port))
    except Exception: pass
    s.close()
t = threading.Thread(target=knock, args=(${ports[0]}, 3)); t.start()
time.sleep(0.3); knock(${ports[1]}, 0.2)
time.sleep(1.2); knock(${ports[2]}, 0.2)
t.join()`;
      const out = await lab.exec("knocker", ["python3", "-c", script]);
      assert(out.success, new TextDecoder().decode(out.stderr));
      assert(
        await eventually(() => lab.canConnect("knocker", ADDR.server.toKnocker, SERVICE), 3000),
        log.text,
      );
      const metrics = await lab.exec("server", lab.deno("cli.ts", "status", "-c", file, "--json"));
      const captured = JSON.parse(new TextDecoder().decode(metrics.stdout)).daemon.intake.captured;
      assert(captured >= 4, `the retransmission was captured too: ${captured}`);
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  },
});

Deno.test({
  name:
    "capture intake: only knocks to listen.addresses count; a pool port's reset is the kernel's own, like an unused port's (its TOS echoed)",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const file = `${dir.path}/server.yaml`;
    await writePrivate(
      file,
      server(dir.path).replace(`addresses: ["::"]`, `addresses: ["${ADDR.server.toKnocker}"]`),
    );
    await writePrivate(
      `${dir.path}/client.yaml`,
      `doors:\n  ssh: { secret: "${SECRET}", ${POOL} }\n`,
    );
    const service = lab.spawn("server", lab.deno("tests/_echo_server.ts", String(SERVICE)));
    assertEquals(await lines(service).next(), "ready");
    const { child, log } = await lab.listen(file);
    try {
      const knock = (host: "knocker" | "bystander", to: string) =>
        lab.exec(
          host,
          lab.deno("cli.ts", "knock", to, "-c", `${dir.path}/client.yaml`, "--door", "ssh"),
        );
      // The bystander knocks its own correct code, at an address listen does not name.
      assertEquals((await knock("bystander", ADDR.server.toBystander)).code, 0);
      await knock("knocker", ADDR.server.toKnocker);
      assert(
        await eventually(() => lab.canConnect("knocker", ADDR.server.toKnocker, SERVICE), 3000),
        log.text,
      );
      assertEquals(await lab.canConnect("bystander", ADDR.server.toBystander, SERVICE), false);
      assert(!log.text.includes(`opened for ${ADDR.bystander.v4}`), log.text);

      // A SYN with TOS 0x28 to a pool port and to an unused port: both resets echo it.
      const sniff = lab.spawn("bystander", [
        "tcpdump",
        "-n",
        "-v",
        "-l",
        "-c",
        "2",
        "-i",
        "any",
        "tcp[tcpflags] & tcp-rst != 0",
      ], "null");
      await new Promise((r) => setTimeout(r, 500));
      const probe = `
import socket
for port in (24050, 23999):
    s = socket.socket(); s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28); s.settimeout(1)
    s.connect_ex(("${ADDR.server.toBystander}", port)); s.close()`;
      await lab.exec("bystander", ["python3", "-c", probe]);
      const seen = new TextDecoder().decode((await sniff.output()).stdout);
      const tos = [...seen.matchAll(/tos (0x[0-9a-f]+)/g)].map((m) => m[1]);
      assertEquals(tos, ["0x28", "0x28"], seen);

      // A sweep from one source: beyond a burst of 100, 20 knocks a second are heard.
      const status = async () =>
        JSON.parse(new TextDecoder().decode(
          (await lab.exec("server", lab.deno("cli.ts", "status", "-c", file, "--json"))).stdout,
        )).daemon.intake.captured as number;
      const before = await status();
      const sweep = `
import socket, time
start = time.time()
for i in range(600):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("${ADDR.server.toKnocker}", 24000 + i % 100))
    except Exception: pass
    s.close()
print(time.time() - start)`;
      const swept = await lab.exec("knocker", ["python3", "-c", sweep]);
      const seconds = Number(new TextDecoder().decode(swept.stdout));
      await new Promise((r) => setTimeout(r, 500));
      const heard = (await status()) - before;
      assert(
        heard >= 100 && heard <= 100 + 20 * (seconds + 1) + 10,
        `${heard} of 600 heard in ${seconds} s`,
      );
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  },
});
