/**
 * `sesame page` in real browsers: headless Chromium and Firefox ESR from Debian, run in a
 * network namespace this test creates with loopback only (the browsers can reach nothing
 * else), beside a real `sesame listen`. The page's derivation passes docs/SEQUENCE.md's
 * test vectors inside each browser; a page with an embedded secret opened with #knock
 * opens a rotating door for the browser's address, a second knock in the same period
 * opens again, and a static door opens; doors a browser cannot knock are refused.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { DENO_RUN, ROOT, runCli, tempDir, writePrivate } from "./_cli.ts";
import { eventually } from "./_process.ts";

const hasBrowsers = await Promise.all(
  ["/usr/bin/chromium-headless-shell", "/usr/bin/firefox-esr"].map((p) =>
    Deno.stat(p).then(() => true, () => false)
  ),
).then((found) => found.every(Boolean));
const ignore = !Deno.env.get("CI") && (Deno.uid() !== 0 || !hasBrowsers);
const BROWSERS = ["chromium", "firefox"] as const;
const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

async function sh(...argv: string[]): Promise<void> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stderr: "piped" }).output();
  if (!out.success) throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A namespace with loopback only, removed with every process in it. */
async function loopbackOnly(): Promise<{ name: string } & AsyncDisposable> {
  const name = `sesame-page-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
  await sh("ip", "netns", "add", name);
  await sh("ip", "-n", name, "link", "set", "lo", "up");
  return {
    name,
    async [Symbol.asyncDispose]() {
      const pids = new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["netns", "pids", name], stdout: "piped" }).output())
          .stdout,
      ).split("\n").filter(Boolean);
      for (const pid of pids) await sh("kill", "-9", pid).catch(() => {});
      await sh("ip", "netns", "delete", name).catch(() => {});
    },
  };
}

/** Opens `url` in `browser` inside `ns`; returns what `expression` evaluated to. */
async function inBrowser(
  ns: string,
  browser: string,
  url: string,
  expression: string,
  timeoutMs = 20_000,
  screenshot?: string,
): Promise<unknown> {
  const out = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "run",
      "-q",
      "-A",
      `${ROOT}tests/_browser_driver.ts`,
      browser,
      url,
      expression,
      String(timeoutMs),
      ...(screenshot ? [screenshot] : []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(text.split("\n").pop()!);
}

const VECTORS = [
  {
    door: "ssh",
    counter: "0",
    from: [20000, 20999],
    length: 4,
    mode: "tcp",
    source: null,
    prefixes: null,
    want: "20512/tcp 20309/tcp 20652/tcp 20059/tcp",
  },
  {
    door: "ssh",
    counter: "1",
    from: [7000, 7004],
    length: 5,
    mode: "mixed",
    source: null,
    prefixes: null,
    want: "7003/tcp 7000/tcp 7001/udp 7004/tcp 7002/tcp",
  },
  {
    door: "vpn",
    counter: "18446744073709551615",
    from: [1, 3],
    length: 2,
    mode: "udp",
    source: null,
    prefixes: null,
    want: "3/udp 1/udp",
  },
  {
    door: "ssh",
    counter: "56666666",
    from: [20000, 20999],
    length: 4,
    mode: "tcp",
    source: "192.0.2.7",
    prefixes: { ipv4: 24, ipv6: 64 },
    want: "20999/tcp 20339/tcp 20316/tcp 20609/tcp",
  },
  {
    door: "ssh",
    counter: "56666666",
    from: [20000, 20999],
    length: 4,
    mode: "tcp",
    source: "2001:db8::1",
    prefixes: { ipv4: 32, ipv6: 64 },
    want: "20438/tcp 20904/tcp 20661/tcp 20953/tcp",
  },
];

Deno.test({
  name:
    "page: the derivation in Chromium and Firefox passes docs/SEQUENCE.md's test vectors (2^64−1 and bind_source too)",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using ns = await loopbackOnly();
    await writePrivate(
      `${dir.path}/c.yaml`,
      `doors:\n  ssh: { secret: "${SECRET}", ports: "30000-30099" }\n`,
    );
    const made = await runCli([
      "page",
      "127.0.0.1",
      "-c",
      `${dir.path}/c.yaml`,
      "--door",
      "ssh",
      "-o",
      `${dir.path}/p.html`,
    ]);
    assertEquals(made.code, 0, made.stderr);
    const expression = `window.sesameSequence ? Promise.all(${JSON.stringify(VECTORS)}.map((v) =>
      window.sesameSequence("${SECRET}", v.door, v.counter,
        Array.from({ length: v.from[1] - v.from[0] + 1 }, (_, i) => v.from[0] + i),
        v.length, v.mode, v.source, v.prefixes)
        .then((ks) => ks.map((k) => k.port + "/" + k.protocol).join(" ")))) : null`;
    for (const browser of BROWSERS) {
      const got = await inBrowser(ns.name, browser, `file://${dir.path}/p.html`, expression);
      assertEquals(got, VECTORS.map((v) => v.want), browser);
    }
  },
});

Deno.test({
  name:
    "page: in each browser, #knock opens a rotating door for the browser's address, a second knock in the period opens again, a static door opens",
  ignore,
  async fn() {
    await using dir = await tempDir();
    await using ns = await loopbackOnly();
    const open = (door: string) =>
      `command: ["/usr/bin/touch", "${dir.path}/open-${door}-{ip}"], close_command: ["/usr/bin/rm", "-f", "${dir.path}/open-${door}-{ip}"]`;
    await writePrivate(
      `${dir.path}/server.yaml`,
      `listen: { addresses: ["127.0.0.1"] }
doors:
  chromium:
    secret: "${SECRET}"
    ports: "30000-30099"
    length: 4
    period: 1h
    skew: 2
    open: { for: 1s, ${open("chromium")} }
  firefox:
    secret: "${SECRET}"
    ports: "30100-30199"
    length: 4
    period: 1h
    skew: 2
    open: { for: 1s, ${open("firefox")} }
  old:
    sequence: [31000, 31005, 31002]
    decoys: 0
    open: { for: 1s, ${open("old")} }
`,
    );
    await writePrivate(
      `${dir.path}/client.yaml`,
      `doors:\n  chromium: { secret: "${SECRET}", ports: "30000-30099", length: 4, period: 1h, skew: 2 }\n  firefox: { secret: "${SECRET}", ports: "30100-30199", length: 4, period: 1h, skew: 2 }\n  old: { sequence: [31000, 31005, 31002] }\n`,
    );
    const listen = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns.name,
        Deno.execPath(),
        ...DENO_RUN,
        `${ROOT}cli.ts`,
        "listen",
        "-c",
        `${dir.path}/server.yaml`,
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    (async () => {
      for await (const chunk of listen.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
    })().catch(() => {});
    try {
      assert(await eventually(() => log.includes("listening on"), 15_000), log);
      // A door per browser: each browser is a client of its own (its own counter memory).
      for (const door of ["chromium", "firefox", "old"]) {
        const made = await runCli([
          "page",
          "127.0.0.1",
          "-c",
          `${dir.path}/client.yaml`,
          "--door",
          door,
          "--embed-secret",
          "-o",
          `${dir.path}/${door}.html`,
        ]);
        assertEquals(made.code, 0, made.stderr);
        assertStringIncludes(made.stderr, "holds door");
        assertEquals((await Deno.stat(`${dir.path}/${door}.html`)).mode! & 0o777, 0o600);
      }
      const opens = (door: string) =>
        log.split("\n").filter((l) => l.includes(`door ${door} opened for 127.0.0.1`)).length;
      // Knock, wait for the page to finish; then knock again with its button.
      const twice = `(async () => {
        const wait = async (f) => { for (let i = 0; i < 100; i++) { const v = f(); if (v) return v; await new Promise((r) => setTimeout(r, 100)); } return null; };
        const first = await wait(() => document.body && document.body.dataset.knocked);
        if (!first) return null;
        await new Promise((r) => setTimeout(r, 1500)); // the door (for: 1s) closes
        delete document.body.dataset.knocked;
        document.getElementById("knock").click();
        const second = await wait(() => document.body.dataset.knocked);
        return [first, second];
      })()`;
      for (const browser of BROWSERS) {
        const before = opens(browser);
        const counters = await inBrowser(
          ns.name,
          browser,
          `file://${dir.path}/${browser}.html#knock`,
          twice,
          30_000,
        ) as string[];
        assert(Array.isArray(counters), `${browser}: ${counters}\n${log}`);
        assert(
          Number(counters[1]) > Number(counters[0]),
          `${browser} takes the next counter: ${counters}`,
        );
        assert(
          await eventually(() => opens(browser) >= before + 2, 5000),
          `${browser} opened twice:\n${log}`,
        );
        assert(!log.includes("opened for 127.0.0.2"), log);
        const beforeStatic = opens("old");
        await inBrowser(
          ns.name,
          browser,
          `file://${dir.path}/old.html#knock`,
          "document.body && document.body.dataset.knocked",
          20_000,
        );
        assert(
          await eventually(() => opens("old") > beforeStatic, 5000),
          `${browser} static:\n${log}`,
        );
        await new Promise((r) => setTimeout(r, 1200)); // both doors closed before the next browser
      }
      assert(
        !/reason=(wrong|replay)/.test(log),
        `a browser's extra connections broke nothing:\n${log}`,
      );
    } finally {
      listen.kill("SIGTERM");
      await listen.status;
    }
  },
});

Deno.test("page: doors a browser cannot knock are refused with the reason; a low pool is warned about", async () => {
  await using dir = await tempDir();
  await writePrivate(
    `${dir.path}/c.yaml`,
    `doors:
  udp: { secret: "${SECRET}", ports: "30000-30099", protocol: udp }
  bad: { secret: "${SECRET}", ports: "5990-6010" }
  low: { secret: "${SECRET}", ports: "7000-7099" }
`,
  );
  const page = (door: string) =>
    runCli([
      "page",
      "192.0.2.10",
      "-c",
      `${dir.path}/c.yaml`,
      "--door",
      door,
      "-o",
      `${dir.path}/${door}.html`,
    ]);
  const udp = await page("udp");
  assertEquals(udp.code, 2);
  assertStringIncludes(udp.stderr, "a browser sends no UDP");
  const bad = await page("bad");
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.stderr, "6000, which browsers refuse to connect to");
  const low = await page("low");
  assertEquals(low.code, 0, low.stderr);
  assertStringIncludes(low.stderr, "warning: door low has ports at or below 10080");
  const ssh = await runCli([
    "page",
    "192.0.2.10",
    "-c",
    `${dir.path}/c.yaml`,
    "--door",
    "low",
    "--wait-open",
    "http://192.0.2.10:22/",
    "-o",
    `${dir.path}/x.html`,
  ]);
  assertEquals(ssh.code, 2);
  assertStringIncludes(ssh.stderr, "browsers refuse port 22");
});

Deno.test("page: HOST must be a host name or an IPv4 address (it goes into the CSP); an IPv6 literal is refused with the reason", async () => {
  await using dir = await tempDir();
  await writePrivate(
    `${dir.path}/c.yaml`,
    `doors:\n  ssh: { secret: "${SECRET}", ports: "30000-30099" }\n`,
  );
  for (
    const [host, message] of [
      [
        `h.example"><meta http-equiv="refresh" content="0;url=https://evil.example/`,
        "is not a host name",
      ],
      ["*", "is not a host name"],
      ["::1", "cannot name an IPv6 address"],
      ["[2001:db8::1]", "cannot name an IPv6 address"],
    ]
  ) {
    const out = await runCli([
      "page",
      host,
      "-c",
      `${dir.path}/c.yaml`,
      "--door",
      "ssh",
      "-o",
      `${dir.path}/p.html`,
    ]);
    assertEquals(out.code, 2, host);
    assertStringIncludes(out.stderr, message);
  }
  assertEquals(await Deno.stat(`${dir.path}/p.html`).then(() => true, () => false), false);
});
