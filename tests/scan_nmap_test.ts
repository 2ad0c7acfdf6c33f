/**
 * Real scans never open a door: nmap connect (-sT) and SYN (-sS) scans of every port, in
 * order and randomised, across rotation boundaries, and a plain in-order connect sweep,
 * against a daemon inside a network namespace this test creates (its own loopback).
 */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir, writePrivate } from "./_cli.ts";
import { SECRET_B64 } from "./_daemon.ts";
import { Lab } from "./_netns.ts";
import { eventually } from "./_process.ts";

const hasNmap = await Deno.stat("/usr/bin/nmap").then(() => true, () => false);
const ignore = !Deno.env.get("CI") && (!hasNmap || Deno.uid() !== 0);

Deno.test({
  name:
    "scans: nmap -sT/-sS in order and random, and a connect sweep, open nothing; a real knock still does",
  ignore,
  async fn(t) {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const opened = () =>
      [...Deno.readDirSync(dir.path)].filter((e) => e.name.startsWith("open-")).map((e) => e.name);
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["127.0.0.1"] }
doors:
  rotating:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    length: 3
    period: 2s
    open: { for: 60s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
  ascending:
    sequence: [7000, 7001, 7002]
    open: { for: 60s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
`,
    );
    const daemon = lab.spawn("server", lab.deno("cli.ts", "listen", "-c", `${dir.path}/c.yaml`));
    assert(
      await eventually(() => lab.canConnect("server", "127.0.0.1", 7000), 10_000),
      "daemon up",
    );
    // Each scan from an address of its own: a ban earned by one scan must not be what
    // keeps a later one from opening a door.
    let scanner = 20;
    const nmap = async (...args: string[]) => {
      const out = await lab.exec("server", [
        "nmap",
        "-n",
        "-Pn",
        "-T5",
        "--max-retries",
        "0",
        "-p",
        "1-65535",
        "-S",
        `127.0.0.${scanner++}`,
        "-e",
        "lo",
        ...args,
        "127.0.0.1",
      ]);
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout);
    };
    await t.step("nmap -sT in port order", async () => {
      const report = await nmap("-sT", "-r");
      assert(report.includes("7000/tcp"), "the scan saw the pool"); // it really scanned
      assertEquals(opened(), []);
    });
    await t.step(
      "nmap -sT in random order, twice (across rotations of the 2 s period)",
      async () => {
        await nmap("-sT");
        await nmap("-sT");
        assertEquals(opened(), []);
      },
    );
    await t.step("nmap -sS in order and random", async () => {
      await nmap("-sS", "-r");
      await nmap("-sS");
      assertEquals(opened(), []);
    });
    await t.step("a plain in-order connect sweep that completes every handshake", async () => {
      const sweep = await lab.exec("server", [
        ...lab.deno("tests/_sweep.ts", "127.0.0.1", "127.0.0.5", "6900", "7100"),
      ]);
      assertEquals(sweep.code, 0, new TextDecoder().decode(sweep.stderr));
      const pool = await lab.exec(
        "server",
        lab.deno("tests/_sweep.ts", "127.0.0.1", "127.0.0.6", "20000", "20099"),
      );
      assertEquals(pool.code, 0);
      assertEquals(opened(), []);
    });
    await t.step("a real knock from another address still opens both doors", async () => {
      const k1 = await lab.exec(
        "server",
        lab.deno("cli.ts", "knock", "127.0.0.1", "7000", "7001", "7002", "--source", "127.0.0.9"),
      );
      assertEquals(k1.code, 0);
      await writePrivate(
        `${dir.path}/client.yaml`,
        `doors:\n  rotating: { secret: "${SECRET_B64}", ports: "20000-20099", length: 3, period: 2s }\n`,
      );
      const k2 = await lab.exec(
        "server",
        lab.deno(
          "cli.ts",
          "knock",
          "127.0.0.1",
          "-c",
          `${dir.path}/client.yaml`,
          "--door",
          "rotating",
          "--source",
          "127.0.0.9",
        ),
      );
      assertEquals(k2.code, 0);
      assert(
        await eventually(() => opened().length === 2, 3000),
        `opened: ${opened()}`,
      );
      assertEquals(opened().sort(), [
        "open-ascending-127.0.0.9",
        "open-rotating-127.0.0.9",
      ]);
    });
    daemon.kill("SIGTERM");
    await daemon.status;
  },
});

Deno.test({
  name:
    "scans: a 10 000-port pool listens whole: a SYN scan sees every port, before and after a rotation, and scan-guided bursts never open",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const opened = () =>
      [...Deno.readDirSync(dir.path)].filter((e) => e.name.startsWith("open-")).map((e) => e.name);
    await writePrivate(
      `${dir.path}/c.yaml`,
      `listen: { addresses: ["127.0.0.1"] }
doors:
  big:
    secret: "${SECRET_B64}"
    ports: "10000-19999"
    length: 4
    period: 3s
    open: { for: 60s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
`,
    );
    const daemon = lab.spawn("server", [
      "/bin/sh",
      "-c",
      `ulimit -n 16384 && exec "$@"`,
      "sh",
      ...lab.deno("cli.ts", "listen", "-c", `${dir.path}/c.yaml`),
    ]);
    assert(
      await eventually(() => lab.canConnect("server", "127.0.0.1", 19999), 10_000),
      "daemon up",
    );
    const openPorts = async (source: string) => {
      const out = await lab.exec("server", [
        "nmap",
        "-n",
        "-Pn",
        "-sS",
        "-T5",
        "--max-retries",
        "0",
        "-S",
        source,
        "-e",
        "lo",
        "-p",
        "10000-19999",
        "127.0.0.1",
      ]);
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      const text = new TextDecoder().decode(out.stdout);
      return new Set([...text.matchAll(/^(\d+)\/tcp\s+open/gm)].map((m) => Number(m[1])));
    };
    const before = await openPorts("127.0.0.30");
    assertEquals(before.size, 10_000, "every pool port is open to a scan");
    await new Promise((r) => setTimeout(r, 3000)); // a rotation
    const after = await openPorts("127.0.0.31");
    assertEquals(after.size, 10_000);
    // What a scan could learn: ports that appeared or vanished. Nothing, so the attacker's
    // bursts are guesses: 20 of them, 4 pool ports in ascending order within the reorder
    // window, each from an address of its own.
    const appeared = [...after].filter((p) => !before.has(p));
    assertEquals(appeared, []);
    for (let i = 0; i < 20; i++) {
      const guess = new Set<number>();
      while (guess.size < 4) guess.add(10_000 + Math.floor(Math.random() * 10_000));
      const ports = [...guess].sort((a, b) => a - b).map(String);
      const sent = await lab.exec(
        "server",
        lab.deno(
          "cli.ts",
          "knock",
          "127.0.0.1",
          ...ports,
          "-d",
          "1",
          "--source",
          `127.0.1.${i + 1}`,
        ),
      );
      assertEquals(sent.code, 0, new TextDecoder().decode(sent.stderr));
    }
    await new Promise((r) => setTimeout(r, 500));
    assertEquals(opened(), []);
    daemon.kill("SIGTERM");
    await daemon.status;
  },
});
