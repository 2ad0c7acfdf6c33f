/** One daemon per network namespace: the lock, and the file it leaves (none after a clean stop). */
import { assert, assertEquals } from "./_assert.ts";
import { tempDir } from "./_cli.ts";
import { takeInstanceLock } from "../lib/daemon/instance_lock.ts";
import { ConfigError } from "../lib/errors.ts";

Deno.test("instance lock: a second taker is refused with the holder's PID; a release removes the file", async () => {
  await using dir = await tempDir();
  const lock = await takeInstanceLock(dir.path);
  assertEquals((await Deno.readTextFile(lock.path)).trim(), String(Deno.pid));
  try {
    await takeInstanceLock(dir.path);
    assert(false, "taken twice");
  } catch (e) {
    assert(e instanceof ConfigError && e.message.includes(`pid ${Deno.pid}`), String(e));
  }
  lock.release();
  assertEquals([...Deno.readDirSync(dir.path)].length, 0, "nothing left after a clean stop");
  const again = await takeInstanceLock(dir.path);
  again.release();
});
