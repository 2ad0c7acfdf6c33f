import { readStore } from "../lib/store/sqlite.ts";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { DENO_RUN, ROOT, tempDir, writePrivate } from "./_cli.ts";
import { knockAll, randomBase, sleep } from "./_daemon.ts";
import { eventually, exists, spawnListen } from "./_process.ts";
import type { Knock } from "../lib/knock.ts";

/** A static door whose open command creates a file and whose close command removes it: the door is the file. */
function config(dir: string, base: number, forS = 2, sequence = [base, base + 1, base + 2]) {
  return `listen: { addresses: ["127.0.0.1"] }
state_file: ${dir}/state.json
doors:
  door:
    sequence: [${sequence.join(", ")}]
    open:
      for: ${forS}s
      command: ["/usr/bin/touch", "${dir}/open-{door}-{ip}"]
      close_command: ["/usr/bin/rm", "-f", "${dir}/open-{door}-{ip}"]
`;
}

const seq = (ports: number[]): Knock[] => ports.map((port) => ({ port, protocol: "tcp" }));

Deno.test("listen process: SIGTERM closes open doors, saves state and exits 0", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  await writePrivate(`${dir.path}/c.yaml`, config(dir.path, base, 60));
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await p.waitForLog(/listening on \d+ sockets/);
  await knockAll("127.0.0.1", seq([base, base + 1, base + 2]), { localAddress: "127.0.0.2" });
  const door = `${dir.path}/open-door-127.0.0.2`;
  assert(await eventually(() => exists(door)), "the door opened");
  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  assertEquals(await exists(door), false, "stopping closed the door");
  assertEquals(readStore(`${dir.path}/state.json`).open, []);
  assertStringIncludes(p.log(), "door door closed for 127.0.0.2");
});

Deno.test("listen process: after a SIGKILL with a door open, the restart closes it when due", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  await writePrivate(`${dir.path}/c.yaml`, config(dir.path, base, 1));
  const door = `${dir.path}/open-door-127.0.0.2`;
  {
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
    await p.waitForLog(/listening on/);
    await knockAll("127.0.0.1", seq([base, base + 1, base + 2]), { localAddress: "127.0.0.2" });
    assert(await eventually(() => exists(door)), "the door opened");
    p.kill("SIGKILL");
    await p.child.status;
  }
  await sleep(1300); // the door's time runs out while no daemon runs
  assert(
    await exists(door),
    "a crashed daemon closed nothing (that is the point of the state file)",
  );
  await using again = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await again.waitForLog(/listening on/);
  assertEquals(
    await exists(door),
    false,
    "the restart closed the door that fell due before binding",
  );
  assertStringIncludes(again.log(), "took over 1 open doors");
});

Deno.test("listen process: SIGHUP with a broken config keeps the old one; a good one takes over", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(file, config(dir.path, base, 1));
  await using p = spawnListen(["-c", file]);
  await p.waitForLog(/listening on/);

  await writePrivate(file, "doors:\n  door:\n    sequence: [nope]\n");
  p.kill("SIGHUP");
  await p.waitForLog(/reload refused/);
  assertStringIncludes(p.log(), `${file}:3:16: doors.door.sequence.0`);
  await knockAll("127.0.0.1", seq([base, base + 1, base + 2]), { localAddress: "127.0.0.2" });
  assert(
    await eventually(() => exists(`${dir.path}/open-door-127.0.0.2`)),
    "the old config still opens",
  );

  await writePrivate(file, config(dir.path, base, 1, [base + 5, base + 6, base + 7]));
  p.kill("SIGHUP");
  await p.waitForLog(/reloaded/);
  await knockAll("127.0.0.1", seq([base, base + 1, base + 2]), { localAddress: "127.0.0.3" });
  await knockAll("127.0.0.1", seq([base + 5, base + 6, base + 7]), { localAddress: "127.0.0.4" });
  assert(
    await eventually(() => exists(`${dir.path}/open-door-127.0.0.4`)),
    "the new sequence opens",
  );
  assertEquals(
    await exists(`${dir.path}/open-door-127.0.0.3`),
    false,
    "the old sequence no longer does",
  );
  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
});

Deno.test("listen process: a corrupt state file is kept aside and the current codes are refused", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(
    file,
    `listen: { addresses: ["127.0.0.1"] }
state_file: ${dir.path}/state.json
doors:
  ssh:
    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    ports: "${base}-${base + 9}"
    length: 3
    period: 1h
    open: { for: 5s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
`,
  );
  await writePrivate(`${dir.path}/state.json`, '{"version":1,"used":[["ssh/4');
  await using p = spawnListen(["-c", file]);
  await p.waitForLog(/listening on/);
  assertStringIncludes(p.log(), "is damaged");
  const kept = [...Deno.readDirSync(dir.path)].map((e) => e.name).filter((n) =>
    n.startsWith("state.json.corrupt-")
  );
  assertEquals(kept.length, 1, "the corrupt file is kept, not overwritten");
  // The current code would open a door with a good state file; here it is refused.
  const { codeAt } = await import("../lib/code.ts");
  const { parseConfig } = await import("../lib/config/load.ts");
  const door = parseConfig(await Deno.readTextFile(file), file).doors[0];
  await knockAll("127.0.0.1", (await codeAt(door, Date.now())).knocks, {
    localAddress: "127.0.0.2",
  });
  await p.waitForLog(/already used code/);
  assertEquals(await exists(`${dir.path}/open-ssh-127.0.0.2`), false);
  p.kill("SIGTERM");
  await p.child.status;
});

Deno.test("listen process: a knock whose clock is two periods ahead is refused with a log line saying so", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(
    file,
    `listen: { addresses: ["127.0.0.1"] }
doors:
  ssh:
    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    ports: "${base}-${base + 19}"
    length: 3
    period: 1h
    open: { for: 5s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
`,
  );
  await using p = spawnListen(["-c", file]);
  await p.waitForLog(/listening on/);
  await sleep(600); // the first tick installs the skew probes
  const { codeForCounter } = await import("../lib/code.ts");
  const { parseConfig } = await import("../lib/config/load.ts");
  const door = parseConfig(await Deno.readTextFile(file), file).doors[0];
  const ahead = await codeForCounter(door, Math.floor(Date.now() / 3_600_000) + 2);
  await knockAll("127.0.0.1", ahead.knocks, { localAddress: "127.0.0.2" });
  await p.waitForLog(
    /knock failed from 127\.0\.0\.2 on door \S+: reason=skew evidence=tcp \(the code of 2 period\(s\) ahead: the clocks disagree by about 2h/,
  );
  assertEquals(await exists(`${dir.path}/open-ssh-127.0.0.2`), false);
  p.kill("SIGTERM");
  await p.child.status;
});

Deno.test("listen process: a pool too large for the open-file limit is refused with the LimitNOFILE it needs", async () => {
  await using dir = await tempDir();
  await writePrivate(
    `${dir.path}/c.yaml`,
    `listen: { addresses: ["127.0.0.1"] }\ndoors:\n  big:\n    sequence: [16000, 16100, 16199]\n    decoys: 0\n  pool:\n    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"\n    ports: "15000-15199"\n    open: { for: 5s }\n`
      .replace(
        "decoys: 0\n",
        "decoys: 0\n    open: { for: 5s }\n",
      ),
  );
  const out = await new Deno.Command("/bin/bash", {
    args: [
      "-c",
      `ulimit -n 150; exec "$0" ${DENO_RUN.join(" ")} ${ROOT}cli.ts listen -c ${dir.path}/c.yaml`,
      Deno.execPath(),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 1, stderr);
  assertStringIncludes(stderr, "needs 203 sockets (+64 spare) but the open file limit is 150");
  assertStringIncludes(stderr, "LimitNOFILE=");
});

Deno.test("listen process: a pool inside the kernel's ephemeral port range is warned about", async () => {
  await using dir = await tempDir();
  const { ephemeralPortRange } = await import("../lib/system.ts");
  const range = (await ephemeralPortRange())!;
  const base = range[0] + 1000 + Math.floor(Math.random() * 1000);
  await writePrivate(
    `${dir.path}/c.yaml`,
    `listen: { addresses: ["127.0.0.1"] }\ndoors:\n  eph:\n    sequence: [${base}, ${
      base + 3
    }]\n    decoys: 0\n    open: { for: 5s }\n`,
  );
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await p.waitForLog(/listening on/);
  assertStringIncludes(
    p.log(),
    `door eph: 2 pool ports lie in the kernel's ephemeral range ${range[0]}-${range[1]}`,
  );
  p.kill("SIGTERM");
  await p.child.status;
});

Deno.test("listen process: a pool port already in use is logged with the door it weakens, and the rest work", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  using _taken = Deno.listen({ hostname: "127.0.0.1", port: base + 1 }); // someone else's service
  await writePrivate(
    `${dir.path}/c.yaml`,
    `listen: { addresses: ["127.0.0.1"] }
doors:
  legacy:
    sequence: [${base}, ${base + 5}, ${base + 10}]
    open: { for: 5s, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
`,
  );
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await p.waitForLog(/listening on/);
  assertStringIncludes(
    p.log(),
    `door legacy: 1 of its ports could not be bound (AddrInUse): ${base + 1}/tcp`,
  );
  await knockAll("127.0.0.1", seq([base, base + 5, base + 10]), { localAddress: "127.0.0.2" });
  assert(
    await eventually(() => exists(`${dir.path}/open-legacy-127.0.0.2`)),
    "the door still opens",
  );
  p.kill("SIGTERM");
  await p.child.status;
});

Deno.test("listen process: open.log false, every knock at debug, and a rate-limit summary that names its line", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(
    file,
    `listen: { addresses: ["127.0.0.1"] }
doors:
  quiet:
    sequence: [${base}, ${base + 1}]
    decoys: 0
    open: { for: 60s, log: false, command: ["/usr/bin/touch", "${dir.path}/open-{door}-{ip}"] }
  loud:
    sequence: [${base + 10}]
    decoys: 2
    open: { for: 60s }
`,
  );
  await using p = spawnListen(["-c", file, "--log-level", "debug"]);
  await p.waitForLog(/listening on/);
  await knockAll("127.0.0.1", seq([base, base + 1]), { localAddress: "127.0.0.2" });
  assert(
    await eventually(() => exists(`${dir.path}/open-quiet-127.0.0.2`)),
    "the quiet door opened",
  );
  // 30 sources each knock a decoy of the loud door: 30 scanner warnings, 20 pass the limit.
  for (let i = 0; i < 30; i++) {
    await knockAll("127.0.0.1", seq([base + 8]), { localAddress: `127.0.5.${i + 1}` });
  }
  await sleep(200);
  p.kill("SIGTERM");
  await p.child.status;
  const log = p.log();
  assertEquals(log.includes("door quiet opened"), false, "open.log: false");
  assertEquals(log.match(/knock from 127\.0\.5\.\d+ on/g)?.length, 30, "every knock at debug");
  assertEquals(log.match(/looks like a scanner/g)?.length, 21, "20 lines and the summary");
  assertStringIncludes(log, "suppressed 10 more lines like: {source} looks like a scanner");
});

Deno.test({
  name: "listen process: SIGHUPs in quick succession with an nft door reload, and none fails",
  ignore: !Deno.env.get("CI") && Deno.uid() !== 0,
  async fn() {
    const { Lab } = await import("./_netns.ts");
    await using dir = await tempDir();
    await using lab = await Lab.create();
    const file = `${dir.path}/c.yaml`;
    const body = (forS: number) =>
      `listen: { addresses: ["127.0.0.1"] }
doors:
  ssh:
    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    ports: "20000-20099"
    open: { for: ${forS}s, nft: { port: 22 } }
`;
    await writePrivate(file, body(30));
    await using p = spawnListen(["-c", file], ["ip", "netns", "exec", lab.ns.server]);
    await p.waitForLog(/listening on/, 10_000);
    await writePrivate(file, body(40));
    // A burst: later SIGHUPs arrive while a reload runs (the kernel may merge some of them).
    for (let i = 0; i < 5; i++) {
      p.kill("SIGHUP");
      await sleep(3);
    }
    await p.waitForLog(/reloaded/, 10_000);
    await sleep(1000);
    assertEquals(/internal error|reload refused/.test(p.log()), false, p.log());
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
  },
});

Deno.test("listen process: a SIGHUP that arrives while the daemon starts is carried out once it has started", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(file, config(dir.path, base, 30));
  await using p = spawnListen(["-c", file]);
  await p.waitForLog(/first start/); // the state is loaded; binding and the rest follow
  await writePrivate(file, config(dir.path, base, 30, [base + 5, base + 6, base + 7]));
  p.kill("SIGHUP");
  await p.waitForLog(/reloaded/, 5000);
  await knockAll("127.0.0.1", seq([base + 5, base + 6, base + 7]), { localAddress: "127.0.0.4" });
  assert(await eventually(() => exists(`${dir.path}/open-door-127.0.0.4`)), "the new config opens");
  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
});
