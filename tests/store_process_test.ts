/**
 * The store under a real daemon process: SIGKILL in a burst of opens, a full and a
 * read-only filesystem (a tmpfs in a private mount namespace), a second process reading
 * while the daemon commits, and a deleted store.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { runCli, spawnScript, tempDir, writePrivate } from "./_cli.ts";
import { knockAll, randomBase, SECRET_B64, sleep } from "./_daemon.ts";
import { eventually, exists, spawnListen } from "./_process.ts";
import { readStore, SqliteStore } from "../lib/store/sqlite.ts";
import { parseConfig } from "../lib/config/load.ts";
import { codeAt } from "../lib/code.ts";
import { parseAddress } from "../lib/address.ts";
import type { Knock } from "../lib/knock.ts";

/** A bind_source door (each source its own code) whose open command leaves a file per source. */
function boundConfig(dir: string, state: string, base: number) {
  return `listen: { addresses: ["127.0.0.1"] }
state_file: ${state}
doors:
  near:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 19}"
    length: 3
    period: 1h
    bind_source: true
    open: { for: 60s, command: ["/usr/bin/touch", "${dir}/opened-{ip}"] }
`;
}

/** A static door whose open command leaves a file. */
function staticConfig(dir: string, state: string, base: number) {
  return `listen: { addresses: ["127.0.0.1"] }
state_file: ${state}
doors:
  door:
    sequence: [${base}, ${base + 1}, ${base + 2}]
    decoys: 0
    open:
      for: 1s
      command: ["/usr/bin/touch", "${dir}/opened-{ip}"]
      close_command: ["/usr/bin/touch", "${dir}/closed-{ip}"]
`;
}

const seq = (base: number): Knock[] =>
  [0, 1, 2].map((i) => ({ port: base + i, protocol: "tcp" as const }));

async function codeFor(yaml: string, source: string): Promise<readonly Knock[]> {
  const door = parseConfig(yaml, "c.yaml").doors[0];
  return (await codeAt(door, Date.now(), parseAddress(source))).knocks;
}

Deno.test("store: SIGKILL in a burst of opens: every door whose command ran is in the store, and its code is refused when sent again", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const state = `${dir.path}/state.db`;
  const yaml = boundConfig(dir.path, state, base);
  await writePrivate(`${dir.path}/c.yaml`, yaml);
  const sources = Array.from({ length: 120 }, (_, i) => `127.0.3.${i + 1}`);
  const codes = new Map<string, readonly Knock[]>();
  for (const s of sources) codes.set(s, await codeFor(yaml, s));
  const opened = () =>
    [...Deno.readDirSync(dir.path)].filter((e) => e.name.startsWith("opened-")).map((e) =>
      e.name.slice(7)
    );
  {
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
    await p.waitForLog(/listening on/);
    // The burst: every source knocks at once; SIGKILL once some doors have opened.
    const burst = Promise.all(
      sources.map((s) => knockAll("127.0.0.1", codes.get(s)!, { localAddress: s, gap: 5 })),
    );
    assert(await eventually(() => opened().length >= 10, 5000), "doors opened");
    p.kill("SIGKILL");
    await p.child.status;
    await burst;
  }
  await sleep(500); // a command the worker started just before the kill may still finish
  const ran = opened();
  const inStore = new Set(readStore(state).open.map((r) => r.source));
  for (const source of ran) assert(inStore.has(source), `${source} opened but is not in the store`);
  // Restart: each of those codes, sent again from the same source, is a replay. (The start
  // also runs the open commands not known to have run; those are no replay, and their log
  // lines say so.)
  await using again = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await again.waitForLog(/listening on/);
  const sample = ran.slice(0, 5);
  for (const s of sample) await knockAll("127.0.0.1", codes.get(s)!, { localAddress: s });
  for (const s of sample) {
    await again.waitForLog(
      new RegExp(`knock failed from ${s.replaceAll(".", "\\.")} on door \\S+: reason=replay`),
    );
  }
  await sleep(200); // a child daemon: time for an open that must not come
  const reopened = [...again.log().matchAll(/door \S+ opened for (\S+) until \S+$/gm)].map((m) =>
    m[1]
  );
  assertEquals(reopened.filter((s) => sample.includes(s)), [], "no replayed code opened");
});

Deno.test("store: a full filesystem refuses the open (no open, no close, logged once), and opening works again when space returns", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  const stateDir = `${dir.path}/state`;
  await Deno.mkdir(stateDir);
  await writePrivate(
    `${dir.path}/c.yaml`,
    staticConfig(dir.path, `${stateDir}/state.db`, base),
  );
  // The daemon runs in a mount namespace of its own where stateDir is a 256 KiB tmpfs.
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`], [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "/bin/sh",
    "-c",
    'mount -t tmpfs -o size=256k,mode=0700 tmpfs "$0" && exec "$@"',
    stateDir,
  ]);
  await p.waitForLog(/listening on/);
  const inside = (...argv: string[]) =>
    new Deno.Command("nsenter", {
      args: ["-t", String(p.child.pid), "-m", ...argv],
      stdout: "null",
      stderr: "null",
    }).output();
  await inside("/bin/dd", "if=/dev/zero", `of=${stateDir}/filler`, "bs=4k");

  await knockAll("127.0.0.1", seq(base), { localAddress: "127.0.0.2" });
  await p.waitForLog(/state not written .*not opening "?door 127\.0\.0\.2/);
  await sleep(1500); // past 'for': a close scheduled by mistake would have run
  assertEquals(await exists(`${dir.path}/opened-127.0.0.2`), false, "the door did not open");
  assertEquals(await exists(`${dir.path}/closed-127.0.0.2`), false, "no close ran");
  assertEquals(p.log().match(/state not written/g)?.length, 1, "logged once");
  assert(!/door door (opened|closed) for 127\.0\.0\.2/.test(p.log()));

  await inside("/bin/rm", `${stateDir}/filler`);
  await knockAll("127.0.0.1", seq(base), { localAddress: "127.0.0.3" });
  assert(await eventually(() => exists(`${dir.path}/opened-127.0.0.3`)), "opens again");

  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
});

Deno.test("store: a state directory on a read-only filesystem refuses the start with a clear error", async () => {
  await using dir = await tempDir();
  const stateDir = `${dir.path}/state`;
  await Deno.mkdir(stateDir);
  await writePrivate(`${dir.path}/c.yaml`, staticConfig(dir.path, `${stateDir}/state.db`, 20000));
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`], [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "/bin/sh",
    "-c",
    'mount -t tmpfs -o ro,size=64k tmpfs "$0" && exec "$@"',
    stateDir,
  ]);
  assertEquals((await p.child.status).code, 1);
  assertStringIncludes(p.log(), `cannot open the state at ${stateDir}/state.db`);
  assertStringIncludes(p.log(), "Read-only file system");
  assert(!p.log().includes("internal error"), p.log());
});

Deno.test("store: another process reads one consistent snapshot while the daemon commits opens", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const state = `${dir.path}/state.db`;
  const yaml = boundConfig(dir.path, state, base);
  await writePrivate(`${dir.path}/c.yaml`, yaml);
  const sources = Array.from({ length: 150 }, (_, i) => `127.0.4.${i + 1}`);
  const codes = new Map<string, readonly Knock[]>();
  for (const s of sources) codes.set(s, await codeFor(yaml, s));
  // Many rows of a door no longer configured make each read long enough that a commit
  // would land between its two queries, were they not one read transaction.
  const seed = new SqliteStore(state);
  await seed.load();
  await seed.commit({
    used: Array.from({ length: 60_000 }, (_, i) => ({ door: `gone${i}`, secret: "f", counter: i })),
  });
  seed.close();
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await p.waitForLog(/listening on/);
  const reader = spawnScript("tests/_store_reader.ts", [state, "4"]);
  await sleep(300);
  for (let i = 0; i < sources.length; i += 30) {
    await Promise.all(
      sources.slice(i, i + 30).map((s) =>
        knockAll("127.0.0.1", codes.get(s)!, { localAddress: s, gap: 30 })
      ),
    );
  }
  const out = await reader.output();
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(result.torn, 0, JSON.stringify(result));
  assert(result.reads > 20 && result.maxOpen > 50, JSON.stringify(result));
  assertEquals(readStore(state).open.length, 150, p.log());
  p.kill("SIGTERM");
  await p.child.status;
});

Deno.test("store: a deleted store is lost state: the current codes are refused, and the log says why", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const state = `${dir.path}/state.db`;
  const yaml = boundConfig(dir.path, state, base);
  await writePrivate(`${dir.path}/c.yaml`, yaml);
  {
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
    await p.waitForLog(/first start/);
    p.kill("SIGTERM");
    await p.child.status;
  }
  await Deno.remove(state);
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await p.waitForLog(/listening on/);
  assertStringIncludes(p.log(), "was lost (");
  const code = await codeFor(yaml, "127.0.0.2");
  await knockAll("127.0.0.1", code, { localAddress: "127.0.0.2" });
  await p.waitForLog(/knock failed from 127\.0\.0\.2 on door \S+: reason=replay/);
  assertEquals(await exists(`${dir.path}/opened-127.0.0.2`), false);
});

Deno.test("store: SIGKILL the instant an open action starts; after the restart the code is refused from another source", async () => {
  await using dir = await tempDir();
  const base = randomBase(20);
  const state = `${dir.path}/state.db`;
  const yaml = `listen: { addresses: ["127.0.0.1"] }
state_file: ${state}
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 19}"
    length: 3
    period: 1h
    open: { for: 60s, command: ["/usr/bin/touch", "${dir.path}/opening-{ip}"] }
`;
  await writePrivate(`${dir.path}/c.yaml`, yaml);
  const code = await codeFor(yaml, "127.0.0.2");
  {
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
    await p.waitForLog(/listening on/);
    await knockAll("127.0.0.1", code, { localAddress: "127.0.0.2" });
    assert(await eventually(() => exists(`${dir.path}/opening-127.0.0.2`), 3000), "the action ran");
    p.kill("SIGKILL");
    await p.child.status;
  }
  await using again = spawnListen(["-c", `${dir.path}/c.yaml`]);
  await again.waitForLog(/listening on/);
  await knockAll("127.0.0.1", code, { localAddress: "127.0.0.3" });
  await again.waitForLog(/knock failed from 127\.0\.0\.3 on door \S+: reason=replay/);
  assertEquals(await exists(`${dir.path}/opening-127.0.0.3`), false);
});

Deno.test("status: the doors open for whom until when, read while the daemon runs and after it stopped", async () => {
  await using dir = await tempDir();
  const base = randomBase(10);
  const state = `${dir.path}/state.db`;
  const file = `${dir.path}/c.yaml`;
  await writePrivate(file, staticConfig(dir.path, state, base).replace("for: 1s", "for: 60s"));
  await using p = spawnListen(["-c", file]);
  await p.waitForLog(/listening on/);
  await knockAll("127.0.0.1", seq(base), { localAddress: "127.0.0.2" });
  await p.waitForLog(/door door opened for 127\.0\.0\.2/);
  const read = async () => {
    const out = await runCli(["status", "-c", file, "--json"]);
    assertEquals(out.code, 0, out.stderr);
    return JSON.parse(out.stdout);
  };
  const running = await read();
  assertEquals(running.daemon?.pid, p.child.pid, "read through the running daemon");
  assertEquals(running.doors[0].open.map((o: { source: string }) => o.source), ["127.0.0.2"]);
  assert(running.doors[0].open[0].closes_in_s > 50);
  assertEquals(running.doors[0].open[0].close_command, [
    "/usr/bin/touch",
    `${dir.path}/closed-127.0.0.2`,
  ]);
  p.kill("SIGTERM"); // a command door is closed when sesame stops
  await p.child.status;
  const stopped = await read();
  assertEquals(stopped.daemon, null);
  assertEquals(stopped.doors[0].open, []);
  const text = await runCli(["status", "-c", file]);
  assertStringIncludes(text.stdout, `daemon: none with this config here (read from ${state})`);
  assertStringIncludes(text.stdout, "\ndoor  -");
});
