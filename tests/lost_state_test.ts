/**
 * Lost state fails closed for longer than one start: what a lost start decided (floors,
 * the SPA horizon) is durable, so the next start, after a clean stop, still refuses what
 * may have been used before the loss.
 */
import { assertEquals } from "./_assert.ts";
import { SECRET_B64 } from "./_daemon.ts";
import { parseConfig } from "../lib/config/load.ts";
import { Daemon, type DaemonEvent } from "../lib/daemon/daemon.ts";
import { DryRunFirewall, ManualClock, MemoryListeners } from "../lib/testing/mod.ts";
import { type LoadResult, MemoryStore } from "../lib/store/store.ts";
import { encodeSpa } from "../lib/spa/fko.ts";
import { codeForCounter } from "../lib/code.ts";
import type { SpaDoor } from "../lib/config/types.ts";

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
const HMAC = btoa(String.fromCharCode(...new Uint8Array(64).fill(9)));
const PERIOD = 30_000;
const CONFIG = `
doors:
  spa:
    spa: { port: 62201, key_base64: "${KEY}", hmac_key_base64: "${HMAC}", max_age: 2m }
    open: { for: 30s, nft: { port: 22 } }
  ssh:
    secret: "${SECRET_B64}"
    ports: "20000-20099"
    length: 3
    open: { for: 30s, nft: { port: 22 } }
`;

/** A store that reports its state lost at the first load, as after a power loss. */
class OnceLostStore extends MemoryStore {
  #lost = true;
  override load(): Promise<LoadResult> {
    if (!this.#lost) return super.load();
    this.#lost = false;
    return Promise.resolve({ kind: "lost", evidence: "the machine stopped (test)" });
  }
}

async function run(store: MemoryStore, now: number) {
  const config = parseConfig(CONFIG, "test.yaml");
  const events: DaemonEvent[] = [];
  let listeners: MemoryListeners | undefined;
  const daemon = await Daemon.start({
    config,
    store,
    runner: { run: () => Promise.reject(), spawn: () => ({}) as never, close() {} },
    clock: new ManualClock(now),
    firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
    listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
    onEvent: (e) => events.push(e),
  });
  return { daemon, config, events, listeners: listeners! };
}

Deno.test("lost state: the SPA packets and codes of before the loss stay refused after a clean restart", async () => {
  const T = 1_800_000_000_000; // a multiple of the period: the window is T-1 … T+1
  const store = new OnceLostStore();
  // Used just before the loss, and lost with it: a packet and a code an observer captured.
  const spaDoor = parseConfig(CONFIG, "t").doors[0] as SpaDoor;
  const captured = encodeSpa(
    { user: "u", timestamp: (T - 1000) / 1000, type: 1, message: "0.0.0.0,tcp/22" },
    spaDoor.spa.keys,
  );
  const first = await run(store, T);
  await first.daemon.stop(); // the lost start ends cleanly, with nothing sent
  const second = await run(store, T + 5000);
  try {
    second.listeners.packet("192.0.2.66", 62201, captured, T + 5000);
    const code = (await codeForCounter(second.config.doors[1], T / PERIOD)).knocks;
    code.forEach((k, i) => second.listeners.knock("192.0.2.67", k.protocol, k.port, T + 5000 + i));
    await second.daemon.settled();
    assertEquals(
      second.events.filter((e) => e.kind === "opened"),
      [],
      "neither the captured packet nor the code of the lost window opened",
    );
    // A packet made now still opens: the horizon is the lost start's time + max_age.
    const fresh = encodeSpa(
      { user: "u", timestamp: (T + 2 * 60_000 + 1000) / 1000, type: 1, message: "0.0.0.0,tcp/22" },
      spaDoor.spa.keys,
    );
    second.listeners.packet("192.0.2.68", 62201, fresh, T + 2 * 60_000 + 1000);
    await second.daemon.settled();
    assertEquals(second.events.filter((e) => e.kind === "opened").length, 1);
  } finally {
    await second.daemon.stop();
  }
});

Deno.test("a clock that restarts behind the latest time committed does not lengthen the doors still open", async () => {
  const T = 1_800_000_000_000;
  const store = new MemoryStore();
  const first = await run(store, T);
  const code = (await codeForCounter(first.config.doors[1], T / PERIOD)).knocks;
  code.forEach((k, i) => first.listeners.knock("192.0.2.67", k.protocol, k.port, T + i));
  await first.daemon.settled();
  assertEquals(first.daemon.openDoors().map((r) => r.until), [T + 30_000]);
  await first.daemon.stop();
  // Started again with the clock an hour behind (stepped back while sesame was down).
  const second = await run(store, T - 3_600_000);
  try {
    const [record] = second.daemon.openDoors();
    assertEquals(
      record.until - (T - 3_600_000) <= 30_000,
      true,
      `the door has ${record.until - (T - 3_600_000)} ms left, not an hour more`,
    );
  } finally {
    await second.daemon.stop();
  }
});
