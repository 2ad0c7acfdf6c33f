/**
 * The fleet's parts against a real etcd on loopback: a claim whose first answer was lost
 * knows its own mark; the watch of shared doors outlives the call time limit; a key no one
 * can decode does not stop it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { HAVE_ETCD, startEtcd } from "./_etcd.ts";
import { EtcdClient } from "../lib/cluster/etcd.ts";
import { FleetClaims } from "../lib/cluster/claims.ts";
import { LeasePool } from "../lib/cluster/leases.ts";
import { SharedDoors, type SharedDoorsOptions } from "../lib/cluster/shared_doors.ts";
import { grantKey, grantValue } from "../lib/cluster/fleet_keys.ts";
import { systemClock } from "../lib/clock.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { Grant } from "../lib/cluster/fleet_keys.ts";
import { MemoryStore, type OpenRecord } from "../lib/store/store.ts";
import { Opener, type OpenerOptions } from "../lib/daemon/opener.ts";
import { DryRunFirewall } from "../lib/testing/mod.ts";
import { Counters } from "../lib/counters.ts";

const ignore = !Deno.env.get("CI") && !HAVE_ETCD;

/** Writes a grant of door ssh (by gateway `node`, default b) for `source` in etcd; its revision. */
async function putGrant(
  client: Pick<EtcdClient, "txn">,
  source: string,
  { group = "web", node = "b", until = Date.now() + 60_000, revoked = false } = {},
): Promise<string> {
  const grant = { group, door: "ssh", source, until, node };
  const value = grantValue(revoked ? { ...grant, revoked: true, revokedBy: node } : grant);
  const key = grantKey("/sesame/", group, "ssh", source);
  return (await client.txn({ compare: [], success: [{ put: { key, value } }], failure: [] }))
    .revision;
}

/** Shared doors of gateway `node` on door ssh (group web unless told), mirroring into nothing. */
function sharedOf(
  options: Partial<SharedDoorsOptions> & Pick<SharedDoorsOptions, "client" | "leases" | "node">,
): SharedDoors {
  return new SharedDoors({
    clock: systemClock,
    prefix: "/sesame/",
    groups: ["web"],
    door: () => door,
    open: () => Promise.resolve(true),
    close: () => Promise.resolve(),
    ...options,
  });
}

/** Gateway `node`'s claims through `client`, keys under /sesame/. */
function claimsOf(
  client: Pick<EtcdClient, "txn" | "grantLease">,
  node: string,
  leases?: LeasePool,
) {
  return new FleetClaims({
    client,
    leases: leases ?? new LeasePool(client, systemClock),
    clock: systemClock,
    prefix: "/sesame/",
    node,
  });
}
/** An opener on a memory store and `nft` (iptables: a dry run); commands are never run. */
function openerOn(nft: DryRunFirewall, store: MemoryStore, fleet?: OpenerOptions["fleet"]): Opener {
  return new Opener({
    store,
    firewalls: { nft, iptables: new DryRunFirewall() },
    runner: {
      run: () => Promise.reject(),
      spawn: () => {
        throw new Error();
      },
      close() {},
    },
    clock: systemClock,
    counters: new Counters(),
    report: () => {},
    ...(fleet ? { fleet } : {}),
  });
}
const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const door = validateConfig({
  cluster: { node: "a", groups: ["web"], etcd: { endpoints: ["http://127.0.0.1:1"] } },
  doors: { ssh: { secret: SECRET, ports: "20000-20999", share: "web", open: { for: "60s" } } },
}).doors[0];

Deno.test({
  name:
    "fleet: a claim whose first answer was lost (committed, then an error) is its own, not a replay",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    // A member that commits the first transaction and then answers "timed out".
    let lost = 0;
    const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const path = new URL(req.url).pathname;
      const answer = await fetch(etcd.url + path, { method: "POST", body: await req.text() });
      const text = await answer.text();
      if (path === "/v3/kv/txn" && lost++ === 0) {
        return Response.json({ error: "etcdserver: request timed out", code: 14 }, { status: 503 });
      }
      return new Response(text, { status: answer.status });
    });
    const client = new EtcdClient({
      endpoints: [`http://127.0.0.1:${proxy.addr.port}`, etcd.url],
      timeoutMs: 2000,
    });
    try {
      const claims = (node: string) => claimsOf(client, node);
      const code = { door: "ssh", secret: "fp", prefix: "192.0.2.7/32", counter: 58_000_000 };
      const first = await claims("a").claim({ door, source: "192.0.2.7", code });
      assertEquals(first.ok, true);
      assertEquals(lost, 1); // one lost answer; the same transaction went on to the next member
      // Another node with the same code: refused.
      const again = await claims("b").claim({ door, source: "192.0.2.7", code });
      assertEquals(again.ok ? "opened" : again.reason, "used-elsewhere");
    } finally {
      client.close();
      await proxy.shutdown();
    }
  },
});

Deno.test({
  name:
    "fleet: an SPA packet opens on one gateway only, and a code older than the fleet's mark is refused",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 });
    try {
      const claims = (node: string) => claimsOf(client, node);
      const spa = { digest: "q83vEjRWeJA=", seen: Date.now() };
      const [a, b] = await Promise.all([
        claims("a").claim({ door, source: "192.0.2.7", spa }),
        claims("b").claim({ door, source: "192.0.2.7", spa }),
      ]);
      assertEquals([a.ok, b.ok].filter(Boolean).length, 1);
      // Marks only move up: after counter N, N - 1 is refused and N + 1 opens.
      const code = (counter: number) => ({ door: "ssh", secret: "fp", counter });
      assertEquals(
        (await claims("a").claim({ door, source: "192.0.2.8", code: code(100) })).ok,
        true,
      );
      assertEquals(
        (await claims("b").claim({ door, source: "192.0.2.8", code: code(99) })).ok,
        false,
      );
      assertEquals(
        (await claims("b").claim({ door, source: "192.0.2.8", code: code(101) })).ok,
        true,
      );
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name:
    "fleet: the watch of shared doors outlives the call time limit, and skips a key no one can decode",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 300 });
    const opened: string[] = [];
    const connection: boolean[] = [];
    const shared = sharedOf({
      client,
      leases: new LeasePool(client, systemClock),
      node: "b",
      open: (_door, grant: Grant) => {
        opened.push(grant.source);
        return Promise.resolve(true);
      },
      onConnection: (up) => connection.push(up),
    });
    try {
      shared.start();
      const until = Date.now() + 60_000;
      const put = (key: string, value: string) =>
        client.txn({ compare: [], success: [{ put: { key, value } }], failure: [] });
      await put("/sesame/doors/web/%E0/x", "{}"); // not a key sesame wrote
      const grant = { group: "web", door: "ssh", source: "192.0.2.7", until, node: "a" };
      await put(grantKey("/sesame/", "web", "ssh", "192.0.2.7"), grantValue(grant));
      // Five times the call time limit: one open, one connection, never lost.
      await new Promise((r) => setTimeout(r, 1500));
      assertEquals(opened, ["192.0.2.7"]);
      assertEquals(connection, [true]);
      assert(shared.connected);
      assertEquals(shared.grants().map((g) => g.source), ["192.0.2.7"]);
    } finally {
      await shared.stop();
      client.close();
    }
  },
});

Deno.test({
  name: "fleet: a lease etcd lost (a restore, a revoke by hand) is replaced, not used for ever",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 });
    try {
      const claims = claimsOf(client, "a");
      const code = (prefix: string) => ({ door: "ssh", secret: "fp", prefix, counter: 7 });
      assertEquals((await claims.claim({ door, source: "192.0.2.7", code: code("1") })).ok, true);
      // Every lease revoked behind sesame's back.
      const post = async (path: string, body: unknown) =>
        await (await fetch(etcd.url + path, { method: "POST", body: JSON.stringify(body) })).json();
      const { leases } = await post("/v3/lease/leases", {});
      assert(leases.length > 0);
      for (const { ID } of leases) await post("/v3/lease/revoke", { ID });
      const next = await claims.claim({ door, source: "192.0.2.8", code: code("2") });
      assertEquals(next.ok ? "opened" : next.detail, "opened");
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name:
    "fleet: revoke reaches every live grant of the door's group (over 128, and whatever their until), and no other group's",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 });
    const closed: string[] = [];
    const shared = sharedOf({
      client,
      leases: new LeasePool(client, systemClock),
      node: "b",
      groups: ["web", "db"], // door ssh is shared with web
      close: (grant) => {
        closed.push(`${grant.group} ${grant.source}`);
        return Promise.resolve();
      },
    });
    try {
      shared.start();
      const put = (group: string, source: string, until: number) =>
        putGrant(client, source, { group, until, node: "a" });
      const now = Date.now();
      for (let i = 0; i < 150; i++) await put("web", `198.51.100.${i}`, now + 60_000);
      await put("web", "203.0.113.1", now - 1000); // a shorter grant over a longer mirror
      await put("db", "198.51.100.1", now + 60_000); // another group's door of that name
      const deadline = Date.now() + 5000;
      while (shared.grants().length < 151 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(await shared.revoke("ssh"), 151);
      while (closed.length < 151 && Date.now() < deadline + 5000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(closed.length, 151);
      assert(closed.includes("web 203.0.113.1"));
      assert(!closed.some((c) => c.startsWith("db ")));
    } finally {
      await shared.stop();
      client.close();
    }
  },
});

Deno.test("fleet: a shared door whose local commit fails takes its grant back (the other gateways close it too)", async () => {
  const store = new MemoryStore();
  store.failWith = new Error("disk full");
  const withdrawn: string[] = [];
  const nft = new DryRunFirewall();
  const opener = openerOn(nft, store, {
    claim: () => Promise.resolve({ ok: true, until: Date.now() + 60_000 }),
    withdraw: (r) => {
      withdrawn.push(`${r.door.name} ${r.source}`);
      return Promise.resolve();
    },
  });
  const told: boolean[] = [];
  opener.request({ door, source: "192.0.2.7", acted: (opened) => told.push(opened) });
  await opener.settled();
  assertEquals(nft.calls, []); // shut here
  assertEquals(withdrawn, ["ssh 192.0.2.7"]); // and taken back in the fleet
  assertEquals(told, [false]); // a mirror waiting on it hears so
  opener.cancelTimers();
});

Deno.test({
  name:
    "fleet: a revoke written before this gateway's newer grant of the same source does not close its fresh door",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 });
    const leases = new LeasePool(client, systemClock);
    const own = new Map<string, bigint>();
    const closed: string[] = [];
    // A slow watch: its events wait at the gate (the revoke is read after this gateway's claim).
    let open!: () => void;
    const gate = new Promise<void>((r) => open = r);
    const slow = {
      range: client.range.bind(client),
      txn: client.txn.bind(client),
      async *watch(prefix: string, from: string, signal: AbortSignal) {
        for await (const events of client.watch(prefix, from, signal)) {
          await gate;
          yield events;
        }
      },
    };
    const shared = sharedOf({
      client: slow,
      leases,
      node: "a",
      ownNewer: (key, revision) => (own.get(key) ?? -1n) > BigInt(revision),
      close: (grant) => {
        closed.push(grant.source);
        return Promise.resolve();
      },
    });
    try {
      shared.start();
      const deadline = Date.now() + 5000;
      while (!shared.connected && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const key = grantKey("/sesame/", "web", "ssh", "192.0.2.7");
      const put = (revoked: boolean) => putGrant(client, "192.0.2.7", { revoked });
      await put(false); // b's grant, mirrored here
      const revoke = BigInt(await put(true)); // b revokes it
      // This gateway's claim of the same source, written after the revoke.
      const claims = claimsOf(client, "a", leases);
      const mine = await claims.claim({
        door,
        source: "192.0.2.7",
        code: { door: "ssh", secret: "fp", prefix: "192.0.2.7/32", counter: 5 },
      });
      assert(mine.ok && mine.revision !== undefined && BigInt(mine.revision) > revoke);
      own.set(key, BigInt(mine.revision!));
      open(); // the watch reads the revoke only now: stale, nothing closes
      await new Promise((r) => setTimeout(r, 700));
      assertEquals(closed, []);
      // A revoke written after this gateway's grant closes it.
      await put(true);
      while (closed.length === 0 && Date.now() < deadline + 3000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(closed, ["192.0.2.7"]);
    } finally {
      await shared.stop();
      client.close();
    }
  },
});

Deno.test({
  name:
    "fleet: claims of one turn go in one transaction; each keeps its own verdict, and one code claimed twice opens once",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 5000 });
    let transactions = 0;
    const counting = {
      txn: (t: Parameters<typeof client.txn>[0]) => {
        transactions++;
        return client.txn(t);
      },
      grantLease: client.grantLease.bind(client),
    };
    try {
      const claims = claimsOf(counting, "a");
      const code = (i: number) => ({
        door: "ssh",
        secret: "fp",
        prefix: `10.0.${i >> 8}.${i & 255}/32`,
        counter: 9,
      });
      await claims.claim({ door, source: "10.9.9.9", code: code(9999) }); // the lease, once
      transactions = 0;
      // 200 sources at once, and one source's code 20 times among them.
      const verdicts = await Promise.all([
        ...Array.from(
          { length: 200 },
          (_, i) => claims.claim({ door, source: `10.0.${i >> 8}.${i & 255}`, code: code(i) }),
        ),
        ...Array.from(
          { length: 20 },
          () => claims.claim({ door, source: "10.1.1.1", code: code(5000) }),
        ),
      ]);
      assertEquals(verdicts.slice(0, 200).filter((v) => v.ok).length, 200);
      assertEquals(verdicts.slice(200).filter((v) => v.ok).length, 1);
      assert(transactions <= 40, `${transactions} transactions for 220 claims`);
      // And each mark is in etcd.
      const { kvs } = await client.range("/sesame/marks/");
      assertEquals(kvs.length, 202);
    } finally {
      client.close();
    }
  },
});

/**
 * SharedDoors over a client whose watch can be broken on demand and whose next re-read
 * waits for a gate: a gateway cut off while things change in etcd.
 */
function flakyClient(client: EtcdClient) {
  let breakWatch!: () => void;
  let ranges = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  return {
    cut: () => breakWatch(),
    reconnect: () => release(),
    client: {
      txn: client.txn.bind(client),
      async range(prefix: string) {
        if (++ranges > 1) await gate;
        return client.range(prefix);
      },
      async *watch(prefix: string, from: string, signal: AbortSignal) {
        const inner = new AbortController();
        new Promise<void>((r) => breakWatch = r).then(() => inner.abort());
        yield* client.watch(prefix, from, AbortSignal.any([signal, inner.signal]));
        if (inner.signal.aborted && !signal.aborted) throw new Error("connection lost");
      },
    },
  };
}

const until = (check: () => boolean, ms = 3000) =>
  (async () => {
    const end = Date.now() + ms;
    while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  })();

Deno.test({
  name:
    "fleet: after a reconnect, a revoke newer than this gateway's own grant closes the door, and a grant gone before its time is closed",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 });
    const leases = new LeasePool(client, systemClock);
    const own = new Map<string, bigint>();
    const closed: string[] = [];
    const flaky = flakyClient(client);
    const shared = sharedOf({
      client: flaky.client,
      leases,
      node: "a",
      ownNewer: (key, revision) => (own.get(key) ?? -1n) > BigInt(revision),
      close: (grant) => {
        closed.push(grant.source);
        return Promise.resolve();
      },
    });
    const put = (source: string, revoked: boolean) => putGrant(client, source, { revoked });
    try {
      shared.start();
      await until(() => shared.connected);
      await put("192.0.2.7", false);
      await put("192.0.2.7", true); // b revokes: this gateway's view holds the revoke
      await put("192.0.2.9", false); // another source, live
      await until(() => closed.length === 1);
      assertEquals(closed, ["192.0.2.7"]);
      // 192.0.2.9's grant reaches this gateway's view before the cut (it arrives after the
      // revoke: cut sooner, this gateway never saw it, and rightly closes nothing for it).
      await until(() => shared.grants().some((g) => g.source === "192.0.2.9"));
      closed.length = 0;
      flaky.cut(); // cut off; the re-read waits
      await until(() => !shared.connected);
      // Meanwhile this gateway opens 192.0.2.7 again (its claim commits) ...
      const claims = claimsOf(client, "a", leases);
      const mine = await claims.claim({
        door,
        source: "192.0.2.7",
        code: { door: "ssh", secret: "fp", prefix: "192.0.2.7/32", counter: 5 },
      });
      assert(mine.ok && mine.revision !== undefined);
      own.set(grantKey("/sesame/", "web", "ssh", "192.0.2.7"), BigInt(mine.revision!));
      await put("192.0.2.7", true); // ... and b revokes it after that grant
      // ... and 192.0.2.9's grant leaves etcd early (revoked, and its revoke's lease ended).
      await fetch(`${etcd.url}/v3/kv/deleterange`, {
        method: "POST",
        body: JSON.stringify({ key: btoa(grantKey("/sesame/", "web", "ssh", "192.0.2.9")) }),
      }).then((r) => r.text());
      flaky.reconnect();
      await until(() => closed.length === 2);
      assertEquals(closed.sort(), ["192.0.2.7", "192.0.2.9"]);
    } finally {
      await shared.stop();
      client.close();
    }
  },
});

Deno.test({
  name:
    "fleet: after etcd is restored to lower revisions, a revoke of this gateway's own grant still closes it",
  ignore,
  async fn() {
    const { Fleet } = await import("../lib/cluster/fleet.ts");
    const first = await startEtcd();
    const closed: string[] = [];
    const opener = {
      request: () => {},
      settled: () => Promise.resolve(),
      records: () => [],
      revoke: (match: { source?: string }) => {
        closed.push(match.source!);
        return Promise.resolve({ closed: [], failed: [] });
      },
    };
    const config = validateConfig({
      cluster: { node: "a", groups: ["web"], etcd: { endpoints: [first.url], timeout: "1s" } },
      // A short `for`: this gateway's own grant has ended before the restore (a grant gone
      // before its time is closed on its own account, which would hide what is tested here).
      doors: { ssh: { secret: SECRET, ports: "20000-20999", share: "web", open: { for: "1s" } } },
    });
    const fleet = (await Fleet.forConfig(config, {
      clock: systemClock,
      door: () => config.doors[0],
      opener: () => opener as never,
    }))!;
    const client = new EtcdClient({ endpoints: [first.url], timeoutMs: 2000 });
    try {
      fleet.start();
      await until(() => fleet.status().connected);
      // Revisions climb: 50 writes, then this gateway's claim of 192.0.2.7.
      for (let i = 0; i < 50; i++) {
        await client.txn({
          compare: [],
          success: [{ put: { key: `/x/${i}`, value: "" } }],
          failure: [],
        });
      }
      const mine = await fleet.claim({
        door: config.doors[0],
        source: "192.0.2.7",
        code: { door: "ssh", secret: "fp", prefix: "192.0.2.7/32", counter: 5 },
      });
      assert(mine.ok && BigInt(mine.revision!) > 50n);
      await new Promise((r) => setTimeout(r, 1200)); // its grant's time passes
      // etcd is restored (here: a fresh member where the old one ran): revisions start low.
      const ports = first.ports;
      await first[Symbol.asyncDispose]();
      await until(() => !fleet.status().connected, 5000);
      await using second = await startEtcd(ports);
      await until(() => fleet.status().connected, 15_000);
      assert(fleet.status().connected);
      const again = new EtcdClient({ endpoints: [second.url], timeoutMs: 2000 });
      try {
        await putGrant(again, "192.0.2.7");
        await putGrant(again, "192.0.2.7", { revoked: true });
      } finally {
        again.close();
      }
      await until(() => closed.length > 0);
      assertEquals(closed, ["192.0.2.7"]);
    } finally {
      await fleet.stop();
      client.close();
      await first[Symbol.asyncDispose](); // again: harmless
    }
  },
});

Deno.test({
  name:
    "fleet: a mirrored grant is confirmed once it opened here, while a steady stream of other opens keeps the opener busy",
  ignore,
  async fn() {
    const { Fleet } = await import("../lib/cluster/fleet.ts");
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Each opening takes 30 ms in the firewall; one is asked every 10 ms: never idle.
    class SlowFirewall extends DryRunFirewall {
      override async open(record: OpenRecord): Promise<void> {
        await sleep(30);
        return super.open(record);
      }
    }
    await using etcd = await startEtcd();
    const nft = new SlowFirewall();
    const opener = openerOn(nft, new MemoryStore());
    const config = validateConfig({
      cluster: { node: "a", groups: ["web"], etcd: { endpoints: [etcd.url], timeout: "1s" } },
      doors: {
        ssh: {
          secret: SECRET,
          ports: "20000-20999",
          share: "web",
          open: { for: "60s", nft: { port: 22 } },
        },
      },
    });
    const fleet = (await Fleet.forConfig(config, {
      clock: systemClock,
      door: () => config.doors[0],
      opener: () => opener,
    }))!;
    const client = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 });
    let streaming = true;
    try {
      fleet.start();
      await until(() => fleet.status().connected);
      // The stream: bounded to 4 s and 400 opens.
      const stream = (async () => {
        const end = Date.now() + 4000;
        for (let i = 0; streaming && i < 400 && Date.now() < end; i++) {
          opener.request({ door: config.doors[0], source: `2001:db8::${i.toString(16)}` });
          await sleep(10);
        }
        streaming = false;
      })();
      await sleep(300);
      await putGrant(client, "192.0.2.7"); // gateway b decided it
      const confirmed = () =>
        fleet.status().grants.some((g) => g.source === "192.0.2.7" && g.confirmed.includes("a"));
      await until(confirmed, 2000);
      const whileBusy = streaming;
      streaming = false;
      await stream;
      assert(nft.calls.includes("open ssh 192.0.2.7"), "the grant opened here");
      assert(confirmed(), "gateway a confirmed the grant");
      assert(whileBusy, "confirmed only once the stream of opens had ended");
    } finally {
      streaming = false;
      await fleet.stop();
      await opener.settled();
      opener.cancelTimers();
      client.close();
    }
  },
});

Deno.test({
  name:
    "fleet: with auth on, an expired token is renewed: a call after the token's time succeeds, and after etcd restarts (every token gone) the watch comes back",
  ignore,
  async fn() {
    // Simple tokens live 1 s without use; a restart forgets them all.
    await using etcd = await startEtcd(undefined, ["--auth-token-ttl=1"]);
    const etcdctl = async (...args: string[]) => {
      const out = await new Deno.Command("etcdctl", {
        args: [`--endpoints=${etcd.url}`, "--command-timeout=3s", ...args],
        env: { ETCDCTL_API: "3" },
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(`etcdctl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    // The documented setup: a user per gateway whose role reaches only /sesame/.
    await etcdctl("role", "add", "sesame");
    await etcdctl("role", "grant-permission", "sesame", "--prefix=true", "readwrite", "/sesame/");
    await etcdctl("user", "add", "gw", "--new-user-password", "gw-password");
    await etcdctl("user", "grant-role", "gw", "sesame");
    await etcdctl("user", "add", "root", "--new-user-password", "root-password");
    await etcdctl("user", "grant-role", "root", "root");
    await etcdctl("auth", "enable");
    const settings = {
      endpoints: [etcd.url],
      timeoutMs: 2000,
      user: "gw",
      password: "gw-password",
    };
    const client = new EtcdClient(settings);
    const writer = new EtcdClient(settings);
    const mirrored: string[] = [];
    const shared = sharedOf({
      client,
      leases: new LeasePool(client, systemClock),
      node: "a",
      open: (_door, grant) => (mirrored.push(grant.source), Promise.resolve(true)),
    });
    try {
      shared.start();
      await until(() => shared.connected);
      await putGrant(writer, "192.0.2.7");
      await until(() => mirrored.includes("192.0.2.7"));
      // Unused for longer than its time: the writer's token has expired. The call renews it.
      await new Promise((r) => setTimeout(r, 2500));
      await putGrant(writer, "192.0.2.8");
      await until(() => mirrored.includes("192.0.2.8"));
      // A restart: the watch ends, and its old token is unknown when it comes back.
      await etcd.restart();
      await until(() => !shared.connected, 5000);
      await until(() => shared.connected, 15_000);
      let written = false;
      for (let i = 0; i < 20 && !written; i++) { // the member may still be electing itself
        written = await putGrant(writer, "192.0.2.9").then(() => true, () => false);
        if (!written) await new Promise((r) => setTimeout(r, 250));
      }
      assert(written, "the writer's call went through after the restart");
      await until(() => mirrored.includes("192.0.2.9"), 5000);
      assertEquals(mirrored, ["192.0.2.7", "192.0.2.8", "192.0.2.9"]);
    } finally {
      await shared.stop();
      client.close();
      writer.close();
    }
  },
});
