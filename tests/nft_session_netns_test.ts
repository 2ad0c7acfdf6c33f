/**
 * The long-lived `nft -i` session against a real kernel, in a namespace of its own: each
 * line's outcome is told by the fence that follows it (nft's echo would read every
 * element of every set first), and an error belongs to its own line only.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { canRunLab } from "./_netns.ts";
import { NftSession } from "../lib/actions/nft_session.ts";
import { spawnSession } from "../lib/actions/runner.ts";

const ignore = !Deno.env.get("CI") && !(await canRunLab("/usr/sbin/nft"));

async function sh(ns: string, ...argv: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args: ["netns", "exec", ns, ...argv] }).output();
  if (!out.success) throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name:
    "nft session: a line's error is its own, a failed line adds nothing, and 2 000 doors open change nothing",
  ignore,
  async fn() {
    const ns = `sesame-${Deno.pid}-session`;
    await new Deno.Command("ip", { args: ["netns", "add", ns] }).output();
    const session = new NftSession({
      spawn: (argv) => spawnSession(["/usr/sbin/ip", "netns", "exec", ns, ...argv]),
      run: () => Promise.reject(new Error("not used")),
      close() {},
    }, "/usr/sbin/nft");
    try {
      const opened = Array.from({ length: 2000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
      const load = new Deno.Command("ip", {
        args: ["netns", "exec", ns, "nft", "-f", "-"],
        stdin: "piped",
      }).spawn();
      const writer = load.stdin.getWriter();
      await writer.write(new TextEncoder().encode(
        "table inet sesame { set s { type ipv4_addr; flags timeout; }; }\n" +
          `add element inet sesame s { ${opened.map((a) => `${a} timeout 600s`).join(", ")} }\n`,
      ));
      await writer.close();
      assert((await load.status).success, "the set is loaded");

      const outcome = (commands: string[]) =>
        session.run(commands).then(() => "ok", (e) => e.message);
      const add = (a: string) => `add element inet sesame s { ${a} timeout 60000ms }`;
      // Alternating: each error is reported for its own line, never the next one's.
      for (let i = 0; i < 50; i++) {
        assertEquals(await outcome([add(`172.16.0.${i}`)]), "ok", `line ${i}`);
        assertMatch(
          await outcome([`add element inet sesame nosuch { 172.16.1.${i} }`]),
          /^nft: Error: No such file or directory/,
        );
      }
      // All or nothing: the good element of a failed line is not added.
      assertMatch(
        await outcome([add("172.16.2.1"), "add element inet sesame s { 1.2.3 }"]),
        /Error/,
      );
      // An element that is there already, created again: the backend tells it by this text.
      assertMatch(
        await outcome(["create element inet sesame s { 172.16.0.1 timeout 1000ms }"]),
        /File exists/,
      );
      const listed = await sh(ns, "nft", "-j", "list", "set", "inet", "sesame", "s");
      const elements = new Set(
        JSON.parse(listed).nftables.flatMap((o: { set?: { elem?: { elem: { val: string } }[] } }) =>
          (o.set?.elem ?? []).map((e) => e.elem.val)
        ),
      );
      assertEquals(elements.size, 2000 + 50, "the 2 000 and the 50 good lines");
      assert(!elements.has("172.16.2.1"), "the failed line added nothing");
    } finally {
      await session.close();
      await new Deno.Command("ip", { args: ["netns", "delete", ns] }).output();
    }
  },
});
