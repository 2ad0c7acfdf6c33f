import { assertEquals, assertMatch, assertStringIncludes } from "./_assert.ts";
import { encodeSecret } from "../lib/secret.ts";
import { referenceSequence } from "./_reference.ts";
import { runCli, tempDir, writePrivate } from "./_cli.ts";

function rand(n: number): number {
  return Math.floor(Math.random() * n);
}

function parseV4(text: string): number[] {
  return text.split(".").map(Number);
}

Deno.test("sesame code --json agrees with an independent implementation on random doors", async () => {
  await using dir = await tempDir();
  const modes = ["tcp", "udp", "mixed"] as const;
  for (let i = 0; i < 12; i++) {
    const secret = crypto.getRandomValues(new Uint8Array(16 + rand(32)));
    const start = 1024 + rand(60000);
    const size = i % 4 === 0 ? 4 + rand(4) : 10 + rand(200); // small pools too: 2+ left after exclusions
    const exclude = [start + rand(size), start + rand(size)];
    const candidates = Array.from({ length: size }, (_, j) => start + j).filter((p) =>
      !exclude.includes(p)
    );
    const length = 1 + rand(Math.min(16, candidates.length));
    const mode = modes[i % 3];
    const periodS = [1, 30, 3600][rand(3)];
    const at = rand(2 ** 32) + (i === 0 ? 2 ** 33 : 0); // past 2106 too
    // bound doors: IPv4, IPv6 and IPv4-mapped sources
    const bound = i % 2 === 1;
    const from = ["192.0.2.77", "2001:db8:1:2:3:4:5:6", "::ffff:198.51.100.9"][i % 3];
    const prefix4 = 8 + rand(25);
    const prefix6 = 16 + rand(113);
    const file = `${dir.path}/c${i}.yaml`;
    await Deno.writeTextFile(
      file,
      [
        "doors:",
        "  door-" + i + ":",
        `    secret: "${encodeSecret(secret)}"`,
        `    ports: "${start}-${start + size - 1}"`,
        `    exclude: [${exclude.join(", ")}]`,
        `    length: ${length}`,
        `    protocol: ${mode}`,
        `    period: ${periodS}`,
        `    bind_source: ${bound}`,
        `    source_prefix: { ipv4: ${prefix4}, ipv6: ${prefix6} }`,
      ].join("\n"),
    );
    const args = ["code", "-c", file, "--door", `door-${i}`, "--at", String(at), "--json"];
    if (bound) args.push("--from", from);
    const result = await runCli(args);
    assertEquals(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout);
    const counter = BigInt(Math.floor(at / periodS));
    let source: { family: 4 | 6; bytes: number[]; prefix: number } | undefined;
    if (bound) {
      source = from === "2001:db8:1:2:3:4:5:6"
        ? {
          family: 6,
          bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6],
          prefix: prefix6,
        }
        : { family: 4, bytes: parseV4(from.replace("::ffff:", "")), prefix: prefix4 };
    }
    const expected = referenceSequence({
      secret,
      door: `door-${i}`,
      counter,
      candidates,
      length,
      mode,
      source,
    });
    assertEquals(Object.keys(json), ["door", "counter", "valid_from", "valid_until", "knocks"]);
    assertEquals(json.door, `door-${i}`);
    assertEquals(BigInt(json.counter), counter);
    assertEquals(
      json.knocks.map((k: { port: number; protocol: string }) => `${k.port}/${k.protocol}`),
      expected,
    );
    assertEquals(Date.parse(json.valid_from), Number(counter) * periodS * 1000);
    assertEquals(Date.parse(json.valid_until), (Number(counter) + 1) * periodS * 1000);
    assertEquals(result.stdout.includes(encodeSecret(secret)), false);
  }
});

Deno.test("sesame code accepts ISO-8601 times and shows a static door's sequence", async () => {
  const iso = await runCli([
    "code",
    "-c",
    "examples/sesame.yaml",
    "--door",
    "ssh",
    "--at",
    "2030-01-01T00:00:10Z",
    "--json",
  ]);
  assertEquals(iso.code, 0, iso.stderr);
  assertEquals(JSON.parse(iso.stdout).valid_from, "2030-01-01T00:00:00.000Z");
  const unix = await runCli([
    "code",
    "-c",
    "examples/sesame.yaml",
    "--door",
    "ssh",
    "--at",
    "1893456010",
    "--json",
  ]);
  assertEquals(JSON.parse(unix.stdout), JSON.parse(iso.stdout));
  const legacy = await runCli(["code", "-c", "examples/sesame.yaml", "--door", "legacy"]);
  assertStringIncludes(legacy.stdout, "7000/tcp 8000/udp 9000/tcp");
});

Deno.test("sesame code refuses bad times, unknown doors and a bound door without --from", async () => {
  const badTime = await runCli([
    "code",
    "-c",
    "examples/sesame.yaml",
    "--door",
    "ssh",
    "--at",
    "tomorrow",
  ]);
  assertEquals(badTime.code, 2);
  assertMatch(badTime.stderr, /--at: "tomorrow" is not a time/);
  const noDoor = await runCli(["code", "-c", "examples/sesame.yaml", "--door", "nope"]);
  assertEquals(noDoor.code, 2);
  assertStringIncludes(noDoor.stderr, "doors: ssh, legacy");
  await using dir = await tempDir();
  await Deno.writeTextFile(
    `${dir.path}/b.yaml`,
    `doors:\n  b:\n    secret: "${
      encodeSecret(new Uint8Array(16))
    }"\n    ports: "100-200"\n    bind_source: true\n`,
  );
  const noFrom = await runCli(["code", "-c", `${dir.path}/b.yaml`, "--door", "b"]);
  assertEquals(noFrom.code, 2);
  assertStringIncludes(noFrom.stderr, "--from");
});

Deno.test("sesame code and knock find the client config in ~/.config/sesame/client.yaml (or $XDG_CONFIG_HOME) when none is named", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/.config/sesame`, { recursive: true });
  await writePrivate(
    `${dir.path}/.config/sesame/client.yaml`,
    `doors:\n  legacy: { sequence: [7000, "8000/udp", 9000] }\n`,
  );
  const home = await runCli(["code", "--door", "legacy"], { env: { HOME: dir.path } });
  assertEquals(home.code, 0, home.stderr);
  assertStringIncludes(home.stdout, "7000/tcp 8000/udp 9000/tcp");
  const xdg = await runCli(["code", "--door", "legacy"], {
    env: { HOME: "/nonexistent", XDG_CONFIG_HOME: `${dir.path}/.config` },
  });
  assertEquals(xdg.code, 0, xdg.stderr);
  const none = await runCli(["code", "--door", "legacy"], { env: { HOME: "/nonexistent" } });
  assertEquals(none.code, 2, "no config anywhere: a usage error");
  assertStringIncludes(none.stderr, "--config is required");
});
