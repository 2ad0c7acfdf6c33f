/**
 * The Debian package's /usr/bin/sesame (packaging/sesame.sh) grants exactly deno.json's
 * "default" permissions, its unstable features and V8 flags, and the runtime it ships
 * is the Deno the tests run on.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import meta from "../deno.json" with { type: "json" };
import runtime from "../packaging/runtime.json" with { type: "json" };

const root = new URL("..", import.meta.url);

/** The flags of the wrapper's `deno run` line (continuation lines joined). */
async function wrapperFlags(): Promise<string[]> {
  const text = await Deno.readTextFile(new URL("packaging/sesame.sh", root));
  const line = text.replace(/\\\n\s*/g, " ").split("\n").find((l) => l.startsWith("exec "))!;
  return line.split(/\s+/).filter((w) => w.startsWith("--"));
}

/** deno.json's default permission set, as deno run's flags. */
function permissionFlags(): string[] {
  const flags: string[] = [];
  for (const [name, value] of Object.entries(meta.permissions.default)) {
    if (value === true) flags.push(`--allow-${name}`);
    else if (Array.isArray(value)) flags.push(`--allow-${name}=${value.join(",")}`);
  }
  return flags;
}

Deno.test("/usr/bin/sesame grants deno.json's default permissions, no more and no fewer", async () => {
  const flags = await wrapperFlags();
  assertEquals(flags.filter((f) => f.startsWith("--allow-")).sort(), permissionFlags().sort());
  assertEquals(
    flags.filter((f) => f.startsWith("--unstable-")).sort(),
    meta.unstable.map((u) => `--unstable-${u}`).sort(),
  );
  // The same V8 flags as the sesame task (the daemon's memory profile).
  const v8 = meta.tasks.sesame.split(" ").filter((w) => w.startsWith("--v8-flags="));
  assertEquals(flags.filter((f) => f.startsWith("--v8-flags=")), v8);
  // No prompt may wait for an answer under systemd; no deno.json of the cwd applies.
  for (const f of ["--no-prompt", "--no-config"]) assertEquals(flags.includes(f), true, f);
});

Deno.test("the package ships the Deno runtime the tests run on, pinned for every architecture", () => {
  assertEquals(runtime.version, Deno.version.deno);
  for (const pin of Object.values(runtime.arch)) {
    assertEquals(/^sha512-[A-Za-z0-9+/]{86}==$/.test(pin.integrity), true, pin.package);
  }
});
