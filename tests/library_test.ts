/**
 * sesame as a library: what a program importing mod.ts (and ./testing) does, through the
 * public names only.
 */
import { assert, assertEquals } from "./_assert.ts";
import { codeAt, ConfigError, Daemon, formatKnock, parseConfig, sendKnock } from "../mod.ts";
import { ManualClock, RecordingRunner } from "../lib/testing/mod.ts";
import { randomBase, SECRET_B64 } from "./_daemon.ts";

Deno.test("library: load a config, derive the code, run a daemon on loopback and knock it open", async () => {
  const base = randomBase(50);
  const config = parseConfig(
    `listen: { addresses: ["127.0.0.1"] }
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 49}"
    length: 3
    open: { for: 10s, command: ["/sbin/allow", "{ip}"] }
`,
    "app.yaml",
  );
  const clock = new ManualClock(59_000_000 * 30_000 + 5000);
  const runner = new RecordingRunner();
  const daemon = await Daemon.start({ config, clock, runner });
  try {
    const { knocks, counter } = await codeAt(config.doors[0], clock.now());
    assertEquals(counter, 59_000_000);
    for (const k of knocks) {
      assertEquals(
        await sendKnock(k, { host: "127.0.0.1", localAddress: "127.0.0.9" }),
        "accepted",
      );
    }
    const deadline = Date.now() + 3000; // the sockets deliver on their own time
    while (daemon.openDoors().length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await daemon.settled();
    assertEquals(daemon.openDoors().map((r) => r.source), ["127.0.0.9"]);
    assertEquals(runner.runs, [["/sbin/allow", "127.0.0.9"]], `knocked ${knocks.map(formatKnock)}`);
    clock.advance(10_000);
    await daemon.settled();
    assertEquals(daemon.openDoors(), [], "closed after 'for'");
  } finally {
    await daemon.stop();
  }
});

Deno.test("library: a bad config throws ConfigError with every issue located", () => {
  try {
    parseConfig('doors:\n  ssh:\n    ports: "20000-20099"\n    length: 0\n', "app.yaml");
    assert(false, "parsed");
  } catch (e) {
    assert(e instanceof ConfigError, String(e));
    assertEquals(e.issues.map((i) => i.path).sort(), ["doors.ssh", "doors.ssh.length"]);
    assert(e.issues.every((i) => i.position?.file === "app.yaml"));
  }
});
