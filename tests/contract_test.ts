/**
 * Contract suites: one suite run on a twin and on the real thing, so the twins the other
 * tests use behave as what they stand for. Store: MemoryStore and SqliteStore. Listeners:
 * MemoryListeners and SocketListeners (real sockets on 127.0.0.1).
 */
import { assertEquals } from "./_assert.ts";
import { tempDir } from "./_cli.ts";
import { MemoryStore, type OpenRecord, type Store } from "../lib/store/store.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { MemoryListeners } from "../lib/testing/mod.ts";
import { SocketListeners } from "../lib/net/listeners.ts";
import type { Listeners } from "../lib/net/listeners.ts";
import type { HeardKnock } from "../lib/knock.ts";
import { randomBase } from "./_daemon.ts";

const RECORD: OpenRecord = { door: "ssh", source: "192.0.2.7", until: 5000, close: null };

const stores: [
  string,
  () => Promise<{ store: Store; reopen: () => Store; done: () => Promise<void> }>,
][] = [
  ["MemoryStore", () => {
    const store = new MemoryStore();
    return Promise.resolve({ store, reopen: () => store, done: () => Promise.resolve() });
  }],
  ["SqliteStore", async () => {
    const dir = await tempDir();
    const path = `${dir.path}/state.db`;
    return {
      store: new SqliteStore(path),
      reopen: () => new SqliteStore(path),
      done: async () => await dir[Symbol.asyncDispose](),
    };
  }],
];

for (const [name, make] of stores) {
  Deno.test(`store contract (${name}): marks only rise, records replace by door and source, closes remove, all survive a reopen`, async () => {
    const { store, reopen, done } = await make();
    try {
      await store.load();
      const owner = { door: "ssh", secret: "f1" };
      await store.commit({ used: [{ ...owner, counter: 10 }], opened: [RECORD], now: 1000 });
      await store.commit({ used: [{ ...owner, counter: 7 }], now: 900 }); // never lowers
      await store.commit({ opened: [{ ...RECORD, until: 9000, pending: ["/bin/true"] }] });
      await store.commit({ opened: [{ ...RECORD, source: "192.0.2.8" }] });
      await store.commit({ closed: [{ door: "ssh", source: "192.0.2.8" }] });
      await store.commit({ spa: [{ digest: "d", seen: 3000 }], refuseSpaBefore: 2000 });
      if (name !== "MemoryStore") store.close(); // a memory store lives on; a file is reopened
      const again = reopen();
      const loaded = await again.load();
      if (loaded.kind !== "ok") throw new Error(`loaded ${loaded.kind}`);
      const { state } = loaded;
      assertEquals(state.used.map((c) => [c.door, c.secret, c.counter]), [["ssh", "f1", 10]]);
      assertEquals(state.open.map((r) => [r.source, r.until, r.pending]), [[
        "192.0.2.7",
        9000,
        ["/bin/true"],
      ]]);
      assertEquals(state.spa, [{ digest: "d", seen: 3000 }]);
      assertEquals(state.spaRefuseBefore, 2000);
      assertEquals(state.maxTime, 1000);
      again.close();
    } finally {
      await done();
    }
  });
}

const listenersOf: [string, (sink: { knock(k: HeardKnock): void; packet(): void }) => Listeners][] =
  [
    ["MemoryListeners", (sink) => new MemoryListeners(sink, { now: () => 1000 })],
    ["SocketListeners", (sink) => new SocketListeners(sink, { now: () => 1000 })],
  ];

for (const [name, make] of listenersOf) {
  Deno.test(`listeners contract (${name}): bound ports hear TCP and UDP knocks with their proof; unbound ones do not; update keeps what stays`, async () => {
    const heard: string[] = [];
    const listeners = make({
      knock: (k) => heard.push(`${k.source} ${k.port}/${k.protocol} ${k.proof} ${k.at}`),
      packet() {},
    });
    const base = randomBase(10);
    try {
      const failures = listeners.update([
        { hostname: "127.0.0.1", port: base, protocol: "tcp" },
        { hostname: "127.0.0.1", port: base + 1, protocol: "udp" },
      ]);
      assertEquals(failures, []);
      assertEquals(listeners.size, 2);
      const knock = async (port: number, protocol: "tcp" | "udp") => {
        if (listeners instanceof MemoryListeners) {
          listeners.knock("127.0.0.9", protocol, port);
          return;
        }
        const { sendKnock } = await import("../lib/net/sender.ts");
        await sendKnock({ port, protocol }, { host: "127.0.0.1", localAddress: "127.0.0.9" });
        const deadline = Date.now() + 2000; // real sockets deliver on their own time
        while (heard.length === 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 2));
        }
      };
      await knock(base, "tcp");
      assertEquals(heard.splice(0), [`127.0.0.9 ${base}/tcp handshake 1000`]);
      await knock(base + 1, "udp");
      assertEquals(heard.splice(0), [`127.0.0.9 ${base + 1}/udp datagram 1000`]);
      // Updated to the TCP port only: it keeps hearing; the UDP port no longer does.
      assertEquals(listeners.update([{ hostname: "127.0.0.1", port: base, protocol: "tcp" }]), []);
      assertEquals(listeners.size, 1);
      await knock(base, "tcp");
      assertEquals(heard.splice(0), [`127.0.0.9 ${base}/tcp handshake 1000`]);
    } finally {
      listeners.closeAll();
    }
  });
}
