/** Metrics without a port: listen.metrics_file, rewritten every 15 s for node_exporter. */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir } from "./_cli.ts";
import { parseConfig } from "../lib/config/load.ts";
import { ConfigError } from "../lib/errors.ts";
import { Daemon } from "../lib/daemon/daemon.ts";
import { DryRunFirewall, ManualClock, MemoryListeners } from "../lib/testing/mod.ts";

Deno.test("metrics file: written at start and every 15 s, whole (renamed into place)", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.prom`;
  const config = parseConfig(
    `listen: { metrics_file: "${file}" }\ndoors:\n  legacy:\n    sequence: [7000, 7001]\n    decoys: 0\n    open: { for: 60s }\n`,
    "c.yaml",
  );
  const clock = new ManualClock(Date.UTC(2026, 11, 6));
  let listeners: MemoryListeners | undefined;
  const daemon = await Daemon.start({
    config,
    clock,
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
  });
  try {
    const opens = async () =>
      Number(
        /^sesame_opens_total\{door="legacy"\} (\d+)$/m.exec(await Deno.readTextFile(file))?.[1],
      );
    assertEquals(await opens(), 0, "written at start");
    listeners!.knock("192.0.2.7", "tcp", 7000);
    listeners!.knock("192.0.2.7", "tcp", 7001);
    await daemon.settled();
    clock.advance(14_999);
    assertEquals(await opens(), 0, "not before 15 s");
    clock.advance(1);
    assertEquals(await opens(), 1, "rewritten after 15 s");
    const names = [...Deno.readDirSync(dir.path)].map((e) => e.name);
    assertEquals(names, ["sesame.prom"], "no temporary file left beside it");
  } finally {
    await daemon.stop();
  }
});

Deno.test("metrics file: a relative path or one not ending in .prom is refused with where and why", () => {
  try {
    parseConfig(
      `listen: { metrics_file: "sesame.txt" }\ndoors:\n  l:\n    sequence: [7000]\n`,
      "c.yaml",
    );
    assert(false, "accepted");
  } catch (e) {
    assert(e instanceof ConfigError);
    assert(
      /^c\.yaml:1:\d+: listen\.metrics_file: must be an absolute path ending in \.prom/.test(
        e.message,
      ),
      e.message,
    );
  }
});

Deno.test("metrics file: a link or a FIFO another user planted beside it is never written through", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.prom`;
  const victim = `${dir.path}/victim.txt`;
  await Deno.writeTextFile(victim, "secret\n", { mode: 0o600 });
  // The old fixed temporary name, and the file itself, as links to the victim.
  await Deno.symlink(victim, `${file}.sesame-tmp`);
  await Deno.symlink(victim, file);
  const config = parseConfig(
    `listen: { metrics_file: "${file}" }\ndoors:\n  legacy:\n    sequence: [7000]\n    decoys: 0\n    open: { for: 60s }\n`,
    "c.yaml",
  );
  const daemon = await Daemon.start({
    config,
    clock: new ManualClock(Date.UTC(2026, 11, 6)),
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => new MemoryListeners(sink, options),
  });
  try {
    assertEquals(await Deno.readTextFile(victim), "secret\n", "the link's target is untouched");
    assertEquals((await Deno.stat(victim)).mode! & 0o777, 0o600);
    assertEquals((await Deno.lstat(file)).isFile, true, "the link was replaced by the metrics");
    assert((await Deno.readTextFile(file)).includes("sesame_opens_total"));
  } finally {
    await daemon.stop();
  }
});
