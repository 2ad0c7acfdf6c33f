import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { DENO_RUN, freshClientState, ROOT, runCli, tempDir, writePrivate } from "./_cli.ts";
import { randomBase, SECRET_B64 } from "./_daemon.ts";
import { eventually, exists, spawnListen } from "./_process.ts";

function serverConfig(dir: string, base: number) {
  return `listen: { addresses: ["::"] }
state_file: ${dir}/state.json
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 99}"
    length: 4
    protocol: mixed
    period: 30s
    open: { for: 10s, command: ["/usr/bin/touch", "${dir}/open-{door}-{ip}"] }
  near:
    secret: "${SECRET_B64}"
    ports: "${base + 100}-${base + 199}"
    bind_source: true
    open: { for: 10s, command: ["/usr/bin/touch", "${dir}/open-{door}-{ip}"] }
`;
}

/** The client's config: the same doors without "open". */
function clientConfig(base: number, secret = SECRET_B64) {
  return `doors:
  ssh: { secret: "${secret}", ports: "${base}-${base + 99}", length: 4, protocol: mixed }
  near: { secret: "${secret}", ports: "${base + 100}-${base + 199}", bind_source: true }
`;
}

Deno.test("sesame knock opens rotating and bind_source doors of sesame listen, over IPv4 and IPv6", async () => {
  await using dir = await tempDir();
  const base = randomBase(200);
  await writePrivate(`${dir.path}/server.yaml`, serverConfig(dir.path, base));
  await writePrivate(`${dir.path}/client.yaml`, clientConfig(base));
  await using p = spawnListen(["-c", `${dir.path}/server.yaml`]);
  await p.waitForLog(/listening on/);

  const r = await runCli([
    "knock",
    "127.0.0.1",
    "-c",
    `${dir.path}/client.yaml`,
    "--door",
    "ssh",
    "--source",
    "127.0.0.2",
    "--json",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assertEquals([json.host, json.door, json.knocks.length, json.opened], [
    "127.0.0.1",
    "ssh",
    4,
    null,
  ]);
  assert(
    await eventually(() => exists(`${dir.path}/open-ssh-127.0.0.2`)),
    "the rotating door opened",
  );

  // bind_source: the client derives the code for its own address (the one it knocks from).
  const v6 = await runCli(["knock", "::1", "-c", `${dir.path}/client.yaml`, "--door", "near"]);
  assertEquals(v6.code, 0, v6.stderr);
  assert(
    await eventually(() => exists(`${dir.path}/open-near-::1`)),
    "the bound door opened for ::1",
  );
  // A code for another address, sent from 127.0.0.4, opens nothing.
  const other = await runCli([
    "knock",
    "127.0.0.1",
    "-c",
    `${dir.path}/client.yaml`,
    "--door",
    "near",
    "--source",
    "127.0.0.4",
    "--from",
    "127.0.0.5",
  ]);
  assertEquals(other.code, 0);
  await new Promise((r) => setTimeout(r, 300)); // a child daemon: time for an open that must not come
  assertEquals(await exists(`${dir.path}/open-near-127.0.0.4`), false);
});

Deno.test("sesame knock --wait-open exits 0 only when the port opens; --exec passes the exit code on", async () => {
  await using dir = await tempDir();
  const base = randomBase(200);
  await writePrivate(`${dir.path}/server.yaml`, serverConfig(dir.path, base));
  await writePrivate(`${dir.path}/client.yaml`, clientConfig(base));
  await writePrivate(`${dir.path}/wrong.yaml`, clientConfig(base, "B".repeat(43)));
  await using p = spawnListen(["-c", `${dir.path}/server.yaml`]);
  await p.waitForLog(/listening on/);
  // The "protected service": starts listening once the door's file appears.
  const service = base + 250;
  let server: Deno.TcpListener | undefined;
  const watch = (async () => {
    if (await eventually(() => exists(`${dir.path}/open-ssh-127.0.0.2`), 5000)) {
      server = Deno.listen({ hostname: "127.0.0.1", port: service });
      for await (const c of server) c.close();
    }
  })();
  try {
    const wrong = await runCli([
      "knock",
      "127.0.0.1",
      "-c",
      `${dir.path}/wrong.yaml`,
      "--door",
      "ssh",
      "--source",
      "127.0.0.3",
      "--wait-open",
      String(service),
      "--wait-timeout",
      "1",
    ]);
    assertEquals(wrong.code, 1, "a wrong secret: the door stays shut and --wait-open says so");
    const right = await runCli([
      "knock",
      "127.0.0.1",
      "-c",
      `${dir.path}/client.yaml`,
      "--door",
      "ssh",
      "--source",
      "127.0.0.2",
      "--wait-open",
      String(service),
      "--wait-timeout",
      "5",
      "--exec",
      "--",
      "/bin/sh",
      "-c",
      "exit 7",
    ]);
    assertEquals(right.code, 7, right.stderr);
  } finally {
    server?.close();
    await watch;
  }
});

Deno.test("sesame knock gives clear errors", async () => {
  await using dir = await tempDir();
  await writePrivate(`${dir.path}/client.yaml`, clientConfig(20000));
  const noDoor = await runCli([
    "knock",
    "127.0.0.1",
    "-c",
    `${dir.path}/client.yaml`,
    "--door",
    "vpn",
  ]);
  assertEquals(noDoor.code, 2);
  assertStringIncludes(noDoor.stderr, 'no door "vpn"');
  const badPort = await runCli(["knock", "127.0.0.1", "7000", "70000"]);
  assertEquals(badPort.code, 2);
  assertStringIncludes(badPort.stderr, '"70000" is not a knock');
  const both = await runCli(["knock", "127.0.0.1", "7000", "-c", `${dir.path}/client.yaml`]);
  assertEquals(both.code, 2);
  const family = await runCli(["knock", "-6", "127.0.0.1", "7000"]);
  assertEquals(family.code, 2);
  assertStringIncludes(family.stderr, "is not an IPv6 address");
  const missing = await runCli([
    "knock",
    "127.0.0.1",
    "-c",
    `${dir.path}/none.yaml`,
    "--door",
    "ssh",
  ]);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.stderr, "cannot read config file");
  const nothing = await runCli(["knock"]);
  assertEquals(nothing.code, 2);
  assertStringIncludes(nothing.stderr, "give a HOST");
});

Deno.test({
  name:
    "sesame knock: an unresolvable host is a clear error (resolved in a namespace with no route out)",
  ignore: !Deno.env.get("CI") && Deno.uid() !== 0,
  async fn() {
    const { Lab } = await import("./_netns.ts");
    await using lab = await Lab.create();
    // The lab's namespaces reach nothing outside themselves: a DNS query cannot leave.
    const out = await lab.exec(
      "bystander",
      lab.deno("cli.ts", "knock", "no-such-host.invalid", "7000"),
    );
    assertEquals(out.code, 2);
    assertStringIncludes(
      new TextDecoder().decode(out.stderr),
      'cannot resolve "no-such-host.invalid"',
    );
  },
});

Deno.test("sesame knock: re-knocks in one period take the next counter, also at another address of the server, both open; with none left in the window it waits and says so", async () => {
  await using dir = await tempDir();
  const base = randomBase(100);
  await writePrivate(
    `${dir.path}/server.yaml`,
    `listen: { addresses: ["127.0.0.1", "127.0.0.3"] }
state_file: ${dir.path}/state.db
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 99}"
    length: 3
    period: 4s
    open:
      for: 1s
      command: ["/usr/bin/touch", "${dir.path}/open-{ip}"]
      close_command: ["/usr/bin/rm", "-f", "${dir.path}/open-{ip}"]
`,
  );
  await writePrivate(
    `${dir.path}/client.yaml`,
    `doors:\n  ssh: { secret: "${SECRET_B64}", ports: "${base}-${
      base + 99
    }", length: 3, period: 4s }\n`,
  );
  await using p = spawnListen(["-c", `${dir.path}/server.yaml`]);
  await p.waitForLog(/listening on/);
  const env = { XDG_STATE_HOME: `${dir.path}/client-state` }; // one client, one memory
  // One server, two addresses (as IPv4 and IPv6 would be): a code used at one is used at both.
  const knock = (at = "127.0.0.1") =>
    runCli([
      "knock",
      at,
      "-c",
      `${dir.path}/client.yaml`,
      "--door",
      "ssh",
      "--json",
      "--source",
      "127.0.0.2",
    ], { env });
  const counters: number[] = [];
  for (let i = 0; i < 2; i++) {
    const out = await knock(i === 0 ? "127.0.0.1" : "127.0.0.3");
    assertEquals(out.code, 0, out.stderr);
    counters.push(JSON.parse(out.stdout).counter);
    assert(await eventually(() => exists(`${dir.path}/open-127.0.0.2`)), `knock ${i + 1} opened`);
    assert(await eventually(async () => !(await exists(`${dir.path}/open-127.0.0.2`)), 3000));
  }
  assert(counters[1] > counters[0], `counters ${counters}`);
  // Keep knocking: once the counters of the window are used up, the client waits.
  let waited = "";
  for (let i = 0; i < 3 && !waited; i++) {
    const out = await knock();
    assertEquals(out.code, 0, out.stderr);
    if (out.stderr.includes("waiting")) waited = out.stderr;
    counters.push(JSON.parse(out.stdout).counter);
  }
  assertStringIncludes(waited, "were used by earlier knocks: waiting");
  assertEquals([...counters].sort((a, b) => a - b), counters, "never the same counter twice");
  assertEquals(new Set(counters).size, counters.length);
  assertEquals(/already used code/.test(p.log()), false, p.log());
});

Deno.test("sesame knock --wait-open: a port already open is reported as such, and nothing is knocked", async () => {
  using service = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of service) conn.close();
  })().catch(() => {});
  const out = await runCli([
    "knock",
    "127.0.0.1",
    "7000",
    "7001",
    "--wait-open",
    String(service.addr.port),
    "--json",
  ]);
  assertEquals(out.code, 0, out.stderr);
  const result = JSON.parse(out.stdout);
  assertEquals([result.already_open, result.opened, result.knocks], [true, true, []]);
  service.close();
  await accepting;
});

Deno.test("sesame knock --wait-open: a door that does not open says so on stderr, terminal or not", async () => {
  const out = await runCli([
    "knock",
    "127.0.0.1",
    "7000",
    "-d",
    "0",
    "--wait-open",
    "9",
    "--wait-timeout",
    "1",
  ]);
  assertEquals(out.code, 1);
  assertStringIncludes(out.stderr, "knock: port 9 did not open within 1 s");
});

Deno.test("sesame knock: a damaged or hostile counter memory is forgotten, never a crash or an endless wait", async () => {
  const { readKnockMemory, nextCounter } = await import("../lib/net/knock_memory.ts");
  await using dir = await tempDir();
  const path = `${dir.path}/knocks.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({ a: "abc", b: { x: 1 }, c: 4503599627370496, d: -3, e: 1.5, ok: 1000 }),
  );
  assertEquals(await readKnockMemory(path), { c: 4503599627370496, ok: 1000 });
  const door = { periodMs: 30_000, skew: 1 };
  const now = 1000 * 30_000 + 5000;
  assertEquals(nextCounter(door, now, 1000, 4503599627370496), { counter: 1000, wait: 0 });
  await Deno.writeTextFile(path, "not json");
  assertEquals(await readKnockMemory(path), {});
  const out = await runCli(["knock", "127.0.0.1", "7000", "-d", "0"], {
    env: { XDG_STATE_HOME: dir.path },
  });
  assertEquals(out.code, 0, out.stderr);
});

Deno.test("sesame knock says what it did in one line; -q says nothing; on a terminal --wait-open shows it is waiting", async () => {
  const base = randomBase(2);
  const plain = await runCli(["knock", "127.0.0.1", String(base), `${base + 1}:udp`, "-d", "0"]);
  assertEquals(plain.code, 0, plain.stderr);
  assertEquals(plain.stdout, "");
  const lines = plain.stderr.trim().split("\n");
  assertEquals(lines.length, 1, plain.stderr);
  assert(
    /^knocked a static sequence on 127\.0\.0\.1: 2 TCP\+UDP knocks sent; --wait-open PORT shows whether the door opened$/
      .test(lines[0]),
    lines[0],
  );
  const quiet = await runCli(["knock", "127.0.0.1", String(base), "-d", "0", "-q"]);
  assertEquals([quiet.code, quiet.stdout, quiet.stderr], [0, "", ""]);

  // A terminal (util-linux script gives the command a pseudo-terminal).
  const command = [Deno.execPath(), ...DENO_RUN, `${ROOT}cli.ts`, "knock", "127.0.0.1"]
    .concat([String(base), "-d", "0", "--wait-open", "9", "--wait-timeout", "2"])
    .map((a) => `'${a}'`).join(" ");
  const tty = await new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    stdout: "piped",
    stderr: "piped",
    env: { XDG_STATE_HOME: freshClientState() },
  }).output();
  const screen = new TextDecoder().decode(tty.stdout);
  assertEquals(tty.code, 1, screen);
  assertStringIncludes(screen, "waiting for 127.0.0.1:9 to open… 0 s");
  assertStringIncludes(screen, "\r\x1b[K");
  assertStringIncludes(screen, "knock: port 9 did not open within 2 s");
});
