/**
 * The shipped fail2ban filter (deploy/fail2ban) against a real `sesame listen` log, read by
 * the real `fail2ban-regex`: every source that failed with completed TCP handshakes is
 * matched, and UDP forged from a victim's address on a door that takes UDP never is.
 */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { fail2banMatches } from "./_fail2ban.ts";
import { randomBase } from "./_daemon.ts";
import { sendKnock } from "../lib/net/sender.ts";
import { eventually, spawnListen } from "./_process.ts";

const ignore = !Deno.env.get("CI") &&
  !(await Deno.stat("/usr/bin/fail2ban-regex").then(() => true, () => false));

/** The sources the shipped filter finds in `log`. */
async function matched(dir: string, log: string): Promise<string[]> {
  await Deno.writeTextFile(`${dir}/sesame.log`, log);
  return await fail2banMatches(`${dir}/sesame.log`);
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
    sequence: [${base}, "${base + 1}/udp", ${base + 2}]
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
      // A real failure: a TCP knock out of order (held a moment for reordering, then timed out).
      await tcp(base + 2, "127.0.0.8");
      // Forged: a datagram "from" a victim that never knocked.
      await udp(base + 1, "127.0.0.9");
      // A victim part way through with real TCP knocks, reset by a forged datagram.
      await tcp(base, "127.0.0.10");
      await udp(base + 1, "127.0.0.10");
      await udp(base + 1, "127.0.0.10");
      for (const source of ["127.0.0.8", "127.0.0.9", "127.0.0.10"]) {
        const line = new RegExp(`knock failed from \\W*${source.replaceAll(".", "\\.")}\\W`);
        assert(
          await eventually(() => line.test(p.log()), 5000),
          `no failure line for ${source}:\n${p.log()}`,
        );
      }
      assertEquals(
        await matched(dir.path, p.log()),
        ["127.0.0.8"],
        `only the TCP failure may ban:\n${p.log()}`,
      );
    },
  });
}
