/**
 * The nft watch hears changes through `nft monitor`, which can drop events under load: it
 * also calls back every few seconds without one, and the daemon's check then puts back
 * what another tool removed (that repair is tested in open_path_test.ts).
 */
import { assertEquals } from "./_assert.ts";
import { ManualClock } from "../lib/testing/mod.ts";
import { NftFirewall } from "../lib/actions/nft.ts";
import type { CommandRunner, Session } from "../lib/actions/runner.ts";

/** A monitor that never reports anything (every event lost), until killed. */
function silentMonitor(): Session {
  let end!: () => void;
  const status = new Promise<void>((r) => end = r);
  const idle = () =>
    new ReadableStream<Uint8Array>({
      start: (c) =>
        void status.then(() => {
          try {
            c.close();
          } catch { /* cancelled by the reader already */ }
        }),
    });
  return {
    stdin: new WritableStream(),
    stdout: idle(),
    stderr: idle(),
    status,
    kill: () => end(),
  };
}

Deno.test("NftFirewall.watch calls back within seconds even when nft monitor reports nothing", async () => {
  const runner: CommandRunner = {
    run: () => Promise.resolve({ code: 0, timedOut: false, error: "" }),
    spawn: () => silentMonitor(),
    close() {},
  };
  const clock = new ManualClock(0);
  const nft = new NftFirewall(runner, { mode: "batch", nftPath: "/usr/sbin/nft", clock });
  let calls = 0;
  nft.watch(() => calls++);
  try {
    clock.advance(5009);
    assertEquals(calls, 0, "no call back before the backstop (5 s) and its coalescing (10 ms)");
    clock.advance(1);
    assertEquals(calls, 1, "a call back after 5 s without an event");
    clock.advance(5000);
    assertEquals(calls, 2, "and every 5 s after");
  } finally {
    await nft.shutdown();
  }
});
