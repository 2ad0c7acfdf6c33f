/**
 * `sesame init` as an admin runs it: a refusal writes nothing, the state file and router
 * doors (forward, dnat) are chosen on the command line, and `--user` edits the config in
 * place, keeping the admin's layout and comments.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { runCli, tempDir } from "./_cli.ts";
import { parseConfig } from "../lib/config/load.ts";

async function files(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("init: a refusal (the config exists) writes nothing, not even the key", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/sesame.yaml`, "# the admin's own\n");
  const out = await runCli(["init", "--out", `${dir.path}/sesame.yaml`]);
  assertEquals(out.code, 2, out.stderr);
  assertStringIncludes(out.stderr, "nothing was written");
  assertEquals(await files(dir.path), ["sesame.yaml"]);
  assertEquals(await Deno.readTextFile(`${dir.path}/sesame.yaml`), "# the admin's own\n");
});

Deno.test("init: --state-file, --forward (IPv6 too) and --dnat write configs that load, with the right door", async () => {
  await using dir = await tempDir();
  const read = async (name: string) => {
    const file = `${dir.path}/${name}`;
    return parseConfig(await Deno.readTextFile(file), file, {
      readSecretFile: () => "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    });
  };
  const fwd = await runCli([
    "init",
    "--out",
    `${dir.path}/fwd.yaml`,
    "--state-file",
    "/var/lib/sesame/router.db",
    "--forward",
    "[fd00::10]:22",
  ]);
  assertEquals(fwd.code, 0, fwd.stderr);
  assertStringIncludes(fwd.stdout, "--wait-open [fd00::10]:22");
  const forward = await read("fwd.yaml");
  assertEquals(forward.stateFile, "/var/lib/sesame/router.db");
  const gateway = JSON.stringify(forward.doors[0].open?.nft);
  assertStringIncludes(gateway, `"kind":"forward","hosts":[{"host":"fd00::10","family":6}]`);
  assertStringIncludes(gateway, `"toPorts":[22]`);

  const dnat = await runCli([
    "init",
    "--out",
    `${dir.path}/dnat.yaml`,
    "--door",
    "nas",
    "--dnat",
    "2222:192.168.1.10:22",
  ]);
  assertEquals(dnat.code, 0, dnat.stderr);
  const d = (await read("dnat.yaml")).doors[0];
  assertEquals(d.name, "nas");
  assertStringIncludes(
    JSON.stringify(d.open?.nft),
    `"kind":"dnat","hosts":[{"host":"192.168.1.10","family":4}]`,
  );

  const refusals: [string[], string][] = [
    [["--forward", "192.168.1.10"], "--forward must be ADDRESS:PORT"],
    [["--dnat", "2222:nas:22"], "--dnat must be ADDRESS:PORT"],
    [["--forward", "10.0.0.2:22", "--backend", "iptables"], "are nft doors"],
    [["--protect", "22", "--forward", "10.0.0.2:22"], "give one of"],
    [["--state-file", "state.db"], "--state-file must be an absolute path"],
  ];
  for (const [flags, message] of refusals) {
    const bad = await runCli(["init", "--out", `${dir.path}/bad.yaml`, ...flags]);
    assertEquals(bad.code, 2, `${flags}: ${bad.stdout}`);
    assertStringIncludes(bad.stderr, message);
  }
  assert(!(await files(dir.path)).some((f) => f.startsWith("bad")), "refusals wrote nothing");
});

Deno.test("init --user edits the config in place: every other line as the admin left it; the header no longer names one key", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.yaml`;
  assertEquals((await runCli(["init", "--out", file])).code, 0);
  // The admin's own edits: a comment and an alignment of their own.
  const mine = (await Deno.readTextFile(file)).replace(
    "    length: 4\n",
    "    length: 4        # four knocks, as agreed\n    # the team's door\n",
  );
  await Deno.writeTextFile(file, mine);
  const first = await runCli(["init", "--out", file, "--user", "bob", "--first-user", "alice"]);
  assertEquals(first.code, 0, first.stderr);
  const second = await runCli(["init", "--out", file, "--user", "carol"]);
  assertEquals(second.code, 0, second.stderr);
  const now = await Deno.readTextFile(file);
  const kept = mine.split("\n").slice(2).filter((l) => !l.includes("secret_file: ssh.key"));
  for (const line of kept) assert(now.includes(line), `line lost or rewritten: ${line}\n${now}`);
  assertStringIncludes(now, "      alice: { secret_file: ssh.key }\n");
  assertStringIncludes(now, "      bob: { secret_file: ssh-bob.key }\n");
  assertStringIncludes(now, "      carol: { secret_file: ssh-carol.key }\n");
  assert(!now.startsWith(`# sesame server config, written by "sesame init". Its secret is in`));
  const check = await runCli(["check", "-c", file]);
  assertEquals(check.code, 0, check.stderr);
  assertStringIncludes(check.stdout, "users alice, bob, carol");
});

Deno.test("init --user refuses a door whose users are shared with another door through a YAML anchor", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/sesame.yaml`;
  const text = `doors:
  ssh:
    ports: "20000-20099"
    users: &team
      alice: { secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" }
    open: { command: ["/bin/true"] }
  db:
    ports: "21000-21099"
    users: *team
    open: { command: ["/bin/true"] }
`;
  await Deno.writeTextFile(file, text, { mode: 0o600 });
  for (const door of ["ssh", "db"]) {
    const out = await runCli(["init", "--out", file, "--user", "bob", "--door", door]);
    assertEquals(out.code, 2, out.stdout);
    assertStringIncludes(out.stderr, "shared through a YAML anchor");
  }
  assertEquals(await Deno.readTextFile(file), text, "nothing changed");
  assertEquals((await files(dir.path)).filter((f) => f.endsWith(".key")), [], "no key written");
});

Deno.test("init --state-file with a space and a # in the path: the config means that path", async () => {
  await using dir = await tempDir();
  const out = await runCli([
    "init",
    "--out",
    `${dir.path}/s.yaml`,
    "--state-file",
    "/var/lib/sesame/site #2.db",
  ]);
  assertEquals(out.code, 0, out.stderr);
  const config = parseConfig(await Deno.readTextFile(`${dir.path}/s.yaml`), "s.yaml", {
    readSecretFile: () => "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
  });
  assertEquals(config.stateFile, "/var/lib/sesame/site #2.db");
});
