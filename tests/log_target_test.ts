/**
 * `listen.log`: a real `sesame listen` logging to a file (reopened on SIGUSR1, as after
 * logrotate) and to syslog (through `logger`, to a socket this test serves), in text and
 * JSON, with the shipped fail2ban filter run by the real fail2ban-regex on what arrived.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { runCli, tempDir, writePrivate } from "./_cli.ts";
import { knockAll, randomBase } from "./_daemon.ts";
import { fail2banMatches } from "./_fail2ban.ts";
import { eventually, spawnListen } from "./_process.ts";
import { parseConfig } from "../lib/config/load.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

const config = (base: number, log: string) =>
  `listen: { addresses: ["127.0.0.1"], log: ${log} }
doors:
  ssh:
    secret: "${SECRET}"
    ports: "${base}-${base + 39}"
    length: 4
    open: { for: 5s, command: ["/bin/true"] }
`;

/**
 * TCP knocks from `source` on pool ports that belong to no code of the window (nor one
 * period either side): a refusal with reason=wrong, whatever the time.
 */
async function wrongKnocks(base: number, source: string) {
  const door = userDoors(parseConfig(config(base, "{ target: stderr }"), "c.yaml").doors)[0];
  const now = Math.floor(Date.now() / 30_000);
  const taken = new Set<number>();
  for (let c = now - 3; c <= now + 3; c++) {
    for (const k of (await codeForCounter(door, c)).knocks) taken.add(k.port);
  }
  const ports = [...Array(40).keys()].map((i) => base + i).filter((p) => !taken.has(p)).slice(0, 4);
  await knockAll("127.0.0.1", ports.map((port) => ({ port, protocol: "tcp" })), {
    localAddress: source,
  });
}

const failed = (source: string) => `knock failed from ${source} on door ssh: reason=wrong`;

async function read(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

Deno.test("listen.log target file: lines go to the file, SIGUSR1 reopens it after a rotation, fail2ban's filter matches both files", async () => {
  await using dir = await tempDir();
  const base = randomBase(40);
  const file = `${dir.path}/sesame.log`;
  await writePrivate(
    `${dir.path}/c.yaml`,
    config(base, `{ target: file, path: "${file}" }`),
  );
  await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
  assert(await eventually(async () => /listening on \d+ sockets/.test(await read(file)), 10_000));
  assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);

  await wrongKnocks(base, "127.0.0.2");
  assert(await eventually(async () => (await read(file)).includes(failed("127.0.0.2"))));
  await Deno.rename(file, `${file}.1`); // what logrotate does
  p.kill("SIGUSR1");
  // The reopen creates the file: knock once it is there (a source's failure line is
  // written once a minute, so a knock before the reopen would not show again).
  assert(await eventually(() => Deno.stat(file).then(() => true, () => false), 5000));
  await wrongKnocks(base, "127.0.0.3");
  assert(
    await eventually(async () => (await read(file)).includes(failed("127.0.0.3")), 5000),
    "after SIGUSR1 the new file gets the lines",
  );
  assert(!(await read(`${file}.1`)).includes(failed("127.0.0.3")));
  assertEquals(await fail2banMatches(`${file}.1`), ["127.0.0.2"]);
  assertEquals(await fail2banMatches(file), ["127.0.0.3"]);
  assert(!p.log().includes(failed("127.0.0.2")), "nothing went to stderr");
  p.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
});

Deno.test("listen.log target syslog, text and JSON: priority daemon.info, tag and PID; the filter matches the syslog file; JSON messages hold no quoted values", async () => {
  for (const format of ["text", "json"] as const) {
    await using dir = await tempDir();
    const base = randomBase(40);
    const socket = `${dir.path}/log.sock`;
    const syslog = Deno.listenDatagram({ transport: "unixpacket", path: socket });
    const received: string[] = [];
    const reading = (async () => {
      try {
        for await (const [data] of syslog) received.push(new TextDecoder().decode(data));
      } catch { /* closed */ }
    })();
    await writePrivate(
      `${dir.path}/c.yaml`,
      config(base, `{ target: syslog, socket: "${socket}", format: ${format} }`),
    );
    await using p = spawnListen(["-c", `${dir.path}/c.yaml`]);
    assert(
      await eventually(() => received.some((m) => /listening on \d+ sockets/.test(m)), 10_000),
      `${format}: nothing arrived at the syslog socket; stderr: ${p.log()}`,
    );
    await wrongKnocks(base, "127.0.0.2");
    assert(await eventually(() => received.some((m) => m.includes("127.0.0.2"))));
    const line = received.find((m) => m.includes("127.0.0.2"))!;
    // <30> = facility daemon (3) × 8 + severity info (6); logger's local format.
    assert(/^<30>\w{3} [ \d]\d \d\d:\d\d:\d\d sesame\[\d+\]: /.test(line), line);
    if (format === "json") {
      const body = JSON.parse(line.slice(line.indexOf("]: ") + 3));
      assertEquals(body.source, "127.0.0.2");
      const metrics = received.find((m) => m.includes("listening on"))!;
      assert(!metrics.includes('\\"'), `a value was quoted inside the message: ${metrics}`);
    }
    // As rsyslog writes it to /var/log/syslog: the host name after the time stamp.
    const asFile = received.map((m) => m.replace(/^<\d+>(.{15}) /, "$1 gateway ")).join("\n");
    await Deno.writeTextFile(`${dir.path}/syslog`, asFile + "\n");
    assertEquals(await fail2banMatches(`${dir.path}/syslog`), ["127.0.0.2"], format);
    p.kill("SIGTERM");
    assertEquals((await p.child.status).code, 0);
    syslog.close();
    await reading;
  }
});

Deno.test("listen.log: a log file that cannot be opened is a clean refusal (exit 1, the key named), and check says so first", async () => {
  await using dir = await tempDir();
  const base = randomBase(40);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(
    file,
    config(base, `{ target: file, path: "${dir.path}/missing/sesame.log" }`),
  );
  const check = await runCli(["check", "-c", file]);
  assertEquals(check.code, 1, check.stdout);
  assertStringIncludes(check.stderr, "listen.log.path:");
  await using p = spawnListen(["-c", file]);
  const status = await p.child.status;
  assertEquals(status.code, 1, p.log());
  assertStringIncludes(p.log(), "listen.log.path: cannot open");
  assert(!p.log().includes("internal error"), p.log());
});

Deno.test("listen.log file: a symlink, or a file another user owns, is refused: sesame (root) never writes through one", async () => {
  await using dir = await tempDir();
  const victim = `${dir.path}/victim`;
  await Deno.writeTextFile(victim, "someone's file\n");
  await Deno.symlink(victim, `${dir.path}/sesame.log`);
  const base = randomBase(40);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(file, config(base, `{ target: file, path: "${dir.path}/sesame.log" }`));
  await using p = spawnListen(["-c", file]);
  assertEquals((await p.child.status).code, 1, p.log());
  assertStringIncludes(p.log(), "is not a regular file (a symbolic link)");
  assertEquals(await Deno.readTextFile(victim), "someone's file\n");
  if (Deno.uid() === 0) {
    await Deno.remove(`${dir.path}/sesame.log`);
    await Deno.writeTextFile(`${dir.path}/sesame.log`, "");
    await Deno.chown(`${dir.path}/sesame.log`, 65534, 65534);
    await using q = spawnListen(["-c", file]);
    assertEquals((await q.child.status).code, 1, q.log());
    assertStringIncludes(q.log(), "belongs to another user");
  }
});
