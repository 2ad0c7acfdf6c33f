/**
 * The open path on the in-memory twins (no sockets, no firewall, a manual clock):
 * commit before act, nothing after a failed commit, and bind_source knocks that wait for
 * their derivation in order and are never dropped.
 */
import { assert, assertEquals } from "./_assert.ts";
import { SECRET_B64 } from "./_daemon.ts";
import { parseConfig } from "../lib/config/load.ts";
import { Daemon, type DaemonEvent } from "../lib/daemon/daemon.ts";
import {
  DryRunFirewall,
  ManualClock,
  MemoryListeners,
  RecordingRunner,
} from "../lib/testing/mod.ts";
import type { RunOptions } from "../lib/actions/runner.ts";
import { MemoryStore, type StoreChanges } from "../lib/store/store.ts";
import { setImmediate } from "node:timers";
import { codeAt, codeForCounter } from "../lib/code.ts";
import { parseAddress } from "../lib/address.ts";
import type { Knock } from "../lib/knock.ts";
import { type Config, userDoors } from "../lib/config/types.ts";

const userDoorsOf = (config: Config) => userDoors(config.doors);

const PERIOD = 30_000;
const T0 = 59_000_000 * PERIOD;

const CONFIG = `
doors:
  ssh:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    length: 3
    open:
      for: 1s
      command: ["/sbin/allow", "{ip}"]
      close_command: ["/sbin/deny", "{ip}"]
      nft: { port: 22 }
  near:
    secret: "${SECRET_B64}"
    ports: "21000-21099"
    length: 3
    bind_source: true
    open: { for: 30s }
`;

/** Lets the event loop turn `n` times: batches started by knocks reach the store and act. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** A daemon on the twins: a manual clock, memory listeners, a dry-run firewall, a recording runner. */
async function start(
  store: MemoryStore,
  clock: ManualClock = new ManualClock(T0 + 5000),
  runner: RecordingRunner = new RecordingRunner(),
) {
  const config = parseConfig(CONFIG, "test.yaml");
  const events: DaemonEvent[] = [];
  const nft = new DryRunFirewall();
  let listeners: MemoryListeners | undefined;
  const daemon = await Daemon.start({
    config,
    store,
    runner,
    clock,
    firewalls: { nft, iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
    onEvent: (e) => events.push(e),
  });
  const knock = (source: string, knocks: readonly Knock[], at = clock.now()) => {
    for (const [i, k] of knocks.entries()) {
      listeners!.knock(source, k.protocol, k.port, at + i * 20);
    }
  };
  return {
    daemon,
    config,
    events,
    nft,
    runner,
    clock,
    knock,
    [Symbol.asyncDispose]: () => daemon.stop(),
  };
}

const kinds = (events: DaemonEvent[]) => events.map((e) => e.kind).filter((k) => k !== "ready");

Deno.test("open path: a failed commit runs no open and no close action, logs no 'closed', and the daemon opens again once the store works", async () => {
  const store = new MemoryStore();
  await using d = await start(store);
  store.failWith = new Error("No space left on device");
  const door = d.config.doors[0];
  d.knock("192.0.2.7", (await codeForCounter(door, 59_000_000)).knocks);
  await d.daemon.settled();
  assertEquals(kinds(d.events), ["commit-failed"]);
  d.clock.advance(1300); // past the door's 'for': a scheduled close would have run by now
  await d.daemon.settled();
  assertEquals(d.runner.runs, [], "neither the open nor the close command ran");
  assertEquals(d.nft.calls, ["start 2 doors"], "the firewall was not asked to open");
  assertEquals(kinds(d.events), ["commit-failed"], "no 'closed' for a door that never opened");
  assertEquals(d.daemon.openDoors(), []);
  assertEquals(store.snapshot().open, []);

  store.failWith = undefined;
  d.knock("192.0.2.8", (await codeForCounter(door, 59_000_001)).knocks);
  await d.daemon.settled();
  assertEquals(kinds(d.events), ["commit-failed", "opened"]);
  assertEquals(d.runner.runs, [["/sbin/allow", "192.0.2.8"]]);
});

Deno.test("open path: the code and the open record are durable before the firewall or the command acts", async () => {
  const store = new MemoryStore();
  const seenAtCommit: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const commit = store.commit.bind(store);
  store.commit = async (changes: StoreChanges) => {
    if (changes.opened?.length) {
      seenAtCommit.push([
        ...d.nft.calls.filter((c) => c.startsWith("open")),
        ...d.runner.runs.flat(),
      ]);
      await gate; // a slow disk: nothing may act meanwhile
    }
    return commit(changes);
  };
  await using d = await start(store);
  d.knock("192.0.2.7", (await codeForCounter(d.config.doors[0], 59_000_000)).knocks);
  await turns();
  try {
    assertEquals(seenAtCommit, [[]], "nothing acted before the commit began");
    assertEquals(d.nft.calls.filter((c) => c.startsWith("open")), [], "nothing acts while it runs");
    assertEquals(d.runner.runs, []);
  } finally {
    release(); // a failed assertion must not leave the daemon's stop waiting on the gate
  }
  await d.daemon.settled();
  assertEquals(d.nft.calls.filter((c) => c.startsWith("open")), ["open ssh 192.0.2.7"]);
  assertEquals(store.snapshot().used.map((c) => [c.door, c.counter]), [["ssh", 59_000_000]]);
  assertEquals(store.snapshot().open.map((r) => [r.door, r.source]), [["ssh", "192.0.2.7"]]);
});

Deno.test("open path: a slow firewall does not hold back the next batch's commit, and each batch acts only after its own", async () => {
  const store = new MemoryStore();
  const order: string[] = [];
  const commit = store.commit.bind(store);
  store.commit = (changes: StoreChanges) => {
    // The ssh door has a command: its opens carry it as pending (the write-back once it
    // ran, without it, is not an open's commit).
    for (const r of changes.opened ?? []) if (r.pending) order.push(`commit ${r.source}`);
    return commit(changes);
  };
  await using d = await start(store);
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const open = d.nft.open.bind(d.nft);
  d.nft.open = async (record) => {
    order.push(`open ${record.source}`);
    if (record.source === "192.0.2.7") await gate; // a firewall busy with the first batch
    return open(record);
  };
  const door = d.config.doors[0];
  d.knock("192.0.2.7", (await codeForCounter(door, 59_000_000)).knocks);
  await turns();
  d.knock("192.0.2.8", (await codeForCounter(door, 59_000_001)).knocks);
  await turns();
  try {
    assertEquals(order, [
      "commit 192.0.2.7",
      "open 192.0.2.7",
      "commit 192.0.2.8", // committed while the firewall still works on the first
      "open 192.0.2.8",
    ]);
    let settled = false;
    const waiting = d.daemon.settled().then(() => settled = true);
    await turns();
    assertEquals(settled, false, "settled() waits for the open still at the firewall");
    release();
    await waiting;
  } finally {
    release();
  }
  assertEquals(d.nft.calls.filter((c) => c.startsWith("open")), [
    "open ssh 192.0.2.8",
    "open ssh 192.0.2.7",
  ]);
});

Deno.test("open path: a command door's open and any close before its time wait for the fsync; firewall doors and closes at their time do not", async () => {
  const store = new MemoryStore();
  const syncs: string[] = [];
  const commit = store.commit.bind(store);
  store.commit = (changes: StoreChanges) => {
    const ran = changes.opened?.length &&
      changes.opened.every((r) => r.door === "ssh" && !r.pending);
    const what = ran
      ? "ran"
      : changes.opened?.length
      ? "open"
      : changes.closed?.length
      ? "close"
      : "";
    if (what) syncs.push(`${what} ${changes.sync ?? "full"}`);
    return commit(changes);
  };
  await using d = await start(store);
  d.knock("192.0.2.7", (await codeForCounter(d.config.doors[0], 59_000_000)).knocks);
  await d.daemon.settled();
  const near = d.config.doors[1]; // no command: nothing outlives the machine
  d.knock("192.0.2.8", (await codeForCounter(near, 59_000_000, parseAddress("192.0.2.8"))).knocks);
  await d.daemon.settled();
  // The open command's write-back (it ran) need not wait: a power loss runs it once more.
  assertEquals(syncs, ["open full", "ran normal", "open normal"]);
  await d.daemon.revoke({ door: "near", ip: "192.0.2.8" });
  d.clock.advance(1300); // the ssh door's 'for' (1 s) passes: it closes at its time
  await d.daemon.settled();
  assertEquals(syncs, ["open full", "ran normal", "open normal", "close full", "close normal"]);
});

Deno.test("open path: opens decided in one turn are committed together", async () => {
  const store = new MemoryStore();
  const batches: number[] = [];
  const commit = store.commit.bind(store);
  store.commit = (changes: StoreChanges) => {
    if (changes.opened?.length) batches.push(changes.opened.length);
    return commit(changes);
  };
  await using d = await start(store);
  const door = d.config.doors[1]; // bind_source: every source has its own code
  const sources = Array.from({ length: 20 }, (_, i) => `198.51.100.${i + 1}`);
  const codes = await Promise.all(
    sources.map((s) => codeForCounter(door, 59_000_000, parseAddress(s))),
  );
  // Derive first (a knock each), so that the completions all fall in one turn.
  sources.forEach((s, i) => d.knock(s, codes[i].knocks.slice(0, 1)));
  await turns();
  sources.forEach((s, i) => d.knock(s, codes[i].knocks.slice(1)));
  await d.daemon.settled();
  assertEquals(batches, [20]);
});

Deno.test("open path: 300 new bind_source sources knocking at once all open, none dropped", async () => {
  await using d = await start(new MemoryStore());
  const door = d.config.doors[1];
  const sources = Array.from({ length: 300 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  const codes = await Promise.all(
    sources.map((s) => codeForCounter(door, 59_000_000, parseAddress(s))),
  );
  // Interleaved, as a burst arrives: knock i of every source, then knock i + 1.
  for (let k = 0; k < 3; k++) {
    sources.forEach((s, i) => d.knock(s, [codes[i].knocks[k]], T0 + 5000 + k * 20));
  }
  await d.daemon.settled();
  const opened = new Set(d.events.flatMap((e) => e.kind === "opened" ? [e.source] : []));
  assertEquals(opened.size, 300);
});

Deno.test("open path: a bind_source knock that crosses a period boundary is derived for the new window, not dropped", async () => {
  await using d = await start(new MemoryStore());
  const door = d.config.doors[1];
  const source = "192.0.2.9";
  const boundary = 59_000_001 * PERIOD;
  // A client near the boundary knocks the next counter's code; its last knock lands in the
  // next period, whose window needs a counter the first derivation did not make.
  const { knocks } = await codeForCounter(door, 59_000_001, parseAddress(source));
  d.knock(source, knocks.slice(0, 2), boundary - 30);
  d.knock(source, knocks.slice(2), boundary + 10);
  await d.daemon.settled();
  assert(
    d.events.some((e) => e.kind === "opened" && e.source === source),
    JSON.stringify(d.events),
  );
});

Deno.test("open path: a used code stays refused when the clock steps back, and after it steps far ahead and back", async () => {
  await using d = await start(new MemoryStore());
  const door = d.config.doors[0];
  const code = (await codeForCounter(door, 59_000_000)).knocks;
  d.knock("192.0.2.7", code);
  await d.daemon.settled();
  d.clock.step(-PERIOD); // one period back: 59 000 000 is still inside the window
  d.knock("198.51.100.9", code);
  d.clock.step(10 * PERIOD); // far ahead (every window long past) ...
  d.clock.advance(500); // a tick derives the new window's codes
  d.knock("198.51.100.10", (await codeForCounter(door, 59_000_009)).knocks);
  await d.daemon.settled();
  d.clock.step(-10 * PERIOD); // ... and back again
  d.clock.advance(500);
  d.knock("198.51.100.11", code);
  await d.daemon.settled();
  assertEquals(
    d.events.flatMap((e) =>
      e.kind === "opened" || e.kind === "replay" ? [`${e.kind} ${e.source}`] : []
    ),
    ["opened 192.0.2.7", "replay 198.51.100.9", "opened 198.51.100.10", "replay 198.51.100.11"],
  );
});

Deno.test("open path: after a secret rotation the new secret's code opens in the same period, the old one's does not", async () => {
  const store = new MemoryStore();
  await using d = await start(store);
  const [door] = d.config.doors;
  d.knock("192.0.2.7", (await codeForCounter(door, 59_000_000)).knocks);
  await d.daemon.settled();
  const NEW = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY";
  const rotated = parseConfig(CONFIG.replace(SECRET_B64, NEW), "test.yaml");
  await d.daemon.reload(rotated);
  const newDoor = rotated.doors[0];
  d.knock("192.0.2.8", (await codeForCounter(newDoor, 59_000_000)).knocks);
  d.knock("192.0.2.9", (await codeForCounter(door, 59_000_001)).knocks); // the old secret
  await d.daemon.settled();
  assertEquals(
    d.events.flatMap((e) => e.kind === "opened" ? [e.source] : []),
    ["192.0.2.7", "192.0.2.8"],
  );
});

Deno.test("open path: knocks from a link-local source are refused and reported once", async () => {
  await using d = await start(new MemoryStore());
  const code = (await codeForCounter(d.config.doors[0], 59_000_000)).knocks;
  d.knock("fe80::1", code);
  d.knock("FE80::1", code);
  d.knock("fe80::1", code);
  d.knock("192.0.2.7", code);
  await d.daemon.settled();
  assertEquals(
    d.events.flatMap((e) =>
      e.kind === "link-local" || e.kind === "opened" ? [`${e.kind} ${e.source}`] : []
    ),
    ["link-local fe80::1", "link-local FE80::1", "opened 192.0.2.7"],
  );
});

/** Fails the close command `failures` times, then lets it succeed. */
class FlakyCloseRunner extends RecordingRunner {
  constructor(private failures: number) {
    super();
  }
  override run(argv: readonly string[], options: RunOptions) {
    const result = super.run(argv, options);
    if (argv[0] !== "/sbin/deny" || this.failures-- <= 0) return result;
    return Promise.resolve({ code: -1, timedOut: false, error: "Too many open files" });
  }
}

Deno.test("open path: a close command that fails is retried until it succeeds, and its record stays until then", async () => {
  const store = new MemoryStore();
  await using d = await start(store, new ManualClock(T0 + 5000), new FlakyCloseRunner(2));
  d.knock("192.0.2.7", (await codeAt(d.config.doors[0], d.clock.now())).knocks);
  await d.daemon.settled();
  d.clock.advance(1000); // 'for' ends: the close fails
  await d.daemon.settled();
  assertEquals(kinds(d.events), ["opened", "close-failed"]);
  assertEquals(store.snapshot().open.map((r) => r.source), ["192.0.2.7"], "kept after a failure");
  d.clock.advance(1000); // the first retry, after 1 s: fails again
  await d.daemon.settled();
  assertEquals(kinds(d.events), ["opened", "close-failed", "close-failed"]);
  d.clock.advance(1999); // the next waits 2 s
  await d.daemon.settled();
  assertEquals(kinds(d.events), ["opened", "close-failed", "close-failed"]);
  d.clock.advance(1);
  await d.daemon.settled();
  assertEquals(kinds(d.events), ["opened", "close-failed", "close-failed", "closed"]);
  assertEquals(d.runner.runs.filter((r) => r[0] === "/sbin/deny").length, 3);
  assertEquals(store.snapshot().open, []);
});

Deno.test("open path: open.log false keeps a door's opens out of the log, not its failures", async () => {
  const { logLine } = await import("../lib/daemon/report.ts");
  const quiet = parseConfig(
    `doors:\n  q:\n    sequence: [7000]\n    decoys: 0\n    open: { log: false, command: ["/bin/true"] }\n  loud:\n    sequence: [7001]\n    decoys: 0\n    open: { log: false }\n`,
    "t.yaml",
  );
  assertEquals(quiet.doors.map((d) => d.open?.log), [false, true], "a door with no action logs");
  // The daemon decides per door; the line itself is unchanged.
  assertEquals(
    logLine({ kind: "opened", door: "q", source: "192.0.2.7", until: 0 }, () => undefined)?.level,
    "info",
  );
});

Deno.test("open path: a clock stepped back by more than the window is logged at error", async () => {
  const { configure, reset } = await import("@logtape/logtape");
  const lines: string[] = [];
  await configure({
    reset: true,
    sinks: { mem: (r) => lines.push(`${r.level} ${r.message.join("")}`) },
    loggers: [{ category: ["sesame"], lowestLevel: "info", sinks: ["mem"] }],
  });
  try {
    await using d = await start(new MemoryStore());
    d.clock.advance(600);
    d.clock.step(-2 * PERIOD); // more than skew × period (30 s)
    d.clock.advance(600);
    assert(
      lines.some((l) => l.startsWith("error the clock went back 1m")),
      lines.join("\n"),
    );
    assertEquals(d.events.filter((e) => e.kind === "opened"), []);
  } finally {
    await reset();
  }
});

Deno.test("open path: rules another tool removed are put back with the open doors, every time, at once", async () => {
  await using d = await start(new MemoryStore());
  d.knock("192.0.2.7", (await codeForCounter(d.config.doors[0], 59_000_000)).knocks);
  await d.daemon.settled();
  const restored = () => d.events.filter((e) => e.kind === "firewall-restored").length;
  for (let i = 1; i <= 8; i++) {
    d.nft.standing = false; // as after `nft flush ruleset`
    d.nft.changed!();
    await turns();
    // A repeat offender gets no pause: a paused repair is an open port.
    assertEquals(d.nft.standing, true, `flush ${i} was repaired at once`);
  }
  assertEquals(restored(), 8);
  assertEquals(d.nft.calls.filter((c) => c.startsWith("start")).length, 1 + 8);
  assertEquals(d.daemon.openDoors().map((r) => r.source), ["192.0.2.7"]);
});

Deno.test("open path: a flush that lands while a repair runs is repaired too", async () => {
  await using d = await start(new MemoryStore());
  let flushes = 1;
  const startRules = d.nft.start.bind(d.nft);
  d.nft.start = async (...args: Parameters<typeof startRules>) => {
    await startRules(...args);
    if (flushes-- > 0) {
      d.nft.standing = false; // another tool flushes again, just after the repair wrote
      d.nft.changed!();
    }
  };
  d.nft.standing = false; // as after `nft flush ruleset`
  d.nft.changed!();
  await turns(10);
  assertEquals(d.nft.standing, true, "the second flush was repaired as well");
  assertEquals(d.events.filter((e) => e.kind === "firewall-restored").length, 2);
});

Deno.test("open path: a wall clock stepped back keeps no door open past its time (close command, and rules rewritten meanwhile)", async () => {
  await using d = await start(new MemoryStore());
  d.knock("192.0.2.7", (await codeForCounter(d.config.doors[0], 59_000_000)).knocks);
  await d.daemon.settled();
  assertEquals(d.runner.runs, [["/sbin/allow", "192.0.2.7"]]);
  d.clock.step(-3_600_000); // the wall clock goes back an hour; `for` is 1 s
  // The rules rewritten now (another tool's flush) carry what is left of the second, not an hour.
  const [record] = d.daemon.openDoors();
  const ahead = record.until - d.clock.now();
  assert(ahead <= 1000, `until ${ahead} ms ahead`);
  d.clock.advance(1000);
  await d.daemon.settled();
  assertEquals(
    d.runner.runs,
    [["/sbin/allow", "192.0.2.7"], ["/sbin/deny", "192.0.2.7"]],
    "closed after its second, not after the hour",
  );
});

Deno.test("open path: an open command not known to have run when sesame stopped runs at the next start, once", async () => {
  const store = new MemoryStore();
  // What a daemon killed between its commit and its command's end left: the record, pending.
  await store.commit({
    opened: [{
      door: "ssh",
      source: "192.0.2.7",
      until: T0 + 5000 + 60_000,
      close: ["/sbin/deny", "192.0.2.7"],
      pending: ["/sbin/allow", "192.0.2.7"],
    }],
  });
  {
    await using d = await start(store);
    await d.daemon.settled();
    // Close first: whether or not the first run happened, one open is in effect after.
    assertEquals(
      d.runner.runs,
      [["/sbin/deny", "192.0.2.7"], ["/sbin/allow", "192.0.2.7"]],
      "run at the start, after its close",
    );
    assertEquals(kinds(d.events), ["opened"]);
    assertEquals(store.snapshot().open.map((r) => r.pending), [undefined], "and known to have run");
  }
  // (The stop above closed the door: a record that ran and is still open runs nothing again.)
  await store.commit({
    opened: [{
      door: "ssh",
      source: "192.0.2.8",
      until: T0 + 5000 + 60_000,
      close: ["/sbin/deny", "192.0.2.8"],
    }],
  });
  await using again = await start(store);
  await again.daemon.settled();
  assertEquals(again.runner.runs, [], "an open that ran is not run again");
});

/** A runner whose open command (/sbin/allow) waits until the test lets it end. */
class HeldOpenRunner extends RecordingRunner {
  release!: () => void;
  readonly held = new Promise<void>((r) => this.release = r);
  override async run(argv: readonly string[], options: RunOptions) {
    const result = super.run(argv, options);
    if (argv[0] === "/sbin/allow") await this.held;
    return result;
  }
}

const PENDING = {
  door: "ssh",
  source: "192.0.2.7",
  until: T0 + 5000 + 60_000,
  close: ["/sbin/deny", "192.0.2.7"],
  pending: ["/sbin/allow", "192.0.2.7"],
};

Deno.test("open path: a recovered open that ends after its door's time is closed after it, never before", async () => {
  const store = new MemoryStore();
  await store.commit({ opened: [PENDING] });
  const runner = new HeldOpenRunner();
  await using d = await start(store, new ManualClock(T0 + 5000), runner);
  await new Promise((r) => setTimeout(r, 0));
  d.clock.advance(61_000); // the door's time passes while its open command still runs
  assertEquals(runner.runs.map((r) => r[0]), ["/sbin/deny", "/sbin/allow"], "no close yet");
  runner.release();
  await d.daemon.settled();
  d.clock.advance(1);
  await d.daemon.settled();
  assertEquals(
    runner.runs.map((r) => r[0]),
    ["/sbin/deny", "/sbin/allow", "/sbin/deny"],
    "closed after the late open, not before it",
  );
  assertEquals(store.snapshot().open, []);
});

Deno.test("open path: a revoke while a recovered open runs closes again once it ended", async () => {
  const store = new MemoryStore();
  await store.commit({ opened: [PENDING] });
  const runner = new HeldOpenRunner();
  await using d = await start(store, new ManualClock(T0 + 5000), runner);
  await new Promise((r) => setTimeout(r, 0));
  const revoking = d.daemon.revoke({ door: "ssh", ip: "192.0.2.7" });
  await new Promise((r) => setTimeout(r, 0));
  runner.release();
  await revoking;
  await d.daemon.settled();
  assertEquals(runner.runs.map((r) => r[0]).at(-1), "/sbin/deny", "the last word is a close");
  assertEquals(store.snapshot().open, []);
});

Deno.test("open path: a pending open of a door the config no longer has is never run; it is closed at its time", async () => {
  const store = new MemoryStore();
  await store.commit({ opened: [{ ...PENDING, door: "gone" }] });
  await using d = await start(store);
  await d.daemon.settled();
  assertEquals(d.runner.runs, [], "nothing run at the start");
  d.clock.advance(60_000);
  await d.daemon.settled();
  assertEquals(d.runner.runs, [["/sbin/deny", "192.0.2.7"]], "its close, at its time");
});

Deno.test("open path: revoke --user closes a door the user opened, also after another user extended it", async () => {
  const config = parseConfig(
    `doors:
  team:
    ports: "20000-20099"
    length: 3
    users:
      alice: { secret: "${SECRET_B64}" }
      bob: { secret: "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8" }
    open: { for: 60s, nft: { port: 22 } }
`,
    "team.yaml",
  );
  const clock = new ManualClock(T0 + 5000);
  const nft = new DryRunFirewall();
  let listeners: MemoryListeners | undefined;
  const daemon = await Daemon.start({
    config,
    clock,
    firewalls: { nft, iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
  });
  try {
    const [alice, bob] = config.doors[0].kind === "rotating" ? userDoorsOf(config) : [];
    const knock = async (door: typeof alice, counter: number) => {
      for (const k of (await codeForCounter(door, counter)).knocks) {
        listeners!.knock("192.0.2.7", k.protocol, k.port);
      }
      await daemon.settled();
    };
    await knock(alice, 59_000_000);
    await knock(bob, 59_000_000); // the same address: bob extends alice's door
    assertEquals(daemon.openDoors().map((r) => r.user), ["bob"]);
    const answer = await daemon.revoke({ door: "team", user: "alice" });
    assertEquals(answer.ok, true, JSON.stringify(answer));
    assertEquals(daemon.openDoors(), []);
    assertEquals(nft.calls.at(-1), "revoke team 192.0.2.7");
  } finally {
    await daemon.stop();
  }
});

Deno.test("open path: who waits on a request hears once whether it opened: refused at once, admitted when its door acted", async () => {
  const { whoWaits } = await import("../lib/daemon/open_plan.ts");
  const { validateConfig } = await import("../lib/config/validate.ts");
  const [door] =
    validateConfig({ doors: { ssh: { sequence: [7000], open: { for: "5s" } } } }).doors;
  const told: string[] = [];
  const hear = (name: string) => (opened: boolean) => told.push(`${name} ${opened}`);
  const a = { door, source: "192.0.2.7", acted: hear("a") };
  const b = { door, source: "192.0.2.7", acted: hear("b") }; // the same door and source
  const refused = { door, source: "192.0.2.8", acted: hear("refused") };
  const silent = { door, source: "192.0.2.9" };
  // Admission copies what it lets through (a grant's until): the callback goes with it.
  const waiting = whoWaits([a, refused, b, silent], [{ ...a, until: 1 }, b, silent]);
  assertEquals(told, ["refused false"]);
  assertEquals([...waiting.keys()].length, 1);
  [...waiting.values()][0](true);
  assertEquals(told, ["refused false", "a true", "b true"]);
});

/**
 * An opener for door `web` (a command door, or `nft` too) whose open command fails its
 * first run after 50 ms and works after that; what it ran, reported and told.
 */
function flakyOpener(withNft = false) {
  return scriptedOpener(
    (argv0, run) => argv0 === "/bin/allow" && run === 1 ? 1 : 0,
    (argv0) => argv0 === "/bin/allow" ? 50 : 0,
    "60s",
    withNft,
  );
}

Deno.test("open path: a door whose open command failed is opened afresh by the next knock (its command runs again); extensions overlapping the failing open hear it failed", async () => {
  const { opener, runs, events, told, knock } = await flakyOpener();
  knock("first");
  // Two extensions while the first open's command runs (it fails after 50 ms).
  for (const name of ["second", "third"]) {
    await new Promise((r) => setTimeout(r, 10));
    knock(name);
  }
  await opener.settled();
  assertEquals(told.toSorted(), ["first false", "second false", "third false"]);
  assertEquals(runs, ["/bin/allow"]);
  // The next knock: opened afresh, its command runs again, and it works.
  knock("again");
  await opener.settled();
  assertEquals(told.at(-1), "again true");
  assertEquals(runs, ["/bin/allow", "/bin/allow"]);
  // No "extended" for a door that never opened.
  assertEquals(events, ["open-failed", "opened"]);
  opener.cancelTimers();
});

Deno.test("open path: an extension whose own firewall call fails does not run the open command again (one open, one close)", async () => {
  const { opener, nft, runs, events, told, knock } = await flakyOpener(true);
  knock("fails");
  await opener.settled();
  knock("opens"); // afresh: the command's second run works
  await opener.settled();
  nft.fail.add("open");
  knock("extension"); // its firewall call fails; the door stays open from before
  await opener.settled();
  nft.fail.delete("open");
  knock("later");
  await opener.settled();
  assertEquals(told, ["fails false", "opens true", "extension false", "later true"]);
  // The command ran for the failed open and the one that worked: not for the extensions.
  assertEquals(runs, ["/bin/allow", "/bin/allow"]);
  assertEquals(events, ["open-failed", "opened", "open-failed", "extended"]);
  await opener.revoke({ door: "web" });
  assertEquals(runs, ["/bin/allow", "/bin/allow", "/bin/deny"]);
  opener.cancelTimers();
});

/** An opener for command door `web` whose commands take `ms` and exit as `exit` says. */
async function scriptedOpener(
  exit: (argv0: string, run: number) => number,
  ms: number | ((argv0: string) => number) = 100,
  forTime = "60s",
  withNft = false,
) {
  const { Opener } = await import("../lib/daemon/opener.ts");
  const { Counters } = await import("../lib/counters.ts");
  const { systemClock } = await import("../lib/clock.ts");
  const { validateConfig } = await import("../lib/config/validate.ts");
  const open = {
    for: forTime,
    command: ["/bin/allow", "{ip}"],
    close_command: ["/bin/deny", "{ip}"],
    ...(withNft ? { nft: { port: 22 } } : {}),
  };
  const [door] = validateConfig({ doors: { web: { sequence: [7000], open } } }).doors;
  const runs: string[] = [], events: string[] = [], told: string[] = [];
  const runner = {
    run: async (argv: readonly string[]) => {
      runs.push(argv[0]);
      await new Promise((r) => setTimeout(r, typeof ms === "number" ? ms : ms(argv[0])));
      const code = exit(argv[0], runs.filter((r) => r === argv[0]).length);
      return { code, timedOut: false, error: code === 0 ? "" : "busy" };
    },
    spawn: () => {
      throw new Error();
    },
    close() {},
  };
  const nft = new DryRunFirewall();
  const opener = new Opener({
    store: new MemoryStore(),
    firewalls: { nft, iptables: new DryRunFirewall() },
    runner,
    clock: systemClock,
    counters: new Counters(),
    report: (e) => events.push(e.kind),
  });
  const knock = (name: string) =>
    opener.request({ door, source: "192.0.2.7", acted: (ok) => told.push(`${name} ${ok}`) });
  return { opener, door, nft, runs, events, told, knock };
}

Deno.test("open path: a knock while its door is closing opens it afresh once the close is over (not an extension of a door that is going)", async () => {
  const { opener, runs, events, told, knock } = await scriptedOpener(() => 0);
  knock("first");
  await opener.settled();
  const revoking = opener.revoke({ door: "web" }); // its close command takes 100 ms
  await new Promise((r) => setTimeout(r, 20));
  knock("during");
  const revoked = await revoking;
  await opener.settled();
  assertEquals(revoked.closed.length, 1); // the first grant was closed
  assertEquals(told, ["first true", "during true"]);
  // Open, close, open: the second open after the close, so the door is open in the end.
  assertEquals(runs, ["/bin/allow", "/bin/deny", "/bin/allow"]);
  assertEquals(events, ["opened", "closed", "opened"]);
  assertEquals(opener.records().length, 1);
  opener.cancelTimers();
});

Deno.test("open path: a door taken over at start whose recovered open fails is opened afresh by the next knock; a knock during the recovery hears it failed", async () => {
  // The open command fails its first run (the recovery's), and works after that.
  const { opener, door, runs, events, told, knock } = await scriptedOpener((argv0, run) =>
    argv0 === "/bin/allow" && run === 1 ? 1 : 0
  );
  await opener.restore([{
    door: "web",
    source: "192.0.2.7",
    until: Date.now() + 60_000,
    close: ["/bin/deny", "192.0.2.7"],
    pending: ["/bin/allow", "192.0.2.7"],
  }], { timeoutOf: () => 1000 });
  assertEquals(door.name, "web");
  knock("during"); // while the recovery's close-then-open runs
  await opener.settled();
  assertEquals(told, ["during false"]);
  knock("after");
  await opener.settled();
  assertEquals(told.at(-1), "after true");
  assertEquals(runs, ["/bin/deny", "/bin/allow", "/bin/allow"]);
  assertEquals(events, ["open-failed", "opened"]);
  opener.cancelTimers();
});

Deno.test("open path: a grant opened afresh while the old one closes, whose own time comes during that close, is closed after it (never left open)", async () => {
  // for: 1s; the close command takes 1.5 s, so the second grant's time comes during it.
  const { opener, runs, events, knock } = await scriptedOpener(
    () => 0,
    (argv0) => argv0 === "/bin/deny" ? 1500 : 0,
    "1s",
  );
  knock("first");
  await new Promise((r) => setTimeout(r, 1200)); // the first grant's close runs (t 1.0–2.5 s)
  knock("during");
  await new Promise((r) => setTimeout(r, 3500)); // the second grant's time (2.2 s) passes
  await opener.settled();
  assertEquals(runs, ["/bin/allow", "/bin/deny", "/bin/allow", "/bin/deny"]);
  assertEquals(events, ["opened", "closed", "opened", "closed"]);
  assertEquals(opener.records(), []);
  opener.cancelTimers();
});

Deno.test("open path: knocks in two batches during one close open the door afresh once, the second extends (one open command, one close)", async () => {
  const { opener, runs, events, told, knock } = await scriptedOpener(
    () => 0,
    (argv0) => argv0 === "/bin/deny" ? 300 : 0,
  );
  knock("first");
  await opener.settled();
  const revoking = opener.revoke({ door: "web" });
  await new Promise((r) => setTimeout(r, 50));
  knock("a");
  await new Promise((r) => setTimeout(r, 50));
  knock("b");
  await revoking;
  await opener.settled();
  assertEquals(runs, ["/bin/allow", "/bin/deny", "/bin/allow"]);
  assertEquals(events, ["opened", "closed", "opened", "extended"]);
  assertEquals(told, ["first true", "a true", "b true"]);
  assertEquals(opener.records().length, 1);
  await opener.revoke({ door: "web" });
  assertEquals(runs.at(-1), "/bin/deny");
  opener.cancelTimers();
});
