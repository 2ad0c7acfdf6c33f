/**
 * The benchmark's smoke run, so it never rots: a few seconds, one low level, every
 * system; it checks that each system was measured, not how fast it was.
 */
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { ROOT, tempDir } from "./_cli.ts";

const ready = Deno.uid() === 0 && await Deno.stat("/usr/sbin/knockd").then(() => true, () => false);
const ignore = !Deno.env.get("CI") && !ready;

async function denoRun(args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "-A", `--config=${ROOT}deno.json`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test({
  name:
    "bench --smoke measures trivial, sesame with the store (static and bind_source, sockets and capture intake, etcd in the path), sesame-nft (session and batch), sesame-cmd and knockd",
  ignore,
  async fn() {
    await using dir = await tempDir();
    const out = await denoRun([`${ROOT}bench/run.ts`, "--smoke", "--out", dir.path]);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const results = JSON.parse(await Deno.readTextFile(`${dir.path}/results.json`));
    assertEquals(results.levels.map((l: { system: string }) => l.system), [
      "trivial",
      "sesame-nft-state",
      "sesame-nflog-state",
      "sesame-bind-state",
      "sesame-fleet-state",
      "sesame-nft",
      "sesame-nft-batch",
      "sesame-cmd",
      "knockd",
    ]);
    for (const level of results.levels) {
      assert(level.sent > 0, `${level.system} was sent sequences`);
      assert(level.detected > 0, `${level.system} detected some: the harness saw its opens`);
    }
    assertStringIncludes(
      await Deno.readTextFile(`${dir.path}/BENCHMARKS.md`),
      "| sesame-nft | tcp | 10 |",
    );
  },
});

Deno.test("bench/micro.ts --smoke measures memory, knock cost and start-up", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-P",
      `--config=${ROOT}deno.json`,
      "--v8-flags=--expose-gc",
      `${ROOT}bench/micro.ts`,
      "--smoke",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  assertStringIncludes(text, "bytes per source");
  assertStringIncludes(text, "ns per knock");
  assertStringIncludes(text, "64 TCP + 64 UDP ports bound");
});
