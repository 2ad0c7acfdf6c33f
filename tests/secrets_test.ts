/**
 * Secrets stay secret: never in any output of any command, logs included, and files
 * holding them must be private.
 */
import { readStore } from "../lib/store/sqlite.ts";
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { runCli, tempDir, writePrivate } from "./_cli.ts";
import { randomBase } from "./_daemon.ts";
import { eventually, spawnListen } from "./_process.ts";
import { encodeSecret } from "../lib/secret.ts";

const BYTES = Uint8Array.from({ length: 32 }, (_, i) => 200 - i * 3);
const SECRET = encodeSecret(BYTES);
/** Every form the secret could leak in. */
const FORMS = [
  SECRET,
  SECRET.slice(0, 20),
  btoa(String.fromCharCode(...BYTES)).slice(0, 20),
  Array.from(BYTES, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 20),
];

function assertNoSecret(label: string, text: string) {
  for (const form of FORMS) {
    assert(!text.includes(form), `${label} printed the secret (${form}):\n${text}`);
  }
}

function config(dir: string, base: number, extra = "") {
  return `listen: { addresses: ["127.0.0.1"] }
state_file: ${dir}/state.json
doors:
  ssh:
    secret: "${SECRET}"
    ports: "${base}-${base + 49}"
    length: 3
    open: { for: 5s, command: ["/usr/bin/true", "{ip}"] }
${extra}`;
}

Deno.test("secrets: no command, log line or error ever prints a door's secret", async () => {
  await using dir = await tempDir();
  const base = randomBase(60);
  const file = `${dir.path}/c.yaml`;
  await writePrivate(file, config(dir.path, base));
  const outputs: [string, string][] = [];
  const run = async (label: string, args: string[]) => {
    const r = await runCli(args);
    outputs.push([label, r.stdout + r.stderr]);
    return r;
  };
  await run("check", ["check", "-c", file]);
  await run("check --json", ["check", "-c", file, "--json"]);
  await run("code", ["code", "-c", file, "--door", "ssh"]);
  await run("code --json", ["code", "-c", file, "--door", "ssh", "--json"]);
  await run("nft-ruleset", ["nft-ruleset", "-c", file]);
  // Mistakes that put the secret where it does not belong.
  const wrong = `${dir.path}/wrong.yaml`;
  await writePrivate(
    wrong,
    `doors:\n  ssh:\n    secret: "${SECRET}"\n    ports: "${SECRET}"\n    sequence_timeout: "${SECRET}"\n    secret_fiel: "${SECRET}"\n    protocol: "${SECRET}"\n`,
  );
  assertEquals((await run("check (secret at wrong keys)", ["check", "-c", wrong])).code, 1);
  const broken = `${dir.path}/broken.yaml`;
  await writePrivate(broken, `doors:\n  ssh:\n    secret: "${SECRET}" "${SECRET}"\n`);
  assertEquals(
    (await run("check (YAML syntax error on the secret line)", ["check", "-c", broken])).code,
    1,
  );

  // The daemon at debug level, in JSON, through an open, a replay, and a refused reload.
  await using p = spawnListen(["-c", file, "--log-level", "debug", "--log-format", "json"]);
  await p.waitForLog(/listening on/);
  await writePrivate(
    `${dir.path}/client.yaml`,
    `doors:\n  ssh: { secret: "${SECRET}", ports: "${base}-${base + 49}", length: 3 }\n`,
  );
  const knock = await run("knock --json", [
    "knock",
    "127.0.0.1",
    "-c",
    `${dir.path}/client.yaml`,
    "--door",
    "ssh",
    "--json",
    "-v",
  ]);
  assertEquals(knock.code, 0);
  assert(await eventually(() => p.log().includes("opened"), 3000));
  await run("knock (replay)", [
    "knock",
    "127.0.0.1",
    "-c",
    `${dir.path}/client.yaml`,
    "--door",
    "ssh",
    "--source",
    "127.0.0.3",
  ]);
  await writePrivate(file, config(dir.path, base).replace("length: 3", `length: "${SECRET}"`));
  p.kill("SIGHUP");
  await p.waitForLog(/reload refused/);
  p.kill("SIGTERM");
  await p.child.status;
  outputs.push(["listen log", p.log()]);
  outputs.push(["state file", JSON.stringify(readStore(`${dir.path}/state.json`))]);
  outputs.push([
    "state file bytes",
    new TextDecoder("latin1").decode(await Deno.readFile(`${dir.path}/state.json`)),
  ]);
  assertStringIncludes(p.log(), '"level":"DEBUG"'); // the debug lines were there to be searched
  for (const [label, text] of outputs) assertNoSecret(label, text);
});

Deno.test("secrets: listen and knock refuse files others can read, with the chmod that fixes it", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/open.yaml`;
  await Deno.writeTextFile(file, config(dir.path, randomBase(60)), { mode: 0o644 });
  await Deno.chmod(file, 0o644);
  const listen = await runCli(["listen", "-c", file]);
  assertEquals(listen.code, 1);
  assertStringIncludes(listen.stderr, `run chmod 600 ${file}`);
  const knock = await runCli(["knock", "127.0.0.1", "-c", file, "--door", "ssh"]);
  assertEquals(knock.code, 1);
  assertStringIncludes(knock.stderr, "mode 0644");
  const code = await runCli(["code", "-c", file, "--door", "ssh"]);
  assertEquals(code.code, 0, "code only warns");
  assertStringIncludes(code.stderr, "warning:");

  // A private config whose secret_file is not private is refused for the key file.
  const key = `${dir.path}/ssh.key`;
  await Deno.writeTextFile(key, SECRET + "\n", { mode: 0o640 });
  await Deno.chmod(key, 0o640);
  const withKey = `${dir.path}/key.yaml`;
  await writePrivate(
    withKey,
    config(dir.path, randomBase(60)).replace(`secret: "${SECRET}"`, `secret_file: ${key}`),
  );
  const refused = await runCli(["knock", "127.0.0.1", "-c", withKey, "--door", "ssh"]);
  assertEquals(refused.code, 1);
  assertStringIncludes(refused.stderr, `run chmod 600 ${key}`);
  // The override, for containers.
  const allowed = await runCli([
    "knock",
    "127.0.0.1",
    "-c",
    withKey,
    "--door",
    "ssh",
    "--insecure-permissions",
  ]);
  assertEquals(allowed.code, 0, allowed.stderr);

  // A private key file that another user owns: that user can read it and change it.
  await Deno.chmod(key, 0o600);
  await Deno.chown(key, 65534, 65534);
  const foreign = await runCli(["listen", "-c", withKey]);
  assertEquals(foreign.code, 1);
  assertStringIncludes(foreign.stderr, `${key} holds a secret and is owned by uid 65534`);
  assertStringIncludes(foreign.stderr, `run chown 0 ${key}`);
});

Deno.test("secret_file: relative to the config's directory, ~/ in the home directory", async () => {
  await using dir = await tempDir();
  await writePrivate(`${dir.path}/ssh.key`, SECRET + "\n");
  await writePrivate(
    `${dir.path}/c.yaml`,
    `doors:\n  ssh: { secret_file: ssh.key, ports: "20000-20099" }\n`,
  );
  // One time for both runs: a rotation between them would change the code.
  const at = ["--at", "1800000000"];
  const relative = await runCli([
    "code",
    "-c",
    `${dir.path}/c.yaml`,
    "--door",
    "ssh",
    "--json",
    ...at,
  ]);
  assertEquals(relative.code, 0, relative.stderr);
  await writePrivate(
    `${dir.path}/h.yaml`,
    `doors:\n  ssh: { secret_file: ~/ssh.key, ports: "20000-20099" }\n`,
  );
  const home = await runCli(
    ["code", "-c", `${dir.path}/h.yaml`, "--door", "ssh", "--json", ...at],
    {
      env: { HOME: dir.path },
    },
  );
  assertEquals(home.code, 0, home.stderr);
  assertEquals(JSON.parse(home.stdout).knocks, JSON.parse(relative.stdout).knocks);
});
