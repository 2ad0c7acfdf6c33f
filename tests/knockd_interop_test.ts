/**
 * Interoperability with knockd 0.8 (Debian's package), both ways:
 * sesame's client opens a real knockd, and knockd's `knock` client opens a sesame static door.
 * These run wherever knockd is installed and always in CI, which installs it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { runCli, tempDir, writePrivate } from "./_cli.ts";
import { randomBase } from "./_daemon.ts";
import { eventually, exists, spawnListen } from "./_process.ts";

const hasKnockd = await exists("/usr/sbin/knockd") && await exists("/usr/bin/knock");
const isRoot = Deno.uid() === 0;
// In CI these must run: missing tools fail the test instead of skipping it.
const ignore = !Deno.env.get("CI") && (!hasKnockd || !isRoot);

Deno.test({
  name: "knockd interop: sesame knock triggers a real knockd's command, a wrong knock does not",
  ignore,
  async fn() {
    await using dir = await tempDir();
    const base = randomBase(10);
    await writePrivate(
      `${dir.path}/knockd.conf`,
      `[options]
  LogFile = ${dir.path}/knockd.log
  PidFile = ${dir.path}/knockd.pid
  Interface = lo
[open]
  sequence = ${base}:tcp,${base + 1}:udp,${base + 2}:tcp
  seq_timeout = 5
  tcpflags = syn
  command = /usr/bin/touch ${dir.path}/opened-%IP%
`,
    );
    const knockd = new Deno.Command("/usr/sbin/knockd", {
      args: ["-c", `${dir.path}/knockd.conf`, "-i", "lo"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      assert(
        await eventually(
          async () =>
            (await Deno.readTextFile(`${dir.path}/knockd.log`).catch(() => "")).includes(
              "listening",
            ),
          5000,
        ),
      );
      const wrong = await runCli([
        "knock",
        "127.0.0.1",
        `${base}`,
        `${base + 2}`,
        `${base + 1}:udp`,
        "--source",
        "127.0.0.3",
      ]);
      assertEquals(wrong.code, 0, wrong.stderr);
      const right = await runCli([
        "knock",
        "127.0.0.1",
        `${base}`,
        `${base + 1}:udp`,
        `${base + 2}:tcp`,
        "--source",
        "127.0.0.2",
      ]);
      assertEquals(right.code, 0, right.stderr);
      assert(
        await eventually(() => exists(`${dir.path}/opened-127.0.0.2`), 3000),
        "knockd ran its command for 127.0.0.2",
      );
      assertEquals(
        await exists(`${dir.path}/opened-127.0.0.3`),
        false,
        "the wrong order opened nothing",
      );
    } finally {
      knockd.kill("SIGTERM");
      await knockd.status;
    }
  },
});

Deno.test({
  name: "knockd interop: knockd's knock client opens a sesame static door (TCP, UDP, and -u)",
  ignore,
  async fn() {
    await using dir = await tempDir();
    const base = randomBase(10);
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["::"] }
doors:
  legacy:
    sequence: [${base}, "${base + 1}/udp", ${base + 2}]
    open: { for: 10s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
  udp:
    sequence: ["${base + 5}/udp", "${base + 6}/udp", "${base + 7}/udp"]
    open: { for: 10s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
`,
    );
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
    await p.waitForLog(/listening on/);
    const knock = (args: string[]) =>
      new Deno.Command("/usr/bin/knock", { args, stdout: "null", stderr: "piped" }).output();
    assertEquals((await knock(["127.0.0.1", `${base}`, `${base + 1}:udp`, `${base + 2}`])).code, 0);
    assert(
      await eventually(() => exists(`${dir.path}/open-legacy-127.0.0.1`)),
      "knock's TCP+UDP sequence opened the door",
    );
    assertEquals(
      (await knock(["-u", "-d", "20", "::1", `${base + 5}`, `${base + 6}`, `${base + 7}`])).code,
      0,
    );
    assert(
      await eventually(() => exists(`${dir.path}/open-udp-::1`)),
      "knock -u over IPv6 opened the UDP door",
    );
    // The wrong order, from ::1, which has not opened "legacy" yet. Knocks out of order by
    // less than the daemon's reorder window (500 ms) are put back in order, on purpose (a
    // burst reaches the daemon out of order): space them out beyond it.
    assertEquals(
      (await knock(["-d", "600", "::1", `${base + 2}`, `${base}`, `${base + 1}:udp`])).code,
      0,
    );
    p.kill("SIGTERM");
    await p.child.status;
    assertEquals(
      [...Deno.readDirSync(dir.path)].filter((e) => e.name.startsWith("open-")).length,
      2,
      "the wrong order opened nothing more",
    );
  },
});
