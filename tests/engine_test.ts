import { assertEquals } from "./_assert.ts";
import { type Decision, KnockEngine } from "../lib/engine/engine.ts";
import { UsedCodes } from "../lib/engine/used_codes.ts";
import { Counters } from "../lib/counters.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { codeForCounter } from "../lib/code.ts";
import { parseAddress } from "../lib/address.ts";
import type { Knock } from "../lib/knock.ts";
import type { RotatingDoor } from "../lib/config/types.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const PERIOD = 30_000;
const T0 = 1_000 * PERIOD; // start of counter 1000

function config(extra = "", door = "") {
  return validateConfig({
    ...(extra ? JSON.parse(extra) : {}),
    doors: {
      ssh: {
        secret: SECRET,
        ports: "20000-20099",
        length: 4,
        period: "30s",
        skew: 1,
        sequence_timeout: "10s",
        open: { log: true },
        ...(door ? JSON.parse(door) : {}),
      },
      legacy: { sequence: [7000, "8000/udp", 9000], open: { log: true } },
    },
  });
}

/** An engine with counters c-1…c+1 installed, as the daemon keeps them. */
async function engineAt(now: number, extra = "", door = "") {
  const { doors, allow, deny } = config(extra, door);
  const counters = new Counters();
  const engine = new KnockEngine(doors, { allow, deny, counters });
  const t = Math.floor(now / PERIOD);
  const bound = doors[0].kind === "rotating" && doors[0].bindSource;
  for (let c = t - 1; c <= t + 2 && !bound; c++) {
    engine.setSequence(0, c, (await codeForCounter(doors[0], c)).knocks, now);
  }
  return { engine, doors, counters };
}

/** Decisions about doors (opens, replays, skews): what these tests look at. */
type DoorDecision = Exclude<Extract<Decision, { door: unknown }>, { kind: "refused" }>;

/** The counter a decision is about: the code used (open) or the one refused. */
const counterOf = (d: DoorDecision) => d.kind === "open" ? d.code?.counter : d.counter;

function send(
  engine: KnockEngine,
  source: string,
  knocks: readonly Knock[],
  start: number,
  gap = 50,
): DoorDecision[] {
  const out: DoorDecision[] = [];
  knocks.forEach((k, i) =>
    out.push(
      ...(engine.handle(source, k.protocol, k.port, start + i * gap).filter((d) =>
        d.kind !== "refused" && d.kind !== "scan"
      ) as DoorDecision[]),
    )
  );
  return out;
}

Deno.test("KnockEngine opens a rotating door for the knocking source only", async () => {
  const { engine, doors } = await engineAt(T0 + 1000);
  const code = await codeForCounter(doors[0], 1000);
  const decisions = send(engine, "192.0.2.7", code.knocks, T0 + 1000);
  assertEquals(decisions.map((d) => [d.kind, d.source, d.door, counterOf(d)]), [[
    "open",
    "192.0.2.7",
    "ssh",
    1000,
  ]]);
});

Deno.test("KnockEngine never accepts a used code again, from any source", async () => {
  const { engine, doors } = await engineAt(T0 + 1000);
  const code = await codeForCounter(doors[0], 1000);
  assertEquals(send(engine, "192.0.2.7", code.knocks, T0 + 1000)[0].kind, "open");
  // An observer replays the same code from elsewhere in the same period.
  assertEquals(send(engine, "198.51.100.9", code.knocks, T0 + 2000).map((d) => d.kind), ["replay"]);
  // And the owner cannot use it twice either.
  assertEquals(send(engine, "192.0.2.7", code.knocks, T0 + 3000).map((d) => d.kind), ["replay"]);
});

Deno.test("KnockEngine carries used codes across a restart", async () => {
  const first = await engineAt(T0 + 1000);
  const code = await codeForCounter(first.doors[0], 1000);
  send(first.engine, "192.0.2.7", code.knocks, T0 + 1000);
  const { doors } = config();
  const restarted = new KnockEngine(doors, { used: new UsedCodes(first.engine.used.marks()) });
  restarted.setSequence(0, 1000, code.knocks, T0 + 5000);
  assertEquals(send(restarted, "198.51.100.9", code.knocks, T0 + 5000).map((d) => d.kind), [
    "replay",
  ]);
});

Deno.test("KnockEngine accepts the previous period within skew and refuses it after", async () => {
  const { doors } = config();
  const previous = await codeForCounter(doors[0], 999);
  const inSkew = await engineAt(T0 + 10_000);
  assertEquals(
    send(inSkew.engine, "192.0.2.7", previous.knocks, T0 + 10_000).map(counterOf),
    [999],
  );
  const late = await engineAt(T0 + PERIOD + 10_000); // now in counter 1001: 999 is two behind
  assertEquals(send(late.engine, "192.0.2.7", previous.knocks, T0 + PERIOD + 10_000), []);
  const next = await codeForCounter(doors[0], 1001);
  assertEquals(send(inSkew.engine, "192.0.2.8", next.knocks, T0 + 10_000).map(counterOf), [
    1001,
  ]);
});

Deno.test("KnockEngine keeps interleaved sources apart", async () => {
  const { engine, doors } = await engineAt(T0 + 1000, "", '{"bind_source": true}');
  const a = "192.0.2.7", b = "2001:db8::9";
  const ca = await codeForCounter(doors[0], 1000, parseAddress(a));
  const cb = await codeForCounter(doors[0], 1000, parseAddress(b));
  for (const [source, code] of [[a, ca], [b, cb]] as const) {
    engine.setBoundSequence(source, 0, 1000, code.knocks, T0);
  }
  const opened: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (const d of engine.handle(a, "tcp", ca.knocks[i].port, T0 + 1000 + i * 100)) {
      opened.push(d.source);
    }
    for (const d of engine.handle(b, "tcp", cb.knocks[i].port, T0 + 1001 + i * 100)) {
      opened.push(d.source);
    }
  }
  assertEquals(opened.sort(), [a, b].sort());
});

Deno.test("KnockEngine: a bind_source code opens nothing from another address", async () => {
  const { engine, doors } = await engineAt(T0 + 1000, "", '{"bind_source": true}');
  const code = await codeForCounter(doors[0], 1000, parseAddress("192.0.2.7"));
  assertEquals(
    engine.missingBound("198.51.100.9", "tcp", code.knocks[0].port, T0 + 1000).length,
    3,
  );
  for (let c = 999; c <= 1001; c++) {
    const own = await codeForCounter(doors[0], c, parseAddress("198.51.100.9"));
    engine.setBoundSequence("198.51.100.9", 0, c, own.knocks, T0 + 1000);
  }
  assertEquals(engine.missingBound("198.51.100.9", "tcp", code.knocks[0].port, T0 + 1000), []);
  assertEquals(send(engine, "198.51.100.9", code.knocks, T0 + 1000), []);
  // ... while the owner's prefix (/32 by default) gets its own one-time code.
  engine.setBoundSequence("192.0.2.7", 0, 1000, code.knocks, T0 + 1000);
  assertEquals(send(engine, "192.0.2.7", code.knocks, T0 + 2000).map((d) => d.kind), ["open"]);
});

Deno.test("KnockEngine opens a static door on every correct sequence, like knockd", async () => {
  const { engine } = await engineAt(T0);
  const seq: Knock[] = [{ port: 7000, protocol: "tcp" }, { port: 8000, protocol: "udp" }, {
    port: 9000,
    protocol: "tcp",
  }];
  assertEquals(send(engine, "192.0.2.7", seq, T0).map((d) => d.kind), ["open"]);
  assertEquals(send(engine, "192.0.2.7", seq, T0 + 1000).map((d) => d.kind), ["open"]);
  const wrongProto: Knock[] = [seq[0], { port: 8000, protocol: "tcp" }, seq[2]];
  assertEquals(send(engine, "192.0.2.8", wrongProto, T0), []);
});

Deno.test("KnockEngine ignores knocks on ports outside every pool", async () => {
  const { engine, doors } = await engineAt(T0 + 1000);
  const code = await codeForCounter(doors[0], 1000);
  const source = "192.0.2.7";
  engine.handle(source, "tcp", code.knocks[0].port, T0 + 1000);
  engine.handle(source, "tcp", 22, T0 + 1001); // not a pool port: must not reset
  engine.handle(source, "udp", code.knocks[1].port, T0 + 1002); // UDP is not in this TCP door's pool
  const rest = send(engine, source, code.knocks.slice(1), T0 + 1100);
  assertEquals(rest.map((d) => d.kind), ["open"]);
  assertEquals(engine.trackedSources, 1);
});

Deno.test("KnockEngine applies allow and deny lists before tracking", async () => {
  const { engine, doors, counters } = await engineAt(
    T0 + 1000,
    '{"allow": ["192.0.2.0/24", "2001:db8::/32"], "deny": ["192.0.2.66"]}',
  );
  const code = await codeForCounter(doors[0], 1000);
  assertEquals(send(engine, "198.51.100.1", code.knocks, T0 + 1000), []);
  assertEquals(send(engine, "192.0.2.66", code.knocks, T0 + 1000), []);
  assertEquals(engine.trackedSources, 0);
  assertEquals(counters.ignored, 8);
  assertEquals(send(engine, "192.0.2.7", code.knocks, T0 + 1000).map((d) => d.kind), ["open"]);
});

Deno.test("KnockEngine bounds memory: a flood of sources never grows past the cap", async () => {
  const { doors } = config();
  const engine = new KnockEngine(doors, { maxSources: 1000 });
  const code = await codeForCounter(doors[0], 1000);
  engine.setSequence(0, 1000, code.knocks, T0);
  for (let i = 0; i < 20_000; i++) {
    engine.handle(
      `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      "tcp",
      20000 + (i % 100),
      T0 + i / 100,
    );
  }
  assertEquals(engine.trackedSources, 1000);
  // A legitimate sequence sent during the flood still opens (its source is the freshest).
  const out: Decision[] = [];
  code.knocks.forEach((k, i) => {
    out.push(...engine.handle("192.0.2.7", k.protocol, k.port, T0 + 300 + i * 10));
    for (let j = 0; j < 50; j++) {
      engine.handle(`10.9.${i}.${j}`, "tcp", 20000 + j, T0 + 300 + i * 10);
    }
  });
  assertEquals(out.map((d) => d.kind), ["open"]);
  engine.sweep(T0 + 60_000);
  assertEquals(engine.trackedSources, 0);
});

Deno.test("KnockEngine drops sequences of counters that left the window (and the skew probes)", async () => {
  const { engine } = await engineAt(T0 + 1000);
  assertEquals(engine.installedCounters(0), [999, 1000, 1001, 1002]);
  const { doors } = config();
  engine.setSequence(
    0,
    1003,
    (await codeForCounter(doors[0] as RotatingDoor, 1003)).knocks,
    T0 + 4 * PERIOD,
  );
  // Now counter 1004: the window is 1003…1005, and 1001, 1002 are still followed to detect skew.
  assertEquals(engine.installedCounters(0), [1001, 1002, 1003]);
});

Deno.test("KnockEngine: a code two periods off opens nothing and says the clocks disagree", async () => {
  const { engine, doors } = await engineAt(T0 + 1000); // counter 1000, skew 1
  engine.setSequence(0, 998, (await codeForCounter(doors[0], 998)).knocks, T0 + 1000);
  const ahead = send(engine, "192.0.2.7", (await codeForCounter(doors[0], 1002)).knocks, T0 + 1000);
  assertEquals(ahead.map((d) => [d.kind, "periods" in d ? d.periods : null]), [["skew", 2]]);
  const behind = send(engine, "192.0.2.8", (await codeForCounter(doors[0], 998)).knocks, T0 + 2000);
  assertEquals(behind.map((d) => [d.kind, "periods" in d ? d.periods : null]), [["skew", -2]]);
  // Within skew it still opens.
  const within = send(
    engine,
    "192.0.2.9",
    (await codeForCounter(doors[0], 1001)).knocks,
    T0 + 3000,
  );
  assertEquals(within.map((d) => d.kind), ["open"]);
});

Deno.test("KnockEngine refuses a used code replayed in the next period, while it is still in the window", async () => {
  const { engine, doors } = await engineAt(T0 + 1000);
  const code = await codeForCounter(doors[0], 1000);
  assertEquals(send(engine, "192.0.2.7", code.knocks, T0 + 1000).map((d) => d.kind), ["open"]);
  engine.setSequence(0, 1003, (await codeForCounter(doors[0], 1003)).knocks, T0 + PERIOD + 1000);
  // Counter 1001 now: 1000 is T−1, still accepted for an unused code, but this one is used.
  assertEquals(send(engine, "198.51.100.9", code.knocks, T0 + PERIOD + 1000).map((d) => d.kind), [
    "replay",
  ]);
});
