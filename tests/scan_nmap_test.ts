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
