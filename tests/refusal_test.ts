/**
 * Every failed knock is a refusal with a reason and an evidence (the engine), and the
 * failure lines are limited per source and door and in all (the daemon's RefusalLog).
 */
import { assertEquals } from "./_assert.ts";
import { type Decision, KnockEngine } from "../lib/engine/engine.ts";
import { Counters } from "../lib/counters.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { userDoors } from "../lib/config/types.ts";
import { codeForCounter } from "../lib/code.ts";
import { RefusalLog } from "../lib/daemon/refusal_log.ts";
import type { Knock } from "../lib/knock.ts";

const ALICE = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const BOB = "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const PERIOD = 30_000;
const T0 = 1_000 * PERIOD;

async function engineFor(raw: Record<string, unknown>, now = T0 + 1000) {
  const config = validateConfig(raw);
  const doors = userDoors(config.doors);
  const engine = new KnockEngine(doors, {
    scan: config.scan,
    allow: config.allow,
    deny: config.deny,
    counters: new Counters(),
  });
  for (const [i, door] of doors.entries()) {
    if (door.kind !== "rotating") continue;
    for (let c = 998; c <= 1003; c++) {
      engine.setSequence(i, c, (await codeForCounter(door, c)).knocks, now);
    }
  }
  return { engine, doors };
}

function send(engine: KnockEngine, source: string, knocks: readonly Knock[], start: number) {
  return knocks.flatMap((k, i) => [...engine.handle(source, k.protocol, k.port, start + i * 50)]);
}

const brief = (d: Decision) =>
  d.kind === "refused"
    ? `${d.kind} ${d.door} ${d.source} ${d.reason} ${d.evidence}`
    : d.kind === "open"
    ? `open ${d.door} ${d.source}${d.user ? ` ${d.user}` : ""}`
    : d.kind === "scan"
    ? `scan ${d.source} ${d.evidence}`
    : `${d.kind} ${d.door} ${d.source}${d.user ? ` ${d.user}` : ""} ${d.evidence}`;

const mixedDoor = {
  doors: {
    ssh: { secret: ALICE, ports: "20000-20099", protocol: "mixed", open: { log: true } },
  },
};

Deno.test("refusals: a wrong TCP knock is a refusal with TCP evidence; a correct attempt makes none", async () => {
  const { engine, doors } = await engineFor(mixedDoor);
  const code = await codeForCounter(doors[0], 1000);
  const taken = new Set(code.knocks.map((k) => k.port));
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).find((p) => !taken.has(p))!;
  assertEquals(
    engine.handle("192.0.2.9", "tcp", wrong, T0 + 1000).map(brief),
    ["refused ssh 192.0.2.9 wrong tcp"],
  );
  // A whole correct sequence (some knocks UDP on a mixed door): not one refusal.
  const decisions = send(engine, "192.0.2.7", code.knocks, T0 + 1000);
  assertEquals(decisions.map(brief), ["open ssh 192.0.2.7"]);
});

Deno.test("refusals: an attempt with a UDP knock, reset by a TCP knock, has UDP evidence", async () => {
  const { engine, doors } = await engineFor(mixedDoor);
  const code = await codeForCounter(doors[0], 1000);
  const udpAt = code.knocks.findIndex((k) => k.protocol === "udp");
  if (udpAt < 0) throw new Error("test secret: no UDP knock in the mixed code");
  // Knocks up to and including the first UDP one, then a wrong TCP knock.
  const taken = new Set(code.knocks.map((k) => `${k.port}/${k.protocol}`));
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).find((p) => !taken.has(`${p}/tcp`))!;
  const prefix = code.knocks.slice(0, udpAt + 1);
  assertEquals(send(engine, "192.0.2.8", prefix, T0 + 1000).map(brief), []);
  const reset = engine.handle("192.0.2.8", "tcp", wrong, T0 + 1000 + 50 * prefix.length);
  assertEquals(reset.map(brief), ["refused ssh 192.0.2.8 wrong udp"]);
});

Deno.test("refusals: progress that runs out of time is a timeout, at the next knock and at the sweep", async () => {
  const { engine, doors } = await engineFor({
    doors: { ssh: { secret: ALICE, ports: "20000-20099", sequence_timeout: "2s", open: {} } },
  });
  const code = await codeForCounter(doors[0], 1000);
  const taken = new Set(code.knocks.map((k) => k.port));
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).find((p) => !taken.has(p))!;
  send(engine, "192.0.2.5", code.knocks.slice(0, 2), T0 + 1000);
  assertEquals(
    engine.handle("192.0.2.5", "tcp", wrong, T0 + 5000).map(brief),
    ["refused ssh 192.0.2.5 timeout tcp"],
  );
  send(engine, "192.0.2.6", code.knocks.slice(0, 2), T0 + 6000);
  send(engine, "192.0.2.7", code.knocks.slice(0, 1), T0 + 6000);
  assertEquals(engine.sweep(T0 + 6000 + 1000).map(brief), []); // not yet
  // Only .6 was part way through: .5's progress already ended with its late knock.
  assertEquals(engine.sweep(T0 + 6000 + 5000).map(brief), [
    "refused ssh 192.0.2.6 timeout tcp",
    "refused ssh 192.0.2.7 timeout tcp",
  ]);
});

Deno.test("refusals: a denied source and a banned one are refused with their reason", async () => {
  const { engine } = await engineFor({
    deny: ["192.0.2.66"],
    listen: { scan_threshold: 2 },
    doors: { ssh: { secret: ALICE, ports: "20000-20099", protocol: "mixed", open: {} } },
  });
  assertEquals(
    engine.handle("192.0.2.66", "tcp", 20001, T0).map(brief),
    ["refused ssh 192.0.2.66 denied tcp"],
  );
  // A UDP sweep bans on UDP evidence: the later refusals on this mixed door say udp, even for TCP.
  const sweep = [20090, 20091, 20092, 20093].flatMap((p) =>
    engine.handle("198.51.100.7", "udp", p, T0 + 10).map(brief)
  );
  assertEquals(sweep.at(-1), "scan 198.51.100.7 udp");
  assertEquals(
    engine.handle("198.51.100.7", "tcp", 20001, T0 + 20).map(brief),
    ["refused ssh 198.51.100.7 banned udp"],
  );
});

Deno.test("users: each user's code opens the shared pool and names the user; one user's code is no other's", async () => {
  const { engine, doors } = await engineFor({
    doors: {
      team: {
        ports: "20000-20099",
        users: { alice: { secret: ALICE }, bob: { secret: BOB } },
        open: {},
      },
    },
  });
  assertEquals(doors.map((d) => d.kind === "rotating" && d.user), ["alice", "bob"]);
  const alice = await codeForCounter(doors[0], 1000);
  const bob = await codeForCounter(doors[1], 1000);
  assertEquals(send(engine, "192.0.2.1", alice.knocks, T0 + 1000).map(brief), [
    "open team 192.0.2.1 alice",
  ]);
  assertEquals(send(engine, "192.0.2.2", bob.knocks, T0 + 2000).map(brief), [
    "open team 192.0.2.2 bob",
  ]);
  // Used codes are per user: alice's code again is a replay of hers, and bob's stays his.
  assertEquals(send(engine, "192.0.2.3", alice.knocks, T0 + 3000).map(brief), [
    "replay team 192.0.2.3 alice tcp",
  ]);
  assertEquals(
    engine.used.isUsed({
      door: "team",
      user: "bob",
      secret: doors[1].kind === "rotating" ? doors[1].fingerprint : "",
    }, 1000),
    true,
  );
});

Deno.test("users: two users with one secret, and a bad user name, are refused with their place", () => {
  let message = "";
  try {
    validateConfig({
      doors: {
        team: {
          ports: "20000-20099",
          users: { alice: { secret: ALICE }, "b b": { secret: BOB }, carol: { secret: ALICE } },
        },
      },
    });
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(
    message.includes('doors.team.users.carol: has the same secret as user "alice"'),
    true,
    message,
  );
  assertEquals(message.includes("doors.team.users.b b: user name must be"), true, message);
});

Deno.test("RefusalLog: one line per source and door a minute, 100 a second in all, the rest counted", () => {
  const limits = new RefusalLog();
  let admitted = 0;
  for (let i = 0; i < 250; i++) if (limits.admit("ssh", `192.0.2.${i}`, 5_000)) admitted++;
  assertEquals(admitted, 100);
  assertEquals(limits.takeDropped(), 150);
  assertEquals(limits.takeDropped(), 0);
  // The next second has a budget again; a source already written waits its minute.
  assertEquals(limits.admit("ssh", "192.0.2.0", 6_000), false);
  assertEquals(limits.admit("ssh", "192.0.2.200", 6_000), true);
  assertEquals(limits.admit("ssh", "192.0.2.0", 65_001), true);
});

Deno.test("RefusalLog: memory stays bounded under a flood of sources", () => {
  const limits = new RefusalLog({ maxRemembered: 1000, perSecond: 1e9 });
  for (let i = 0; i < 20_000; i++) limits.admit("ssh", `10.0.${i >> 8}.${i & 255}`, i);
  // Bounded: the oldest are forgotten (they could be written again, which is the safe side).
  assertEquals(limits.admit("ssh", "10.0.78.31", 20_000), false); // the newest is remembered
});

Deno.test("refusals: a successful open leaves no failure behind, however many users share the pool", async () => {
  const secrets = [ALICE, BOB, ...[3, 4, 5].map((n) => ALICE.replace("AAEC", `AA${n}C`))];
  const raw = {
    doors: {
      team: {
        ports: "20000-20099",
        users: Object.fromEntries(secrets.map((secret, i) => [`u${i}`, { secret }])),
        open: {},
      },
    },
  };
  let opens = 0;
  const failures: string[] = [];
  // Every user's codes of the window, each from its own source (a code opens once), in
  // several engines: about a hundred opens.
  for (let round = 0; round < 7; round++) {
    const { engine, doors } = await engineFor(raw);
    let n = 0;
    for (const door of doors) {
      for (const counter of [999, 1000, 1001]) {
        const code = await codeForCounter(door, counter);
        const source = `10.${round}.0.${n++}`;
        for (const d of send(engine, source, code.knocks, T0 + 1000 + n * 300)) {
          if (d.kind === "open") opens++;
          else failures.push(brief(d));
        }
      }
    }
    failures.push(...engine.sweep(T0 + 60_000).map(brief));
  }
  assertEquals(opens, 105);
  assertEquals(failures, [], "no failure line for those who opened");
});

Deno.test("refusals: an attempt reset by forged UDP and finished with TCP knocks stays UDP evidence", async () => {
  const { engine, doors } = await engineFor(mixedDoor);
  const code = await codeForCounter(doors[0], 1000);
  const tcpOnly = code.knocks.map((k) => ({ ...k, protocol: "tcp" as const }));
  // The victim's first real TCP knock, a forged datagram "from" it, then its next TCP knocks.
  engine.handle("192.0.2.50", "tcp", tcpOnly[0].port, T0 + 1000);
  engine.handle("192.0.2.50", "udp", 20099, T0 + 1010);
  const after = tcpOnly.slice(1).flatMap((k, i) =>
    [...engine.handle("192.0.2.50", "tcp", k.port, T0 + 1020 + i * 10)].map(brief)
  );
  const later = engine.sweep(T0 + 60_000).map(brief);
  for (const line of [...after, ...later]) {
    assertEquals(line.endsWith(" udp"), true, `${line}: forged UDP preceded it`);
  }
});

Deno.test("RefusalLog: a flood of forgeable UDP lines does not crowd out the TCP lines fail2ban acts on", () => {
  const limits = new RefusalLog();
  for (let i = 0; i < 500; i++) limits.admit("dns", `198.51.100.${i % 250}.${i}`, 7_000, "udp");
  assertEquals(limits.admit("ssh", "192.0.2.66", 7_500, "tcp"), true);
});

Deno.test("users: a used code stays used when its secret moves under users: or its user is renamed", async () => {
  const { UsedCodes } = await import("../lib/engine/used_codes.ts");
  const used = new UsedCodes([{ door: "ssh", secret: "f1", counter: 1000 }]);
  assertEquals(used.isUsed({ door: "ssh", user: "admin", secret: "f1" }, 1000), true);
  used.use({ door: "ssh", user: "admin", secret: "f1", counter: 1001 });
  assertEquals(used.isUsed({ door: "ssh", user: "root", secret: "f1" }, 1001), true);
  assertEquals(used.isUsed({ door: "ssh", user: "bob", secret: "f2" }, 1001), false);
});

Deno.test("users: an address already open for alice, opened again by bob's code, is bob's (log, status, revoke --user)", async () => {
  const { Daemon } = await import("../lib/daemon/daemon.ts");
  const { MemoryListeners, DryRunFirewall } = await import("../lib/testing/mod.ts");
  const config = validateConfig({
    doors: {
      team: {
        ports: "20000-20099",
        users: { alice: { secret: ALICE }, bob: { secret: BOB } },
        open: { for: "60s", nft: { port: 22 } },
      },
    },
  });
  const events: string[] = [];
  let listeners: InstanceType<typeof MemoryListeners> | undefined;
  const daemon = await Daemon.start({
    config,
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
    onEvent: (e) => {
      if (e.kind === "opened" || e.kind === "extended") events.push(`${e.kind} ${e.user}`);
    },
  });
  try {
    const now = Date.now();
    for (const door of userDoors(config.doors)) {
      const code = await codeForCounter(door, Math.floor(now / PERIOD));
      for (const k of code.knocks) listeners!.knock("192.0.2.7", k.protocol, k.port);
      await daemon.settled();
    }
    assertEquals(events, ["opened alice", "extended bob"]);
    assertEquals(daemon.openDoors().map((r) => r.user), ["bob"]);
    const revoked = await daemon.revoke({ door: "team", user: "bob" });
    assertEquals(revoked.ok, true);
    assertEquals(daemon.openDoors(), []);
  } finally {
    await daemon.stop();
  }
});

/** A team door with `users` (and an action unless `withOpen` is false), on `ports`. */
function teamConfig(users: Record<string, unknown>, ports = "20000-20099", withOpen = true) {
  return validateConfig({
    doors: {
      team: { ports, users, ...(withOpen ? { open: { for: "60s", nft: { port: 22 } } } : {}) },
    },
  });
}

/** A daemon on the twins with alice's door open for 192.0.2.7. */
async function aliceIn() {
  const { Daemon } = await import("../lib/daemon/daemon.ts");
  const { MemoryListeners, DryRunFirewall } = await import("../lib/testing/mod.ts");
  const both = teamConfig({ alice: { secret: ALICE }, bob: { secret: BOB } });
  let listeners: InstanceType<typeof MemoryListeners> | undefined;
  const nft = new DryRunFirewall();
  const daemon = await Daemon.start({
    config: both,
    firewalls: { nft, iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
  });
  const alice = userDoors(both.doors)[0];
  const code = await codeForCounter(alice, Math.floor(Date.now() / PERIOD));
  for (const k of code.knocks) listeners!.knock("192.0.2.7", k.protocol, k.port);
  await daemon.settled();
  assertEquals(daemon.openDoors().map((r) => r.user), ["alice"]);
  return { daemon, nft, listeners: listeners! };
}

Deno.test("users: a reload that removes a user closes their doors; a refused reload closes nothing", async () => {
  const { daemon, nft } = await aliceIn();
  try {
    // A reload refused (a door without an action): nothing changes, alice stays in.
    await daemon.reload(teamConfig({ bob: { secret: BOB } }, undefined, false)).catch(() => {});
    assertEquals(daemon.openDoors().map((r) => r.user), ["alice"]);
    // The same removal, in force: her door closes (revoked in the firewall).
    await daemon.reload(teamConfig({ bob: { secret: BOB } }));
    assertEquals(daemon.openDoors(), []);
    assertEquals(nft.calls.includes("revoke team 192.0.2.7"), true, nft.calls.join("\n"));
  } finally {
    await daemon.stop();
  }
});

Deno.test("users: a reload that removes a user and then cannot bind a port still closes their doors, and says it hears nothing", async () => {
  const { daemon, nft, listeners } = await aliceIn();
  try {
    // Alice removed, and the new pool's ports are all held by another program.
    for (let p = 25000; p <= 25009; p++) listeners.refuse.set(`tcp/::/${p}`, "in use");
    for (let p = 25000; p <= 25009; p++) listeners.refuse.set(`tcp/0.0.0.0/${p}`, "in use");
    let error = "";
    await daemon.reload(teamConfig({ bob: { secret: BOB } }, "25000-25009")).catch((e) =>
      error = (e as Error).message
    );
    assertEquals(error.includes("no knock port could be bound"), true, error);
    assertEquals(daemon.openDoors(), [], "alice's door closed all the same");
    assertEquals(nft.calls.includes("revoke team 192.0.2.7"), true, nft.calls.join("\n"));
  } finally {
    await daemon.stop();
  }
});

Deno.test("refusals: knocks the daemon received out of order open within reorder_window; past it the loss is reason=order, evidence=none, and blames no one", async () => {
  const { blamesClient } = await import("../lib/engine/decision.ts");
  const config = validateConfig({
    listen: { reorder_window: "500ms" },
    doors: { legacy: { sequence: [7000, 7001, 7002], decoys: 0, sequence_timeout: "10s" } },
  });
  const counters = new Counters();
  const engine = new KnockEngine(config.doors, {
    reorderWindowMs: config.reorderWindowMs,
    counters,
  });
  const at = (source: string, port: number, time: number) =>
    engine.handle(source, "tcp", port, time).map(brief);
  // Delivered 2nd, 3rd, 1st, the 1st 450 ms late (a burst's accept loops): it opens.
  assertEquals(at("192.0.2.7", 7001, 0), []);
  assertEquals(at("192.0.2.7", 7002, 10), []);
  assertEquals(at("192.0.2.7", 7000, 450), ["open legacy 192.0.2.7"]);
  assertEquals(counters.reorderWait.count, 1, "the wait is measured");
  assertEquals(counters.reorderWait.sum, 0.45);
  // The same, the 1st 600 ms late: past the window, the attempt is lost, and said so.
  assertEquals(at("192.0.2.8", 7001, 1000), []);
  const lost = engine.handle("192.0.2.8", "tcp", 7000, 1600);
  assertEquals(lost.map(brief), ["refused legacy 192.0.2.8 order none"]);
  const refusal = lost[0];
  assertEquals(
    refusal.kind === "refused" && blamesClient(refusal.reason, refusal.evidence),
    false,
    "a loss of the delivery's making never counts against the client",
  );
});

Deno.test("refusals: one datagram taints only the doors that take UDP: a TCP-only door's misses stay TCP evidence", async () => {
  const { engine, doors } = await engineFor({
    doors: {
      ssh: { secret: ALICE, ports: "20000-20099", open: { log: true } },
      legacy: { sequence: [7000, "7001/udp", 7002], decoys: 0, open: { log: true } },
    },
  });
  const taken = new Set((await codeForCounter(doors[0], 1000)).knocks.map((k) => k.port));
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).filter((p) => !taken.has(p));
  // A scanner sends one datagram on the UDP door's pool, then misses on the TCP door.
  engine.handle("192.0.2.66", "udp", 7001, T0 + 1000);
  assertEquals(engine.handle("192.0.2.66", "tcp", wrong[0], T0 + 2000).map(brief), [
    "refused ssh 192.0.2.66 wrong tcp",
  ]);
  // (On the door that takes UDP, the datagram's attempt makes its failures UDP evidence:
  // tested with forged UDP above.)
});

Deno.test("refusals: a knock that fits nothing is `wrong`, also when it ends an attempt lost to the order (a scanner cannot hide as `order`)", async () => {
  const { engine, doors } = await engineFor({
    doors: { ssh: { secret: ALICE, ports: "20000-20099", length: 4, open: { log: true } } },
  });
  const codes = await Promise.all(
    [998, 999, 1000, 1001, 1002, 1003].map((c) => codeForCounter(doors[0], c)),
  );
  const used = new Set(codes.flatMap((c) => c.knocks.map((k) => k.port)));
  const wrong = [...Array(100).keys()].map((i) => 20000 + i).find((p) => !used.has(p))!;
  // The second knock of the current code: held, ahead of its turn.
  const second = codes[2].knocks[1];
  assertEquals(engine.handle("192.0.2.9", "tcp", second.port, T0 + 1000).map(brief), []);
  // 600 ms later (past the window), a port of no code: the scan's miss, on TCP evidence.
  assertEquals(engine.handle("192.0.2.9", "tcp", wrong, T0 + 1600).map(brief), [
    "refused ssh 192.0.2.9 wrong tcp",
  ]);
});

Deno.test("refusals: a line that blames no one does not keep the next blaming line of that minute out of the log", () => {
  const limits = new RefusalLog();
  assertEquals(limits.admit("ssh", "192.0.2.7", 0, "none", false), true); // order
  assertEquals(limits.admit("ssh", "192.0.2.7", 1000, "tcp", true), true); // wrong
  assertEquals(limits.admit("ssh", "192.0.2.7", 2000, "tcp", true), false, "one a minute");
  assertEquals(limits.admit("ssh", "192.0.2.7", 2000, "udp", false), false);
});
