import { assertEquals, assertStringIncludes } from "./_assert.ts";
import { runCli } from "./_cli.ts";

Deno.test("sesame demo opens the door for the right knock only and closes it (the README's main command)", async () => {
  const result = await runCli(["demo"]);
  assertEquals(result.code, 0, result.stdout + result.stderr);
  assertStringIncludes(result.stdout, "nothing opens.");
  assertStringIncludes(result.stdout, 'door "demo" opened for 127.0.0.2');
  assertStringIncludes(result.stdout, "refused: a code opens once.");
  assertStringIncludes(result.stdout, 'door "demo" closed.');
  assertStringIncludes(result.stderr, "door demo opened for 127.0.0.2");
});
