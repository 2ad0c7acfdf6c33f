/** What the tests run is what the binary would be: one permission set, one set of V8 flags. */
import { assert, assertEquals } from "./_assert.ts";
import { DENO_RUN, ROOT, V8_FLAGS } from "./_cli.ts";

Deno.test("deno.json: the compile task and the tasks that run sesame share -P and the V8 flags", async () => {
  const { tasks, permissions, compile } = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assertEquals(V8_FLAGS, ["--v8-flags=--max-semi-space-size=1"]);
  for (const name of ["sesame", "demo", "compile"]) {
    const words = (tasks[name] as string).split(/\s+/);
    assert(words.includes("-P"), `${name} runs under deno.json's permission set`);
    for (const flag of V8_FLAGS) assert(words.includes(flag), `${name} has ${flag}`);
  }
  assert(DENO_RUN.includes("-P") && V8_FLAGS.every((f) => DENO_RUN.includes(f)));
  assertEquals(compile.permissions, permissions.default, "the binary's permissions are -P's");
});
