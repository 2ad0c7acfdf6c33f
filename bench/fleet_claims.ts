/**
 * The fleet's cost per knock: the claim transaction (a code's mark moved in etcd) against a
 * real etcd started here (one member on 127.0.0.1, data on tmpfs), at 20 claims/s, and the
 * most claims/s with 64 in flight. This is the etcd part of knock→open only: the full path
 * with nft and two gateways is not measured here (see BENCHMARKS.md).
 *
 * Usage: deno run -A bench/fleet_claims.ts   (needs /usr/bin/etcd)
 */
import { EtcdClient } from "../lib/cluster/etcd.ts";
import { FleetClaims } from "../lib/cluster/claims.ts";
import { LeasePool } from "../lib/cluster/leases.ts";
import { systemClock } from "../lib/clock.ts";
import { validateConfig } from "../lib/config/validate.ts";

const data = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "sesame-bench-etcd-" });
const port = 23790 + Math.floor(Math.random() * 100);
const etcd = new Deno.Command("etcd", {
  args: [
    "--data-dir",
    data,
    "--listen-client-urls",
    `http://127.0.0.1:${port}`,
    "--advertise-client-urls",
    `http://127.0.0.1:${port}`,
    "--listen-peer-urls",
    `http://127.0.0.1:${port + 1000}`,
    "--initial-advertise-peer-urls",
    `http://127.0.0.1:${port + 1000}`,
    "--initial-cluster",
    `default=http://127.0.0.1:${port + 1000}`,
    "--log-level",
    "error",
  ],
  stdout: "null",
  stderr: "null",
}).spawn();
try {
  const client = new EtcdClient({ endpoints: [`http://127.0.0.1:${port}`], timeoutMs: 2000 });
  for (let i = 0;; i++) {
    try {
      await client.range("/sesame/");
      break;
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const door = validateConfig({
    cluster: { node: "bench", etcd: { endpoints: ["http://127.0.0.1:1"] } },
    doors: {
      ssh: {
        secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ports: "20000-20999",
        open: {},
      },
    },
  }).doors[0];
  const claims = new FleetClaims({
    client,
    leases: new LeasePool(client, systemClock),
    clock: systemClock,
    prefix: "/sesame/",
    node: "bench",
  });
  let n = 0;
  const claim = async () => {
    const prefix = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`;
    n++;
    const t0 = performance.now();
    const verdict = await claims.claim({
      door,
      source: prefix.split("/")[0],
      code: { door: "ssh", secret: "fp", prefix, counter: 58_000_000 },
    });
    if (!verdict.ok) throw new Error(`refused: ${verdict.reason}`);
    return performance.now() - t0;
  };
  const pct = (xs: number[], p: number) =>
    xs.toSorted((a, b) => a - b)[Math.floor(p * (xs.length - 1))];
  // 20 claims a second for 10 s.
  const paced: number[] = [];
  for (let i = 0; i < 200; i++) {
    const next = performance.now() + 50;
    paced.push(await claim());
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  console.log(`20/s: p50 ${pct(paced, 0.5).toFixed(1)} ms, p99 ${pct(paced, 0.99).toFixed(1)} ms`);
  // As many as 64 in flight allow, 3 000 claims.
  const t0 = performance.now();
  const all: number[] = [];
  let left = 3000;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (left-- > 0) all.push(await claim());
  }));
  const rate = all.length / ((performance.now() - t0) / 1000);
  console.log(
    `64 in flight: ${rate.toFixed(0)} claims/s, p50 ${pct(all, 0.5).toFixed(1)} ms, p99 ${
      pct(all, 0.99).toFixed(1)
    } ms`,
  );
  client.close();
} finally {
  etcd.kill("SIGKILL");
  await etcd.status;
  await Deno.remove(data, { recursive: true });
}
