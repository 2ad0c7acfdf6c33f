import { assertEquals } from "./_assert.ts";
import { type Decision, KnockEngine } from "../lib/engine/engine.ts";
import { Counters } from "../lib/counters.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { codeForCounter } from "../lib/code.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const T0 = 1000 * 30_000;

async function engine() {
  const config = validateConfig({
    doors: {
      ssh: { secret: SECRET, ports: "20000-20099", length: 4, open: { log: true } },
      ascending: { sequence: [7000, 7001, 7002], open: { log: true } },
    },
  });
  const counters = new Counters();
  const e = new KnockEngine(config.doors, { scan: config.scan, counters });
  for (let c = 999; c <= 1001; c++) {
    e.setSequence(0, c, (await codeForCounter(config.doors[0], c)).knocks, T0);
  }
  return { e, counters, config, code: (await codeForCounter(config.doors[0], 1000)).knocks };
}

/** What the scan tests look at: opens and bans (every failed knock is also a refusal: refusal_test.ts). */
const kinds = (ds: readonly Decision[]) =>
  ds.filter((d) => d.kind !== "refused").map((d) => d.kind);

Deno.test("scan detection: an in-order sweep never opens a static door with ascending ports", async () => {
  const { e } = await engine();
  const seen: string[] = [];
  for (let port = 1; port <= 65535; port++) {
    seen.push(...kinds(e.handle("192.0.2.66", "tcp", port, T0 + port / 10)));
  }
  assertEquals(seen, ["scan"]); // it reached decoy 6998 first, and was ignored from then on
  // The same three knocks from a real knocker open it.
  const ok = [7000, 7001, 7002].flatMap((p, i) =>
    kinds(e.handle("192.0.2.7", "tcp", p, T0 + 10_000 + i * 50))
  );
  assertEquals(ok, ["open"]);
});

Deno.test("scan detection: a random-order scan of every port never opens a door", async () => {
  for (let round = 0; round < 5; round++) {
    const { e } = await engine();
    const ports = Array.from({ length: 65535 }, (_, i) => i + 1);
    for (let i = ports.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [ports[i], ports[j]] = [ports[j], ports[i]];
    }
    const seen = ports.flatMap((port, i) =>
      kinds(e.handle("192.0.2.66", "tcp", port, T0 + i / 20))
    );
    assertEquals(seen.filter((k) => k === "open"), [], `round ${round}`);
  }
});

Deno.test("scan detection: a sweep of a rotating pool is caught before it can finish the code", async () => {
  const { e, config } = await engine();
  const seen: string[] = [];
  for (let port = 20000; port <= 20099; port++) {
    seen.push(...kinds(e.handle("192.0.2.66", "tcp", port, T0 + port - 20000)));
  }
  assertEquals(seen, ["scan"]);
  assertEquals(config.scan.threshold, 6);
});

Deno.test("scan detection: a scanner is ignored on every door until its cool-down ends, others are not", async () => {
  const { e, counters, config, code } = await engine();
  assertEquals(kinds(e.handle("192.0.2.66", "tcp", 6999, T0)), ["scan"]); // a decoy of the static door
  const during = code.flatMap((k, i) =>
    kinds(e.handle("192.0.2.66", k.protocol, k.port, T0 + 100 + i * 50))
  );
  assertEquals(during, [], "the rotating door ignores it too");
  const other = code.flatMap((k, i) =>
    kinds(e.handle("192.0.2.7", k.protocol, k.port, T0 + 100 + i * 50))
  );
  assertEquals(other, ["open"]);
  const after = [7000, 7001, 7002].flatMap((p, i) =>
    kinds(e.handle("192.0.2.66", "tcp", p, T0 + config.scan.cooldownMs + 1000 + i * 50))
  );
  assertEquals(after, ["open"]);
  assertEquals(counters.scanners, 1);
});

Deno.test("scan detection: a retry of the same code, and a stray knock, do not count as scanning", async () => {
  const { e, code } = await engine();
  const stray = { port: code[0].port === 20050 ? 20051 : 20050, protocol: "tcp" as const };
  const first = [code[0], code[1], stray, code[0]].flatMap((k, i) =>
    kinds(e.handle("192.0.2.7", k.protocol, k.port, T0 + i * 50))
  );
  assertEquals(first, []);
  const retry = code.flatMap((k, i) =>
    kinds(e.handle("192.0.2.7", k.protocol, k.port, T0 + 500 + i * 50))
  );
  assertEquals(retry, ["open"]);
});
