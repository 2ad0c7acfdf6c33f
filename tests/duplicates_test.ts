/**
 * Knocks heard twice (a SYN the client's kernel retransmits after about 1 s, a browser's
 * second connection) do not break an attempt under way; a static sequence that repeats a
 * port still opens; knocking a whole code again after an open is a new attempt.
 */
import { assertEquals } from "./_assert.ts";
import { KnockEngine } from "../lib/engine/engine.ts";
import { Counters } from "../lib/counters.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const PERIOD = 3_600_000;
const T0 = 500_000 * PERIOD + 1000;

async function setup(raw: Record<string, unknown>) {
  const doors = userDoors(validateConfig(raw).doors);
  const counters = new Counters();
  const engine = new KnockEngine(doors, { counters });
  for (const [i, door] of doors.entries()) {
    if (door.kind !== "rotating") continue;
    for (let c = 499_998; c <= 500_002; c++) {
      engine.setSequence(i, c, (await codeForCounter(door, c)).knocks, T0);
    }
  }
  return { engine, doors, counters };
}

Deno.test("duplicates: a retransmitted first knock, 1 s later and mid-attempt, does not reset it", async () => {
  const { engine, doors, counters } = await setup({
    doors: { ssh: { secret: SECRET, ports: "20000-20099", length: 3, period: "1h", open: {} } },
  });
  const [k1, k2, k3] = (await codeForCounter(doors[0], 500_000)).knocks;
  const src = "192.0.2.7";
  const kinds = [
    engine.handle(src, "tcp", k1.port, T0),
    engine.handle(src, "tcp", k2.port, T0 + 50),
    engine.handle(src, "tcp", k1.port, T0 + 1050), // the kernel's retransmission of knock 1
    engine.handle(src, "tcp", k3.port, T0 + 1100),
  ].map((ds) => ds.map((d) => d.kind).join(","));
  assertEquals(kinds, ["", "", "", "open"]);
  assertEquals(counters.duplicates, 1);
});

Deno.test("duplicates: a static sequence that repeats a port opens; knocking it again after the open opens again", async () => {
  const { engine } = await setup({
    doors: { legacy: { sequence: [7000, 7000, 8000], decoys: 0, open: {} } },
  });
  const src = "192.0.2.8";
  const knock = (port: number, at: number) =>
    engine.handle(src, "tcp", port, at).map((d) => d.kind).join(",");
  assertEquals([knock(7000, T0), knock(7000, T0 + 50), knock(8000, T0 + 100)], ["", "", "open"]);
  assertEquals([knock(7000, T0 + 200), knock(7000, T0 + 250), knock(8000, T0 + 300)], [
    "",
    "",
    "open",
  ]);
});

Deno.test("duplicates: the last knock's twins after the open (a browser's extra connections) are ignored, not a new attempt", async () => {
  const { engine, doors, counters } = await setup({
    doors: { ssh: { secret: SECRET, ports: "20000-20099", length: 3, period: "1h", open: {} } },
  });
  const [k1, k2, k3] = (await codeForCounter(doors[0], 500_000)).knocks;
  const src = "192.0.2.9";
  const all = [k1, k2, k3].flatMap((k, i) => engine.handle(src, "tcp", k.port, T0 + i * 50));
  assertEquals(all.map((d) => d.kind), ["open"]);
  // Firefox retries a fetch up to ten times: the last knock again and again.
  const after = [1, 2, 3, 4].flatMap((i) => engine.handle(src, "tcp", k3.port, T0 + 150 + i * 5));
  assertEquals(after, []);
  assertEquals(counters.duplicates, 4);
  assertEquals(engine.sweep(T0 + 60_000).map((d) => d.kind), [], "no attempt left to time out");
});

Deno.test("duplicates: the next code sharing a port with the one just used, delivered out of order, still opens (not taken for a twin)", async () => {
  const doors = userDoors(
    validateConfig({
      doors: {
        ssh: { secret: SECRET, ports: "20000-20099", length: 4, period: "1h", skew: 2, open: {} },
      },
    }).doors,
  );
  const knocksAt = async (c: number) => (await codeForCounter(doors[0], c)).knocks;
  // Two consecutive codes where a later knock of the second is a knock of the first.
  let c = 500_000;
  let shared = -1;
  for (; c < 500_500 && shared < 0; c++) {
    const [a, b] = [await knocksAt(c), await knocksAt(c + 1)];
    shared = b.findIndex((k, i) => i > 0 && a.some((f) => f.port === k.port));
  }
  c--;
  assertEquals(shared > 0, true, "a pair of codes sharing a port exists");
  const t0 = c * 3_600_000 + 1000;
  const engine = new KnockEngine(doors, { counters: new Counters() });
  for (let k = c - 2; k <= c + 2; k++) engine.setSequence(0, k, await knocksAt(k), t0);
  const [first, second] = [await knocksAt(c), await knocksAt(c + 1)];
  const src = "192.0.2.10";
  const opened = (ds: readonly { kind: string }[]) => ds.filter((d) => d.kind === "open").length;
  let opens = 0;
  for (const [i, k] of first.entries()) {
    opens += opened(engine.handle(src, "tcp", k.port, t0 + i * 20));
  }
  assertEquals(opens, 1);
  // The next code at once, its shared knock overtaking the first knock.
  const order = [second[shared], ...second.filter((_, i) => i !== shared)];
  for (const [i, k] of order.entries()) {
    opens += opened(engine.handle(src, "tcp", k.port, t0 + 200 + i * 20));
  }
  assertEquals(opens, 2);
});

Deno.test("duplicates: a static sequence repeating a port, its second use arriving early, still opens", async () => {
  const { engine } = await setup({
    doors: { legacy: { sequence: [7000, 8000, 7000, 9000], decoys: 0, open: {} } },
  });
  const src = "192.0.2.11";
  const kinds = [[7000, 0], [7000, 50], [8000, 100], [9000, 300]].flatMap(([port, at]) =>
    engine.handle(src, "tcp", port, T0 + at)
  ).map((d) => d.kind);
  assertEquals(kinds, ["open"]);
});
