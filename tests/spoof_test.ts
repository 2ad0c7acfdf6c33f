/**
 * What a spoofer who knows a user's address can do to that user, measured on the engine
 * with each intake's evidence: with the capture intake (every knock forgeable) a forged
 * burst spoils the attempt under way but bans nobody, and the user's next attempt opens;
 * with sockets the same burst of completed handshakes would have banned the source (which a
 * spoofer cannot complete: it never gets the SYN-ACK).
 */
import { assertEquals } from "./_assert.ts";
import { KnockEngine } from "../lib/engine/engine.ts";
import { Counters } from "../lib/counters.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const T0 = 500_000 * 3_600_000 + 1000;
const USER = "192.0.2.7";

async function engine(forgeable: boolean) {
  const config = validateConfig({
    doors: { ssh: { secret: SECRET, ports: "20000-20099", length: 3, period: "1h", open: {} } },
  });
  const doors = userDoors(config.doors);
  const e = new KnockEngine(doors, { scan: config.scan, forgeable, counters: new Counters() });
  for (let c = 499_998; c <= 500_002; c++) {
    e.setSequence(0, c, (await codeForCounter(doors[0], c)).knocks, T0);
  }
  const code = async (c: number) => (await codeForCounter(doors[0], c)).knocks;
  return { e, code };
}

Deno.test("spoofing a user's address under the capture intake: the attempt under way is spoiled, nobody is banned, the next attempt opens", async () => {
  const { e, code } = await engine(true);
  const [k1, k2, k3] = await code(500_000);
  const taken = new Set([k1.port, k2.port, k3.port]);
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).filter((p) => !taken.has(p));
  const kinds: string[] = [];
  const knock = (port: number, at: number) =>
    kinds.push(
      ...e.handle(USER, "tcp", port, at).map((d) =>
        `${d.kind}:${"evidence" in d ? d.evidence : ""}`
      ),
    );
  knock(k1.port, T0);
  knock(k2.port, T0 + 50);
  // The spoofer: ten wrong pool knocks "from" the user in 100 ms (a scanner's burst).
  for (let i = 0; i < 10; i++) knock(wrong[i], T0 + 60 + i * 10);
  knock(k3.port, T0 + 200);
  assertEquals(kinds.filter((k) => k.startsWith("open")), [], "the spoiled attempt opened nothing");
  assertEquals(kinds.filter((k) => k.startsWith("scan")), [], "nobody was banned");
  assertEquals(e.bans(T0 + 300), []);
  // The user knocks again (the client takes the next counter): it opens.
  const next = await code(500_001);
  const opened = next.flatMap((k, i) => e.handle(USER, "tcp", k.port, T0 + 1000 + i * 50));
  assertEquals(opened.filter((d) => d.kind === "open").map((d) => d.source), [USER]);
});

Deno.test("the same burst as completed handshakes (the sockets intake) bans the source: only its owner can make one", async () => {
  const { e, code } = await engine(false);
  const taken = new Set((await code(500_000)).map((k) => k.port));
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).filter((p) => !taken.has(p));
  const kinds = wrong.slice(0, 10).flatMap((p, i) => e.handle(USER, "tcp", p, T0 + i * 10))
    .map((d) => d.kind);
  assertEquals(kinds.includes("scan"), true);
  assertEquals(e.bans(T0 + 300).map((b) => b.source), [USER]);
});
