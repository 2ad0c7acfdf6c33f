/**
 * Reload and unban through the control socket, on a daemon whose I/O are the twins and
 * whose clock the test drives: a reload reports what changed or why it was refused (the
 * old config runs on), scanner bans survive it, and `unban` lets a scanner's next
 * correct sequence open.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { tempDir } from "./_cli.ts";
import { Daemon } from "../lib/daemon/daemon.ts";
import { askDaemon } from "../lib/daemon/control.ts";
import { parseConfig } from "../lib/config/load.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";
import { counterAt } from "../lib/sequence.ts";
import {
  DryRunFirewall,
  ManualClock,
  MemoryListeners,
  RecordingRunner,
} from "../lib/testing/mod.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const T0 = Date.UTC(2026, 11, 6, 12, 0, 5);
const SCANNER = "192.0.2.66";
const USER = "198.51.100.7";

const config = (extra = "") => `
doors:
  ssh:
    secret: "${SECRET}"
    ports: "20000-20099"
    length: 3
    period: 1h
    open: { for: 30s, command: ["/sbin/allow", "{ip}"] }
${extra}`;

Deno.test("reload through the control socket: changes reported, a broken config refused, bans kept; unban lifts a ban", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.yaml`;
  await Deno.writeTextFile(file, config());
  const clock = new ManualClock(T0);
  let listeners: MemoryListeners | undefined;
  const runner = new RecordingRunner();
  const control = `${dir.path}/control.sock`;
  const daemon = await Daemon.start({
    config: parseConfig(await Deno.readTextFile(file), file),
    clock,
    runner,
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
    control,
    loadConfig: async () => parseConfig(await Deno.readTextFile(file), file),
  });
  try {
    const door = userDoors(parseConfig(config(), file).doors)[0];
    const code = await codeForCounter(door, counterAt(T0, 3_600_000));
    const knockCode = async (source: string) => {
      for (const k of code.knocks) {
        listeners!.knock(source, k.protocol, k.port);
        clock.advance(100);
      }
      await daemon.settled();
    };
    const opened = () => runner.runs.map((argv) => argv[1]);

    // A scanner: more distinct misses than scan_threshold (6) within scan_window.
    const wrong = [...Array(100).keys()].map((i) => 20000 + i)
      .filter((p) => !code.knocks.some((k) => k.port === p)).slice(0, 8);
    for (const port of wrong) {
      listeners!.knock(SCANNER, "tcp", port);
      clock.advance(10);
    }
    await daemon.settled();
    const banned = () => daemon.status().bans.map((b) => b.source);
    assertEquals(banned(), [SCANNER]);

    // A reload that adds a door: reported, and the ban stays.
    await Deno.writeTextFile(
      file,
      config(`  web:\n    secret: "${SECRET}"\n    ports: "21000-21099"\n    open: { for: 30s }\n`),
    );
    const reloaded = await askDaemon(control, { op: "reload" });
    assertEquals(reloaded, { ok: true, changes: ["door web added"] });
    assertEquals(banned(), [SCANNER], "a reload is no way out of a ban");
    await knockCode(SCANNER);
    assertEquals(opened(), [], "the banned scanner's correct sequence opened nothing");

    // A config that cannot run: refused with where and why; the old one runs on.
    await Deno.writeTextFile(file, config().replace("length: 3", "length: 99"));
    const refused = await askDaemon(control, { op: "reload" });
    assert(refused && !refused.ok);
    assertStringIncludes(refused.error, "sesame.yaml:6:13: doors.ssh.length: must be 1–16");
    await knockCode(USER);
    assertEquals(opened(), [USER], "the running config still opens for a good knock");

    // unban: nothing for an address never banned; lifts the scanner's ban.
    assertEquals((await askDaemon(control, { op: "unban", ip: "203.0.113.9" }))?.ok, false);
    const lifted = await askDaemon(control, { op: "unban", ip: SCANNER });
    assertEquals(lifted?.ok, true);
    assertEquals(banned(), []);
    clock.advance(1000);
    // The code is used (by USER): the next counter's sequence opens for the unbanned scanner.
    const next = await codeForCounter(door, counterAt(T0, 3_600_000) + 1);
    for (const k of next.knocks) {
      listeners!.knock(SCANNER, k.protocol, k.port);
      clock.advance(100);
    }
    await daemon.settled();
    assertEquals(opened(), [USER, SCANNER]);
  } finally {
    await daemon.stop();
  }
});

Deno.test("reload whose ports are all taken: in force, said so (applied), and its ports are bound once free; never the old config's", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.yaml`;
  await Deno.writeTextFile(file, config());
  const clock = new ManualClock(T0);
  let listeners: MemoryListeners | undefined;
  const control = `${dir.path}/control.sock`;
  const daemon = await Daemon.start({
    config: parseConfig(await Deno.readTextFile(file), file),
    clock,
    runner: new RecordingRunner(),
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
    control,
    loadConfig: async () => parseConfig(await Deno.readTextFile(file), file),
  });
  try {
    // The new pool's ports are all held by another program.
    await Deno.writeTextFile(file, config().replace("20000-20099", "21000-21009"));
    for (let p = 21000; p <= 21009; p++) listeners!.refuse.set(`tcp/::/${p}`, "AddrInUse");
    const answer = await askDaemon(control, { op: "reload" });
    assert(answer && !answer.ok && answer.applied === true, JSON.stringify(answer));
    assertEquals(listeners!.size, 0, "the old pool is not listened on");
    listeners!.refuse.clear(); // the squatter left
    clock.advance(1000);
    await daemon.settled();
    assertEquals(listeners!.size, 10, "the new pool is bound by the retry");
    assert(listeners!.knock("192.0.2.9", "tcp", 21003), "a knock on the new pool is heard");
    assert(!listeners!.knock("192.0.2.9", "tcp", 20003), "the old pool is not");
  } finally {
    await daemon.stop();
  }
});

Deno.test("a stop waits for the reload under way, and a reload asked once the stop began is refused: nothing is applied after the stop", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.yaml`;
  await Deno.writeTextFile(file, config());
  const daemon = await Daemon.start({
    config: parseConfig(await Deno.readTextFile(file), file),
    clock: new ManualClock(T0),
    runner: new RecordingRunner(),
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => new MemoryListeners(sink, options),
    loadConfig: async () => parseConfig(await Deno.readTextFile(file), file),
  });
  let reloaded = false;
  const during = daemon.reloadFile().then((outcome) => {
    reloaded = true;
    return outcome;
  });
  const stopping = daemon.stop();
  const late = await daemon.reloadFile();
  await stopping;
  assertEquals(reloaded, true, "the stop waited for the reload under way");
  // It was still reading the file when the stop began: it applies nothing.
  assertEquals(await during, { ok: false, error: "the daemon is stopping" });
  assertEquals(late, { ok: false, error: "the daemon is stopping" });
});
