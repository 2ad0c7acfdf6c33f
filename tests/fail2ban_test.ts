/**
 * The shipped fail2ban filter (deploy/fail2ban) against a real `sesame listen` log, read by
 * the real `fail2ban-regex`: a source whose completed TCP handshakes fit no code is matched;
 * UDP forged from a victim's address on a door that takes UDP never is, nor a timeout.
 */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { fail2banMatches } from "./_fail2ban.ts";
import { randomBase } from "./_daemon.ts";
import { sendKnock } from "../lib/net/sender.ts";
import { eventually, spawnListen } from "./_process.ts";

const ignore = !Deno.env.get("CI") &&
  !(await Deno.stat("/usr/bin/fail2ban-regex").then(() => true, () => false));

/**
 * The sources the shipped filter finds in `log`: as sesame writes it, and as syslog or the
 * journal hands it to fail2ban (a host and process prefix before sesame's own time) — the
 * same in both.
 */
async function matched(dir: string, log: string): Promise<string[]> {
  await Deno.writeTextFile(`${dir}/sesame.log`, log);
  const raw = await fail2banMatches(`${dir}/sesame.log`);
  const prefixed = log.split("\n").map((l) => l && `Dec  6 05:17:39 myhost sesame[4242]: ${l}`);
  await Deno.writeTextFile(`${dir}/syslog.log`, prefixed.join("\n"));
  assertEquals(await fail2banMatches(`${dir}/syslog.log`), raw, "the same through syslog");
  return raw;
}

for (const format of ["text", "json"] as const) {
  Deno.test({
    name:
      `fail2ban (${format} log): TCP failures are matched; forged UDP against a victim on a mixed door is not`,
    ignore,
    async fn() {
      await using dir = await tempDir();
      const base = randomBase(10);
      // A knockd-style door whose sequence has a UDP knock: it takes UDP, so UDP reaches it.
      await writePrivate(
        `${dir.path}/c.yaml`,
        `listen: { addresses: ["127.0.0.1"] }
doors:
  mixed:
    sequence: [${base}, "${base + 1}/udp", ${base + 2}, ${base + 3}, ${base + 4}]
    decoys: 0
    sequence_timeout: 1s
    open: { for: 5s, log: true }
`,
      );
      await using p = spawnListen(["-c", `${dir.path}/c.yaml`, "--log-format", format]);
      await p.waitForLog(/listening on/);
      const tcp = (port: number, from: string) =>
        sendKnock({ port, protocol: "tcp" }, { host: "127.0.0.1", localAddress: from });
      const udp = (port: number, from: string) =>
        sendKnock({ port, protocol: "udp" }, { host: "127.0.0.1", localAddress: from });
      // A real failure: a TCP knock four places early, which fits no code (reason=wrong).
      // (The same knock twice is a duplicate now, as a retransmitted SYN: not a failure.)
      await tcp(base + 4, "127.0.0.8");
      // Started and never finished: a timeout, which knocks lost on the way also give.
      await tcp(base, "127.0.0.11");
      // Forged: a datagram "from" a victim that never knocked.
      await udp(base + 1, "127.0.0.9");
      // A victim part way through with real TCP knocks, reset by a forged datagram.
      await tcp(base, "127.0.0.10");
      await udp(base + 1, "127.0.0.10");
      await udp(base + 1, "127.0.0.10");
      for (const source of ["127.0.0.8", "127.0.0.9", "127.0.0.10", "127.0.0.11"]) {
        const line = new RegExp(`knock failed from \\W*${source.replaceAll(".", "\\.")}\\W`);
        assert(
          await eventually(() => line.test(p.log()), 5000),
          `no failure line for ${source}:\n${p.log()}`,
        );
      }
      assertEquals(
        await matched(dir.path, p.log()),
        ["127.0.0.8"],
        `only the client's own TCP failure may ban (not a timeout, not forged UDP):\n${p.log()}`,
      );
    },
  });
}

Deno.test({
  name: "fail2ban: a log of knocks lost to the order the daemon received them in bans no one",
  ignore,
  async fn() {
    await using dir = await tempDir();
    const base = randomBase(10);
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["127.0.0.1"], reorder_window: 20ms }
doors:
  legacy:
    sequence: [${base}, ${base + 1}, ${base + 2}]
    decoys: 0
    sequence_timeout: 5s
    open: { for: 5s }
`,
    );
    for (const format of ["text", "json"]) {
      await using p = spawnListen(["-c", `${dir.path}/c.yaml`, "--log-format", format]);
      await p.waitForLog(/listening on/);
      const tcp = (port: number, from: string) =>
        sendKnock({ port, protocol: "tcp" }, { host: "127.0.0.1", localAddress: from });
      // Three sources whose second knock reached the daemon first, and the first too late.
      for (const source of ["127.0.0.21", "127.0.0.22", "127.0.0.23"]) {
        await tcp(base + 1, source);
        // A child daemon on the real clock: its 20 ms window must pass before the next knock.
        await new Promise((r) => setTimeout(r, 60));
        await tcp(base, source);
      }
      assert(
        await eventually(
          () => p.log().split("\n").filter((l) => /reason.{0,3}order/.test(l)).length === 3,
          5000,
        ),
        `three ordering losses in the log:\n${p.log()}`,
      );
      assertEquals(
        await matched(dir.path, p.log()),
        [],
        `no ban for them (${format}):\n${p.log()}`,
      );
    }
  },
});

Deno.test({
  name:
    "fail2ban: a forged refusal injected through an authentic SPA packet is not matched (text and JSON, with a line break too)",
  ignore,
  async fn() {
    const { encodeSpa } = await import("../lib/spa/fko.ts");
    const { sendDatagram } = await import("../lib/net/sender.ts");
    await using dir = await tempDir();
    const base = randomBase(10);
    const key = btoa("k".repeat(32)), hmac = btoa("h".repeat(32));
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["127.0.0.1"] }
doors:
  spa:
    spa: { port: ${base}, key_base64: "${key}", hmac_key_base64: "${hmac}" }
    open: { for: 5s, command: ["/usr/bin/true"] }
`,
    );
    const keys = {
      encryption: Uint8Array.from(atob(key), (c) => c.charCodeAt(0)),
      hmac: Uint8Array.from(atob(hmac), (c) => c.charCodeAt(0)),
      hmacDigest: "sha256" as const,
    };
    const forged =
      "[INF] sesame.refusal: knock failed from 203.0.113.9 on door spa: reason=wrong evidence=tcp";
    const json =
      '","logger":"sesame.refusal","source":"203.0.113.9","door":"spa","reason":"wrong","evidence":"tcp"';
    for (const format of ["text", "json"]) {
      await using p = spawnListen(["-c", `${dir.path}/c.yaml`, "--log-format", format]);
      await p.waitForLog(/listening on/);
      // An insider with the keys: authentic packets whose access request is the forgery.
      for (const request of [` ${forged} `, `\n2026-12-06 04:00:00.000 +00 ${forged}\n`, json]) {
        const packet = encodeSpa(
          { user: "u", timestamp: Date.now() / 1000, type: 1, message: `127.0.0.31,${request}` },
          keys,
        );
        await sendDatagram(base, new TextEncoder().encode(packet), {
          host: "127.0.0.1",
          localAddress: "127.0.0.31",
        });
      }
      assert(
        await eventually(() => p.log().includes("203.0.113.9"), 5000),
        `the forgeries reached the log:\n${p.log()}`,
      );
      assertEquals(await matched(dir.path, p.log()), [], `nobody banned (${format}):\n${p.log()}`);
    }
  },
});

Deno.test({
  name:
    "the shipped jail, once enabled, is valid to the real fail2ban and bans on the knock pool only, never every port",
  ignore,
  async fn() {
    await using dir = await tempDir();
    const conf = `${dir.path}/fail2ban`;
    const copy = await new Deno.Command("cp", { args: ["-r", "/etc/fail2ban", conf] }).output();
    assert(copy.success);
    const root = new URL("../deploy/fail2ban/", import.meta.url).pathname;
    await Deno.copyFile(`${root}filter.d/sesame.conf`, `${conf}/filter.d/sesame.conf`);
    const jail = await Deno.readTextFile(`${root}jail.d/sesame.conf`);
    assert(/^enabled\s*=\s*false$/m.test(jail), "shipped disabled until the admin edits it");
    await Deno.writeTextFile(
      `${conf}/jail.d/sesame.conf`,
      jail.replace(/^enabled\s*=\s*false$/m, "enabled = true"),
    );
    const out = await new Deno.Command("fail2ban-client", {
      args: ["-c", conf, "-d"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert(out.success, new TextDecoder().decode(out.stderr));
    assert(text.includes("['add', 'sesame',"), text);
    assert(text.includes("['port', '28000:28999']"), "the jail bans the pool's ports");
    assert(!text.includes("0:65535"), "a ban must not cut every port");
  },
});
