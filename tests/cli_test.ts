import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertStringIncludes,
} from "./_assert.ts";
import { decodeSecret } from "../lib/secret.ts";
import { DENO_RUN, ROOT, runCli, tempDir } from "./_cli.ts";

Deno.test("sesame --help, --version and per-command help", async () => {
  const help = await runCli(["--help"]);
  assertEquals(help.code, 0);
  for (const cmd of ["listen", "knock", "code", "check", "keygen"]) {
    assertStringIncludes(help.stdout, cmd);
  }
  assertMatch((await runCli(["--version"])).stdout, /^sesame \d+\.\d+\.\d+\n$/);
  const codeHelp = await runCli(["code", "--help"]);
  assertEquals(codeHelp.code, 0);
  assertStringIncludes(codeHelp.stdout, "Usage: sesame code");
  assertEquals((await runCli([])).code, 2);
});

Deno.test("sesame rejects unknown commands and flags with a hint and exit 2", async () => {
  const cmd = await runCli(["lsiten"]);
  assertEquals(cmd.code, 2);
  assertStringIncludes(cmd.stderr, 'unknown command "lsiten"');
  const flag = await runCli(["check", "--cofnig", "x.yaml"]);
  assertEquals(flag.code, 2);
  assertStringIncludes(flag.stderr, "Unknown option '--cofnig'");
  assertStringIncludes(flag.stderr, "sesame check --help");
  const missing = await runCli(["check"]);
  assertEquals(missing.code, 2);
  assertStringIncludes(missing.stderr, "--config is required");
});

Deno.test("sesame check: exit 0 with a summary, exit 1 with located errors, no stack trace", async () => {
  await using dir = await tempDir();
  const example = `${dir.path}/sesame.yaml`;
  await Deno.writeTextFile(example, await Deno.readTextFile("examples/sesame.yaml"), {
    mode: 0o600,
  });
  const ok = await runCli(["check", "-c", example]);
  assertEquals(ok.code, 0, ok.stderr);
  assertStringIncludes(ok.stdout, "valid, 2 doors");
  assertEquals(ok.stdout.includes("c2VzYW1l"), false, "the secret must never be printed");
  const json = await runCli(["check", "-c", example, "--json"]);
  assertEquals(JSON.parse(json.stdout).doors.length, 2);
  assertEquals(json.stdout.includes("c2VzYW1l"), false);
  // What listen refuses, check refuses: an inline secret in a file others can read (a
  // copy: the README has the admin chmod the example itself).
  const readable = `${dir.path}/readable.yaml`;
  await Deno.writeTextFile(readable, await Deno.readTextFile("examples/sesame.yaml"));
  await Deno.chmod(readable, 0o644);
  const open = await runCli(["check", "-c", readable]);
  assertEquals(open.code, 1, open.stdout);
  assertStringIncludes(open.stderr, "run chmod 600");
  // And it says what the host would do to listen: a knock port already taken.
  using _taken = Deno.listen({ hostname: "0.0.0.0", port: 7002 });
  const warned = await runCli(["check", "-c", example]);
  assertEquals(warned.code, 0);
  assertStringIncludes(warned.stdout, "knock ports are in use here (7002/tcp");

  const bad = `${dir.path}/bad.yaml`;
  await Deno.writeTextFile(bad, "doors:\n  ssh:\n    secret: short\n    ports: 99999\n");
  const result = await runCli(["check", "-c", bad]);
  assertEquals(result.code, 1);
  assertStringIncludes(result.stderr, `${bad}:3:13: doors.ssh.secret: must be base64url`);
  assertStringIncludes(
    result.stderr,
    `${bad}:4:12: doors.ssh.ports: port must be 1–65535, received 99999`,
  );
  assertEquals(/\bat .*\.ts:\d+/.test(result.stderr), false, "no stack trace");
  assertEquals(result.stderr.includes("short"), false);

  const missing = await runCli(["check", "-c", `${dir.path}/nope.yaml`]);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.stderr, "cannot read config file");
});

Deno.test("sesame keygen prints a 32-byte secret, or writes it 0600 and refuses to overwrite", async () => {
  const printed = await runCli(["keygen"]);
  assertEquals(printed.code, 0);
  assertEquals(decodeSecret(printed.stdout.trim())?.length, 32);
  assert(printed.stdout !== (await runCli(["keygen"])).stdout);

  await using dir = await tempDir();
  const file = `${dir.path}/door.key`;
  assertEquals((await runCli(["keygen", "--out", file])).code, 0);
  assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
  const first = await Deno.readTextFile(file);
  const again = await runCli(["keygen", "--out", file]);
  assertEquals(again.code, 2);
  assertStringIncludes(again.stderr, "refusing to overwrite");
  assertEquals(await Deno.readTextFile(file), first);
});

Deno.test("sesame init writes a valid server config, its key file and its client, all 0600, with one shared code; a keygen rotation then works as the README says", async () => {
  await using dir = await tempDir();
  const out = `${dir.path}/etc/sesame/server.yaml`; // a directory init creates
  const result = await runCli([
    "init",
    "--out",
    out,
    "--door",
    "vpn",
    "--protect",
    "51820",
    "--host",
    "example.org",
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertStringIncludes(
    result.stdout,
    `sesame knock example.org -c ${dir.path}/etc/sesame/server-client.yaml --door vpn`,
  );
  const key = `${dir.path}/etc/sesame/vpn.key`;
  const clientFile = `${dir.path}/etc/sesame/server-client.yaml`;
  for (const file of [out, key, clientFile]) {
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600, file);
  }
  for (const file of [out, clientFile]) {
    assertEquals((await runCli(["check", "-c", file])).code, 0, file);
  }
  const text = await Deno.readTextFile(out);
  assertStringIncludes(text, "nft: { port: 51820, protocol: tcp }");
  assertStringIncludes(text, "secret_file: vpn.key");
  assertEquals(text.includes((await Deno.readTextFile(key)).trim()), false, "no inline secret");
  const at = ["--door", "vpn", "--at", "2030-01-01T00:00:00Z", "--json"];
  const server = await runCli(["code", "-c", out, ...at]);
  const client = await runCli(["code", "-c", clientFile, ...at]);
  assertEquals(JSON.parse(client.stdout), JSON.parse(server.stdout));
  const again = await runCli(["init", "--out", out]);
  assertEquals(again.code, 2, "never overwrites a secret");
  // README step 6: a new secret into the key file; the server's code changes with it.
  assertEquals((await runCli(["keygen", "--out", key, "--force"])).code, 0);
  const rotated = await runCli(["code", "-c", out, ...at]);
  assertNotEquals(JSON.parse(rotated.stdout).knocks, JSON.parse(server.stdout).knocks);
});

Deno.test("sesame: a secret_file that is /dev/zero, a directory or too large is a clean error", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/big.key`, "A".repeat(10_000), { mode: 0o600 });
  for (
    const [target, why] of [
      ["/dev/zero", "not a regular file"],
      [dir.path, "not a regular file"],
      [`${dir.path}/big.key`, "larger than 4096 bytes"],
    ]
  ) {
    const file = `${dir.path}/c.yaml`;
    await Deno.writeTextFile(
      file,
      `doors:\n  ssh: { secret_file: "${target}", ports: "20000-20099" }\n`,
      { mode: 0o600 },
    );
    const result = await runCli(["check", "-c", file]);
    assertEquals(result.code, 1, result.stderr);
    assertStringIncludes(result.stderr, `doors.ssh.secret_file: cannot read "${target}": ${why}`);
    assertEquals(/internal error|\bat .*\.ts:\d+/.test(result.stderr), false, result.stderr);
  }
});

Deno.test("sesame knock: a command after -- needs --exec; a missing program and a %zone host are clean errors", async () => {
  const stray = await runCli(["knock", "127.0.0.1", "7000", "--", "/bin/true"]);
  assertEquals(stray.code, 2);
  assertStringIncludes(stray.stderr, "a command after -- runs only with --exec");
  const missing = await runCli([
    "knock",
    "127.0.0.1",
    "7000",
    "-d",
    "0",
    "--exec",
    "--",
    "/nonexistent/program",
  ]);
  assertEquals(missing.code, 2, missing.stderr);
  assertStringIncludes(
    missing.stderr,
    '--exec cannot start "/nonexistent/program": no such program',
  );
  const zone = await runCli(["knock", "fe80::1%eth0", "7000"]);
  assertEquals(zone.code, 2);
  assertStringIncludes(zone.stderr, "has a zone (%)");
  for (const r of [stray, missing, zone]) {
    assertEquals(/internal error|\bat .*\.ts:\d+/.test(r.stderr), false, r.stderr);
  }
});

Deno.test("sesame check names every weak door, and not the README's recommended one", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/c.yaml`;
  const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
  await Deno.writeTextFile(
    file,
    `doors:
  one: { sequence: [7100], open: { log: true } }
  short: { secret: "${secret}", ports: "20000-20999", length: 1, open: { log: true } }
  readme: { sequence: [7000, 7001, 7002], open: { log: true } }
  small: { secret: "${secret}", ports: "30000-30009", length: 2, open: { log: true } }
  ssh: { secret: "${secret}", ports: "21000-21999", length: 4, open: { log: true } }
`,
    { mode: 0o600 },
  );
  const result = await runCli(["check", "-c", file]);
  assertEquals(result.code, 0, result.stderr);
  const weak = result.stdout.split("\n").filter((l) => l.includes("weak"));
  for (const door of ["one", "short", "readme", "small"]) {
    assert(weak.some((l) => l.includes(`door ${door} is weak`)), `${door}: ${result.stdout}`);
  }
  assertEquals(weak.some((l) => l.includes("door ssh")), false, result.stdout);
  const json = JSON.parse((await runCli(["check", "-c", file, "--json"])).stdout);
  assertEquals(json.doors.map((d: { weakness: { weak: boolean } }) => d.weakness.weak), [
    true,
    true,
    true,
    true,
    false,
  ]);
});

Deno.test("sesame check refuses a state_file listen could not create", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/afile`, "x");
  const file = `${dir.path}/c.yaml`;
  await Deno.writeTextFile(
    file,
    `state_file: ${dir.path}/afile/sub/state.db\ndoors:\n  d: { sequence: [7100], open: { log: true } }\n`,
    { mode: 0o600 },
  );
  const result = await runCli(["check", "-c", file]);
  assertEquals(result.code, 1, result.stdout);
  assertStringIncludes(result.stderr, `state_file: ${dir.path}/afile is not a directory`);
});

Deno.test("sesame init --user adds a user to a door with users (comments kept), whose client config knocks that user's code; nothing changes on a refusal", async () => {
  const { loadConfig } = await import("../lib/config/load.ts");
  const { userDoors } = await import("../lib/config/types.ts");
  const { codeAt } = await import("../lib/code.ts");
  await using dir = await tempDir();
  const server = `${dir.path}/sesame.yaml`;
  const original = `# kept
doors:
  team:
    ports: "20000-20999" # the pool
    length: 5
    users:
      alice: { secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" }
    open: { for: 30s, command: ["/usr/bin/true"] }
`;
  await Deno.writeTextFile(server, original, { mode: 0o600 });
  const out = await runCli(["init", "--user", "carol", "--door", "team", "--out", server]);
  assertEquals(out.code, 0, out.stderr);
  const text = await Deno.readTextFile(server);
  assertStringIncludes(text, "# kept");
  assertStringIncludes(text, "carol: { secret_file: team-carol.key }");
  assertEquals((await Deno.stat(`${dir.path}/team-carol.key`)).mode! & 0o777, 0o600);
  const doors = userDoors((await loadConfig(server)).doors);
  assertEquals(doors.map((d) => d.kind === "rotating" && d.user), ["alice", "carol"]);
  const clientFile = `${dir.path}/team-carol-client.yaml`;
  const client = (await loadConfig(clientFile)).doors[0];
  const now = Date.now();
  assertEquals((await codeAt(client, now)).knocks, (await codeAt(doors[1], now)).knocks);
  // A second carol, and a door without users, are refused; the config stays as it was.
  const again = await runCli(["init", "--user", "carol", "--door", "team", "--out", server]);
  assertEquals(again.code, 2);
  assertStringIncludes(again.stderr, 'has a user "carol" already');
  assertEquals(await Deno.readTextFile(server), text);
});

Deno.test("sesame revoke: a door, user or address the config does not hold is a usage error (2); no daemon is 3", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/s.yaml`;
  await Deno.writeTextFile(
    file,
    `doors:\n  ssh:\n    sequence: [7000, 7001]\n    open: { for: 5s, command: ["/usr/bin/true"] }\n`,
    { mode: 0o600 },
  );
  const run = (...args: string[]) => runCli(["revoke", "-c", file, ...args]);
  const noDoor = await run("--door", "nope", "--ip", "192.0.2.7");
  assertEquals(noDoor.code, 2, noDoor.stderr);
  assertStringIncludes(noDoor.stderr, 'no door "nope"');
  assertEquals((await run("--door", "ssh", "--ip", "192.0.2.0/24")).code, 2);
  assertEquals((await run("--door", "ssh", "--user", "alice")).code, 2);
  assertEquals((await run("--door", "ssh")).code, 2);
  // No sesame listen runs beside this test.
  const none = await run("--door", "ssh", "--ip", "192.0.2.7");
  assertEquals(none.code, 3, none.stderr);
  assertStringIncludes(none.stderr, "no sesame listen answers");
});

Deno.test("sesame init --user --first-user turns a one-secret door into a door with users; the first user's client config keeps working", async () => {
  const { loadConfig } = await import("../lib/config/load.ts");
  const { userDoors } = await import("../lib/config/types.ts");
  const { codeAt } = await import("../lib/code.ts");
  await using dir = await tempDir();
  const server = `${dir.path}/sesame.yaml`;
  assertEquals((await runCli(["init", "--door", "team", "--out", server])).code, 0);
  const before = (await loadConfig(`${dir.path}/sesame-client.yaml`)).doors[0];
  const refused = await runCli(["init", "--user", "bob", "--door", "team", "--out", server]);
  assertEquals(refused.code, 2);
  assertStringIncludes(refused.stderr, "--first-user NAME");
  const out = await runCli([
    "init",
    "--user",
    "bob",
    "--first-user",
    "alice",
    "--door",
    "team",
    "--out",
    server,
  ]);
  assertEquals(out.code, 0, out.stderr);
  const doors = userDoors((await loadConfig(server)).doors);
  assertEquals(doors.map((d) => d.kind === "rotating" && d.user), ["alice", "bob"]);
  const now = Date.now();
  assertEquals((await codeAt(doors[0], now)).knocks, (await codeAt(before, now)).knocks);
});

Deno.test("sesame init --user never takes a file another door or user reads its secret from, even with --force", async () => {
  await using dir = await tempDir();
  const server = `${dir.path}/sesame.yaml`;
  await Deno.writeTextFile(
    server,
    `doors:
  team:
    ports: "20000-20999"
    users: { a-b: { secret_file: team-a-b.key } }
    open: { command: ["/usr/bin/true"] }
  team-a:
    ports: "21000-21999"
    users: { x: { secret_file: team-a-x.key } }
    open: { command: ["/usr/bin/true"] }
`,
    { mode: 0o600 },
  );
  const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n";
  for (const f of ["team-a-b.key", "team-a-x.key"]) {
    await Deno.writeTextFile(`${dir.path}/${f}`, secret.replace("AAEC", f.slice(7, 9)), {
      mode: 0o600,
    });
  }
  const before = await Deno.readTextFile(`${dir.path}/team-a-b.key`);
  const out = await runCli(["init", "--user", "b", "--door", "team-a", "--out", server, "--force"]);
  assertEquals(out.code, 2);
  assertStringIncludes(out.stderr, "is the secret_file of another door or user");
  assertEquals(await Deno.readTextFile(`${dir.path}/team-a-b.key`), before);
});

Deno.test("sesame keygen --spa prints fwknop's two keys; init --spa writes a server, a sesame client and a fwknop stanza (0600) whose keys agree", async () => {
  const keys = await runCli(["keygen", "--spa"]);
  assertEquals(keys.code, 0);
  const [key, hmac] = keys.stdout.trim().split("\n").map((l) => l.split(": ")[1]);
  assertMatch(keys.stdout, /^KEY_BASE64: \S+\nHMAC_KEY_BASE64: \S+\n$/);
  assertEquals(atob(key).length, 32);
  assertEquals(atob(hmac).length, 64);
  await using dir = await tempDir();
  const out = await runCli([
    "init",
    "--spa",
    "--out",
    `${dir.path}/s.yaml`,
    "--host",
    "gw.example",
  ]);
  assertEquals(out.code, 0, out.stderr);
  assertStringIncludes(out.stdout, `fwknop -n sesame-ssh --rc-file ${dir.path}/fwknoprc`);
  for (const f of ["s.yaml", "s-client.yaml", "fwknoprc", "ssh.key", "ssh.hmac"]) {
    assertEquals((await Deno.stat(`${dir.path}/${f}`)).mode! & 0o777, 0o600, f);
  }
  const rc = await Deno.readTextFile(`${dir.path}/fwknoprc`);
  const serverKey = (await Deno.readTextFile(`${dir.path}/ssh.key`)).trim();
  assertStringIncludes(rc, `KEY_BASE64          ${serverKey}\n`);
  assertStringIncludes(rc, "SPA_SERVER          gw.example\n");
  assertStringIncludes(await Deno.readTextFile(`${dir.path}/s-client.yaml`), serverKey);
  assertEquals((await runCli(["check", "-c", `${dir.path}/s.yaml`])).code, 0);
});

Deno.test("SPA key files may hold fwknop's KEY_BASE64 / HMAC_KEY_BASE64 lines (keygen --spa --out), one file for both; code on an SPA door is a usage error", async () => {
  await using dir = await tempDir();
  const keys = await runCli(["keygen", "--spa", "--out", `${dir.path}/keys`]);
  assertEquals(keys.code, 0, keys.stderr);
  assertEquals((await Deno.stat(`${dir.path}/keys`)).mode! & 0o777, 0o600);
  const file = `${dir.path}/s.yaml`;
  await Deno.writeTextFile(
    file,
    `doors:\n  ssh:\n    spa: { key_file: keys, hmac_key_file: keys, access: ["tcp/22"] }\n    open: { nft: { port: 22 } }\n`,
    { mode: 0o600 },
  );
  const check = await runCli(["check", "-c", file]);
  assertEquals(check.code, 0, check.stderr);
  const { loadConfig } = await import("../lib/config/load.ts");
  const door = (await loadConfig(file)).doors[0];
  const text = await Deno.readTextFile(`${dir.path}/keys`);
  assert(door.kind === "spa");
  assertEquals(
    btoa(String.fromCharCode(...door.spa.keys.hmac)),
    /HMAC_KEY_BASE64: (\S+)/.exec(text)![1],
  );
  assertEquals(
    btoa(String.fromCharCode(...door.spa.keys.encryption)),
    /^KEY_BASE64: (\S+)/.exec(text)![1],
  );
  const code = await runCli(["code", "-c", file]);
  assertEquals(code.code, 2);
  assertStringIncludes(code.stderr, "single-packet (SPA) door");
});

Deno.test("sesame version: sesame's version and the runtime's, as text and JSON", async () => {
  const text = await runCli(["version"]);
  assertEquals(text.code, 0, text.stderr);
  const meta = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assertEquals(text.stdout.split("\n")[0], `sesame ${meta.version}`);
  const json = JSON.parse((await runCli(["version", "--json"])).stdout);
  assertEquals(Object.keys(json), ["sesame", "deno", "v8", "typescript"]);
  assertEquals([json.sesame, json.deno], [meta.version, Deno.version.deno]);
  assertEquals((await runCli(["version", "--yaml"])).code, 2);
});

Deno.test("sesame check exits 1 when the open-file limit would make listen refuse to start", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/big.yaml`;
  await Deno.writeTextFile(
    file,
    `doors:\n  big:\n    sequence: [7000, 7001]\n    open: { for: 5s }\n  pool:\n    secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"\n    ports: "40000-40499"\n    open: { for: 5s }\n`,
  );
  await Deno.chmod(file, 0o600);
  const deno = [Deno.execPath(), ...DENO_RUN, `${ROOT}cli.ts`, "check", "-c", file];
  const run = async (limit: number) => {
    const out = await new Deno.Command("prlimit", {
      args: [`--nofile=${limit}`, ...deno],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const low = await run(256);
  assertEquals(low.code, 1, low.stderr);
  assertStringIncludes(low.stderr, "sockets (+64 spare) but the open file limit is 256");
  assertEquals((await run(4096)).code, 0);
});
