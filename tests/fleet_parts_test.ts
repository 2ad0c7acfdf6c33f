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
import { SharedDoors } from "../lib/cluster/shared_doors.ts";
import { grantKey, grantValue } from "../lib/cluster/fleet_keys.ts";
import { systemClock } from "../lib/clock.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { Grant } from "../lib/cluster/fleet_keys.ts";

const ignore = !Deno.env.get("CI") && !HAVE_ETCD;
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
      const claims = (node: string) =>
        new FleetClaims({
          client,
          leases: new LeasePool(client, systemClock),
          clock: systemClock,
          prefix: "/sesame/",
          node,
        });
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
      const claims = (node: string) =>
        new FleetClaims({
          client,
          leases: new LeasePool(client, systemClock),
          clock: systemClock,
          prefix: "/sesame/",
          node,
        });
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
    const shared = new SharedDoors({
      client,
      leases: new LeasePool(client, systemClock),
      clock: systemClock,
      prefix: "/sesame/",
      node: "b",
      groups: ["web"],
      door: () => door,
      open: (_door, grant: Grant) => {
        opened.push(grant.source);
        return Promise.resolve(true);
      },
      close: () => Promise.resolve(),
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
