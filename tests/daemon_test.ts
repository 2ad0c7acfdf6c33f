import { assert, assertEquals } from "./_assert.ts";
import { asKnocks, knockAll, randomBase, SECRET, SECRET_B64, startDaemon } from "./_daemon.ts";
import { ManualClock } from "../lib/testing/mod.ts";
import { referenceSequence } from "./_reference.ts";
import { tempDir } from "./_cli.ts";
import type { DaemonEvent } from "../lib/daemon/daemon.ts";
import type { Knock } from "../lib/knock.ts";

const PERIOD_S = 30;
const T0 = 59_000_000 * PERIOD_S * 1000; // start of counter 59 000 000 (late 2026)

function yaml(base: number, extra = "") {
  return `
listen: { addresses: ["::"] }
${extra}
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 49}"
    length: 4
    period: ${PERIOD_S}s
    sequence_timeout: 2s
    open: { for: 1s, command: ["/sbin/allow", "{ip}", "{door}"], close_command: ["/sbin/deny", "{ip}", "{door}"] }
  mixed:
    secret: "${SECRET_B64}"
    ports: "${base + 50}-${base + 59}"
    length: 3
    protocol: mixed
    period: ${PERIOD_S}s
    open: { for: 1s }
  near:
    secret: "${SECRET_B64}"
    ports: "${base + 60}-${base + 89}"
    bind_source: true
    period: ${PERIOD_S}s
    open: { for: 1s }
  legacy:
    sequence: [${base + 90}, "${base + 91}/udp", ${base + 92}]
    open: { for: 1s }
`;
}

/** The spec's sequence for a door of the config above, computed by the independent implementation. */
function code(
  base: number,
  door: "ssh" | "mixed" | "near",
  counter: number,
  source?: string,
): Knock[] {
  const pools = {
    ssh: [base, 50, 4, "tcp"],
    mixed: [base + 50, 10, 3, "mixed"],
    near: [base + 60, 30, 4, "tcp"],
  } as const;
  const [start, n, length, mode] = pools[door];
  return asKnocks(referenceSequence({
    secret: SECRET,
    door,
    counter: BigInt(counter),
    candidates: Array.from({ length: n }, (_, i) => start + i),
    length,
    mode,
    source: source ? { family: 4, bytes: source.split(".").map(Number), prefix: 32 } : undefined,
  }));
}

const opened = (events: DaemonEvent[]) =>
  events.filter((e) => e.kind === "opened").map((e) =>
    `${(e as { door: string }).door} ${(e as { source: string }).source}`
  );

Deno.test("listen: a correct sequence opens the door for that source only", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  await knockAll("127.0.0.1", code(base, "ssh", 59_000_000), { localAddress: "127.0.0.2" });
  await d.heard(4);
  assertEquals(opened(d.events), ["ssh 127.0.0.2"]);
  assertEquals(d.runner.runs, [["/sbin/allow", "127.0.0.2", "ssh"]]);
  assertEquals(d.daemon.openDoors().map((r) => [r.door, r.source, r.close]), [["ssh", "127.0.0.2", [
    "/sbin/deny",
    "127.0.0.2",
    "ssh",
  ]]]);
});

Deno.test("listen: wrong order, wrong protocol, a stray knock and a timeout open nothing", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  const good = code(base, "ssh", 59_000_000);
  const stray = {
    port: good.find((_, i) => i === 0)!.port === base ? base + 1 : base,
    protocol: "tcp",
  } as Knock;
  // Knocks paced on the clock, `gap` ms apart.
  let heard = 0;
  const paced = async (knocks: Knock[], localAddress: string, gap: number) => {
    for (const k of knocks) {
      await knockAll("127.0.0.1", [k], { localAddress });
      await d.heard(++heard);
      clock.advance(gap);
    }
  };
  // Out of order by more than the reorder window (500 ms).
  await paced([good[1], good[0], good[2], good[3]], "127.0.0.3", 600);
  await knockAll("127.0.0.1", good.map((k) => ({ ...k, protocol: "udp" as const })), {
    localAddress: "127.0.0.4",
  });
  await paced([good[0], good[1], stray, good[2], good[3]], "127.0.0.5", 30);
  // A timeout: the last knock comes 3 s after the first; the door allows 2 s.
  await knockAll("127.0.0.1", good.slice(0, 3), { localAddress: "127.0.0.6" });
  await d.heard(12); // 4 + 5 + 3 TCP knocks (no UDP socket listens on a TCP door's pool)
  clock.advance(3000);
  await knockAll("127.0.0.1", good.slice(3), { localAddress: "127.0.0.6" });
  await d.heard(13);
  assertEquals(opened(d.events), []);
  assertEquals(d.runner.runs, []);
  // The same daemon still opens for a correct knock: the refusals above were not a broken daemon.
  await knockAll("127.0.0.1", good, { localAddress: "127.0.0.7" });
  await d.waitFor((e) => e.kind === "opened");
  assertEquals(opened(d.events), ["ssh 127.0.0.7"]);
});

Deno.test("listen: a used code replayed from another source is refused, also after a restart", async () => {
  await using dir = await tempDir();
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  const config = yaml(base, `state_file: ${dir.path}/state.json`);
  const good = code(base, "ssh", 59_000_000);
  {
    await using d = await startDaemon(config, { clock });
    await knockAll("127.0.0.1", good, { localAddress: "127.0.0.2" });
    await d.waitFor((e) => e.kind === "opened");
    await knockAll("127.0.0.1", good, { localAddress: "127.0.0.3" });
    await d.waitFor((e) => e.kind === "replay");
    assertEquals(opened(d.events), ["ssh 127.0.0.2"]);
  }
  clock.advance(1000);
  await using again = await startDaemon(config, { clock });
  await knockAll("127.0.0.1", good, { localAddress: "127.0.0.4" });
  const replay = await again.waitFor((e) => e.kind === "replay");
  assertEquals(replay, {
    kind: "replay",
    door: "ssh",
    source: "127.0.0.4",
    counter: 59_000_000,
    evidence: "tcp",
  });
  assertEquals(opened(again.events), []);
});

Deno.test("listen: the previous period's code works within skew and not after", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000); // counter 59 000 000: window 58 999 999 … 59 000 001
  await using d = await startDaemon(yaml(base), { clock });
  await knockAll("127.0.0.1", code(base, "ssh", 58_999_999), { localAddress: "127.0.0.2" });
  await d.waitFor((e) => e.kind === "opened");
  clock.advance(PERIOD_S * 1000); // counter 59 000 001: window 59 000 000 … 59 000 002
  await knockAll("127.0.0.1", code(base, "ssh", 58_999_999), { localAddress: "127.0.0.3" });
  await d.heard(8);
  assertEquals(opened(d.events), ["ssh 127.0.0.2"]);
  await knockAll("127.0.0.1", code(base, "ssh", 59_000_002), { localAddress: "127.0.0.4" });
  await d.waitFor((e) => e.kind === "opened" && e.source === "127.0.0.4");
  assertEquals(opened(d.events), ["ssh 127.0.0.2", "ssh 127.0.0.4"]);
});

Deno.test("listen: interleaved sources both succeed, over IPv4 and IPv6", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  const a = code(base, "ssh", 59_000_000);
  const b = code(base, "ssh", 59_000_001);
  await Promise.all([
    knockAll("127.0.0.1", a, { localAddress: "127.0.0.2", gap: 30 }),
    knockAll("::1", b, { gap: 30 }),
  ]);
  await d.waitFor((e) => e.kind === "opened" && e.source === "::1");
  await d.waitFor((e) => e.kind === "opened" && e.source === "127.0.0.2");
  assertEquals(opened(d.events).sort(), ["ssh 127.0.0.2", "ssh ::1"]);
});

Deno.test("listen: mixed-protocol, bind_source and static doors open over real sockets", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  await knockAll("127.0.0.1", code(base, "mixed", 59_000_000), { localAddress: "127.0.0.2" });
  await d.waitFor((e) => e.kind === "opened" && e.door === "mixed");
  // A bound code works only from its own address.
  await knockAll("127.0.0.1", code(base, "near", 59_000_000, "127.0.0.9"), {
    localAddress: "127.0.0.3",
  });
  await knockAll("127.0.0.1", code(base, "near", 59_000_000, "127.0.0.4"), {
    localAddress: "127.0.0.4",
  });
  await d.waitFor((e) => e.kind === "opened" && e.door === "near");
  await knockAll("127.0.0.1", [{ port: base + 90, protocol: "tcp" }, {
    port: base + 91,
    protocol: "udp",
  }, { port: base + 92, protocol: "tcp" }], {
    localAddress: "127.0.0.5",
  });
  await d.heard(3 + 4 + 4 + 3);
  assertEquals(opened(d.events), ["mixed 127.0.0.2", "near 127.0.0.4", "legacy 127.0.0.5"]);
});

Deno.test("listen: the door closes after 'for', and a second open extends it instead of stacking", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  const legacy: Knock[] = [{ port: base + 90, protocol: "tcp" }, {
    port: base + 91,
    protocol: "udp",
  }, { port: base + 92, protocol: "tcp" }];
  await knockAll("127.0.0.1", legacy, { localAddress: "127.0.0.2" });
  await d.heard(3);
  assertEquals(opened(d.events), ["legacy 127.0.0.2"]);
  clock.advance(400);
  await knockAll("127.0.0.1", legacy, { localAddress: "127.0.0.2" });
  await d.heard(6);
  assertEquals(d.events.at(-1)?.kind, "extended");
  assertEquals(d.daemon.openDoors().length, 1);
  clock.advance(999); // 1 399 ms after the first open: still open (extended to 1 400 ms)
  await d.daemon.settled();
  assertEquals(d.daemon.openDoors().length, 1, "open until 'for' after the second knock");
  clock.advance(1);
  await d.daemon.settled();
  const closed = d.events.find((e) => e.kind === "closed");
  assertEquals(closed?.kind === "closed" && closed.source, "127.0.0.2");
  assertEquals(d.events.map((e) => e.kind).filter((t) => t !== "ready"), [
    "opened",
    "extended",
    "closed",
  ]);
  assertEquals(d.daemon.openDoors(), []);
});

Deno.test("listen: UDP datagrams to a TCP door's ports neither advance nor reset a source's progress", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  const good = code(base, "ssh", 59_000_000);
  const forged = (port: number) =>
    knockAll("127.0.0.1", [{ port, protocol: "udp" }], { localAddress: "127.0.0.2" });
  await knockAll("127.0.0.1", good.slice(0, 2), { localAddress: "127.0.0.2", gap: 30 });
  await forged(base + 7); // a forged datagram on a pool port, in the middle of the sequence
  await forged(good[2].port); // and one on the next expected port
  await d.heard(2);
  await knockAll("127.0.0.1", good.slice(2), { localAddress: "127.0.0.2", gap: 30 });
  await d.waitFor((e) => e.kind === "opened" && e.source === "127.0.0.2");
  assertEquals(opened(d.events), ["ssh 127.0.0.2"]);
});

Deno.test("listen: forged UDP from a victim's address bans it on UDP doors only; its TCP knock still opens", async () => {
  const base = randomBase(100);
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(
    `
listen: { addresses: ["::"] }
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "${base}-${base + 49}"
    length: 4
    period: ${PERIOD_S}s
    open: { for: 1s }
  vpn:
    secret: "${SECRET_B64}"
    ports: "${base + 50}-${base + 99}"
    protocol: udp
    length: 4
    period: ${PERIOD_S}s
    open: { for: 1s }
`,
    { clock },
  );
  const good = code(base, "ssh", 59_000_000);
  await knockAll("127.0.0.1", good.slice(0, 2), { localAddress: "127.0.0.2", gap: 30 });
  // The forger "is" 127.0.0.2 on loopback: 20 datagrams to the UDP door's pool. Its codes of
  // the counters followed take at most 24 of the 50 ports: the rest are misses.
  for (let i = 0; i < 20; i++) {
    const port = base + 50 + ((i * 7) % 50);
    await knockAll("127.0.0.1", [{ port, protocol: "udp" }], { localAddress: "127.0.0.2", gap: 0 });
  }
  const ban = await d.waitFor((e) => e.kind === "scan" && e.source === "127.0.0.2");
  assertEquals(ban.kind === "scan" && ban.evidence, "udp");
  await knockAll("127.0.0.1", good.slice(2), { localAddress: "127.0.0.2", gap: 30 });
  await d.waitFor((e) => e.kind === "opened" && e.source === "127.0.0.2");
  assertEquals(opened(d.events), ["ssh 127.0.0.2"]);
});

Deno.test("listen: knock ports another program held at the start are bound once it lets go, tried again 1 s, 2 s, 4 s … apart", async () => {
  const base = randomBase(100);
  const legacy = [base + 90, base + 91, base + 92];
  // A squatter holds the static door's first port over TCP on every address.
  const squatter = Deno.listen({ hostname: "0.0.0.0", port: legacy[0] });
  const clock = new ManualClock(T0 + 5000);
  await using d = await startDaemon(yaml(base), { clock });
  const knocks: Knock[] = [
    { port: legacy[0], protocol: "tcp" },
    { port: legacy[1], protocol: "udp" },
    { port: legacy[2], protocol: "tcp" },
  ];
  const ready = d.events.find((e) => e.kind === "ready");
  assert(ready?.kind === "ready" && ready.failures.length > 0, "the squatted port failed to bind");
  squatter.close();
  clock.advance(999);
  assertEquals(d.daemon.counters.knocks, 0);
  clock.advance(1); // the first retry, a second after the start
  await knockAll("127.0.0.1", knocks, { localAddress: "127.0.0.2" });
  await d.heard(3);
  assertEquals(opened(d.events), ["legacy 127.0.0.2"], "the freed port hears knocks again");
});
