/**
 * Which daemon a command talks to: the one whose config path it names, as given (a symlink
 * the admin switched atomically still names the daemon's config, which a reload reads
 * again), or the same file by another path.
 */
import { assertEquals } from "./_assert.ts";
import { tempDir } from "./_cli.ts";
import { absolutePath, sameConfig } from "../lib/cli/daemon_client.ts";

Deno.test("sameConfig: a switched symlink still names the daemon's config; another path to the same file does too", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.writeTextFile(`${d}/v1.yaml`, "doors: {}\n");
  await Deno.writeTextFile(`${d}/v2.yaml`, "doors: {}\n");
  await Deno.symlink(`${d}/v1.yaml`, `${d}/cur.yaml`);
  const daemon = absolutePath(`${d}/cur.yaml`); // what listen records at start
  await Deno.remove(`${d}/cur.yaml`);
  await Deno.symlink(`${d}/v2.yaml`, `${d}/cur.yaml`); // the admin's atomic switch
  assertEquals(await sameConfig(`${d}/cur.yaml`, daemon), true);
  assertEquals(await sameConfig(`${d}/./cur.yaml`, daemon), true);
  assertEquals(await sameConfig(`${d}/v2.yaml`, daemon), true, "the file it names now");
  assertEquals(await sameConfig(`${d}/v1.yaml`, daemon), false, "not the file it named before");
});
