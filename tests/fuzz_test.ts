/**
 * Bad input never gets a stack trace or a hang: thousands of mutated configs give either
 * a valid config or located errors; random command lines give exit 0, 1 or 2 with a message.
 */
import { assert, assertEquals } from "./_assert.ts";
import { parseConfig } from "../lib/config/load.ts";
import { ConfigError } from "../lib/errors.ts";
import { main } from "../lib/cli/main.ts";
import { ROOT, tempDir } from "./_cli.ts";

/** A small deterministic PRNG, so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

const VALUES = [
  "0",
  "-1",
  "65536",
  "99999999999999999999999",
  "1e308",
  "NaN",
  ".inf",
  "~",
  "null",
  "true",
  "[]",
  "{}",
  "[1, [2, [3]]]",
  '"\u202e\u0000zero"',
  "'🔑🔑🔑'",
  '"%s%n{ip}"',
  "&a [1]",
  "*a",
  "!!binary aGk=",
  "!!js/function x",
  '"::ffff:1.2.3.4"',
  '"10.0.0.0/33"',
  '"1s1s1s1s"',
  '"-5m"',
  '"20000-10000"',
  '"1,2,,3"',
  "|\n  multi",
  "? complex",
];
const KEYS = [
  "secret",
  "ports",
  "length",
  "protocol",
  "period",
  "skew",
  "open",
  "for",
  "sequence",
  "listen",
  "doors",
  "x",
  "decoys",
];

function mutate(text: string, r: () => number): string {
  const lines = text.split("\n");
  const pick = () => Math.floor(r() * lines.length);
  const ops = 1 + Math.floor(r() * 3);
  for (let k = 0; k < ops; k++) {
    const i = pick();
    switch (Math.floor(r() * 9)) {
      case 0:
        lines.splice(i, 1);
        break;
      case 1:
        lines.splice(i, 0, lines[pick()]); // duplicate keys, often
        break;
      case 2:
        lines[i] = lines[i].replace(/:\s*.*$/, `: ${VALUES[Math.floor(r() * VALUES.length)]}`);
        break;
      case 3:
        lines.splice(
          i,
          0,
          `${" ".repeat(Math.floor(r() * 3) * 2)}${KEYS[Math.floor(r() * KEYS.length)]}: ${
            VALUES[Math.floor(r() * VALUES.length)]
          }`,
        );
        break;
      case 4:
        lines[i] = " ".repeat(Math.floor(r() * 5)) + lines[i].trimStart();
        break;
      case 5:
        return lines.join("\n").slice(0, Math.floor(r() * text.length)); // truncated
      case 6:
        lines.splice(
          i,
          0,
          "bomb: &b [" + Array(10).fill("*a").join(",") + "]",
          "a: &a [1,1,1,1,1,1,1,1,1,1]",
        );
        break;
      case 7:
        lines[i] = lines[i].replace(/\d+/, String(Math.floor(r() * 2 ** 40) - 2 ** 20));
        break;
      default:
        lines[i] = lines[i] + " # " + "\u00e9\u{1F511}";
    }
  }
  return lines.join("\n");
}

const BASE = await Deno.readTextFile(new URL("../examples/sesame.yaml", import.meta.url));

Deno.test("fuzz: 3 000 mutated configs give a valid config or located errors, never a crash or a hang", () => {
  const r = rng(20261125);
  let valid = 0, invalid = 0;
  for (let n = 0; n < 3000; n++) {
    const text = mutate(BASE, r);
    const started = performance.now();
    try {
      parseConfig(text, "fuzz.yaml");
      valid++;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw new Error(`case ${n}: ${e}\n--- config ---\n${text}`);
      for (const issue of e.issues) {
        assert(
          issue.position,
          `case ${n}: an issue without a position: ${issue.path}: ${issue.message}\n${text}`,
        );
        assert(!/\n\s+at /.test(issue.message), `case ${n}: a stack trace in ${issue.message}`);
        assert(
          !issue.message.includes("c2VzYW1l"),
          `case ${n}: the secret leaked: ${issue.path}: ${issue.message}`,
        );
      }
      invalid++;
    }
    assert(
      performance.now() - started < 1000,
      `case ${n} took ${performance.now() - started} ms\n${text}`,
    );
  }
  assert(
    valid > 100 && invalid > 1000,
    `mutations should produce both: ${valid} valid, ${invalid} invalid`,
  );
});

Deno.test("fuzz: 400 random command lines exit 0, 1 or 2 with a message, never an internal error", async () => {
  await using dir = await tempDir();
  const r = rng(7);
  const words = [
    "code",
    "check",
    "keygen",
    "nft-ruleset",
    "init",
    "--config",
    "-c",
    "--door",
    "ssh",
    "legacy",
    "--at",
    "0",
    "99999999999999999999",
    "2030-13-45",
    "--from",
    "::ffff:1.2.3.4",
    "nope",
    "--json",
    "--out",
    `${dir.path}/k`,
    "--force",
    "--",
    "-",
    "--at=",
    `${ROOT}examples/sesame.yaml`,
    `${dir.path}/missing.yaml`,
    "--protect",
    "0",
    "--backend",
    "pf",
    "\u0000",
    "--help",
    "-x",
    "--door=ssh",
    "--client",
  ];
  const realLog = console.log, realError = console.error;
  let printed = "";
  console.log = console.error = (...a: unknown[]) => printed += a.join(" ") + "\n";
  // init writes sesame.yaml, its key and its client into the working directory: never the repo's.
  const cwd = Deno.cwd();
  Deno.chdir(dir.path);
  try {
    for (let n = 0; n < 400; n++) {
      const argv = Array.from(
        { length: 1 + Math.floor(r() * 6) },
        () => words[Math.floor(r() * words.length)],
      );
      if (!["code", "check", "keygen", "nft-ruleset", "init"].includes(argv[0])) {
        argv.unshift("check");
      }
      printed = "";
      const code = await main(argv);
      assert([0, 1, 2].includes(code), `${JSON.stringify(argv)} exited ${code}: ${printed}`);
      assert(!printed.includes("internal error"), `${JSON.stringify(argv)}: ${printed}`);
      if (code !== 0) assert(printed.trim().length > 0, `${JSON.stringify(argv)} failed silently`);
    }
  } finally {
    Deno.chdir(cwd);
    console.log = realLog;
    console.error = realError;
  }
  assertEquals(typeof printed, "string");
});
