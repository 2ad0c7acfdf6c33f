/**
 * In-process measurements for BENCHMARKS.md: memory per tracked source, the cost of one
 * knock in the engine, the start-up time of a daemon with a 4 096-port TCP and a 4 096-port
 * UDP pool on 127.0.0.1, and the store's commit and open latency with many doors open.
 * Needs no root. `--smoke` shrinks everything.
 */
import { KnockEngine } from "../lib/engine/engine.ts";
import { parseConfig } from "../lib/config/load.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { codeForCounter } from "../lib/code.ts";
import { Daemon } from "../lib/daemon/daemon.ts";
import type { CommandRunner } from "../lib/actions/runner.ts";
import type { Firewall } from "../lib/actions/firewall.ts";
import { Opener } from "../lib/daemon/opener.ts";
import { Counters } from "../lib/counters.ts";
import { systemClock } from "../lib/clock.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import type { OpenRecord } from "../lib/store/store.ts";

const smoke = Deno.args.includes("--smoke");
const ROOT = new URL("../", import.meta.url).pathname;
const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const rows: string[] = [];

// 1. Memory per tracked source: each source has knocked once (one progress entry).
{
  const config = parseConfig(
    `listen: { max_sources: 1000000 }\ndoors:\n  ssh:\n    secret: "${SECRET}"\n    ports: "20000-20999"\n    open: { for: 30s }\n`,
    "bench.yaml",
  );
  const engine = new KnockEngine(config.doors, { maxSources: 1_000_000, scan: config.scan });
  const now = 1000 * 30_000;
  const code = await codeForCounter(config.doors[0], 1000);
  for (let c = 999; c <= 1001; c++) {
    engine.setSequence(0, c, (await codeForCounter(config.doors[0], c)).knocks, now);
  }
  const measure = () => {
    gc();
    return Deno.memoryUsage();
  };
  const base = measure();
  rows.push(
    `| tracked sources | RSS MiB | heap MiB | bytes per source (heap) |`,
    `| ---: | ---: | ---: | ---: |`,
  );
  rows.push(
    `| 0 | ${(base.rss / 2 ** 20).toFixed(1)} | ${(base.heapUsed / 2 ** 20).toFixed(1)} | – |`,
  );
  let added = 0;
  for (const target of smoke ? [1_000] : [10_000, 100_000]) {
    for (; added < target; added++) {
      const i = added;
      engine.handle(
        `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        "tcp",
        code.knocks[0].port,
        now + 1,
      );
    }
    const m = measure();
    rows.push(
      `| ${target.toLocaleString("en")} | ${(m.rss / 2 ** 20).toFixed(1)} | ${
        (m.heapUsed / 2 ** 20).toFixed(1)
      } | ${Math.round((m.heapUsed - base.heapUsed) / target)} |`,
    );
  }
  // 2. The engine's cost per knock (wrong knocks from many sources, the flood case).
  const n = smoke ? 20_000 : 1_000_000;
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    engine.handle(
      `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      "tcp",
      20000 + (i % 1000),
      now + 2,
    );
  }
  const perKnock = ((performance.now() - t) * 1e6) / n;
  rows.push(
    "",
    `Engine: ${Math.round(perKnock)} ns per knock over ${
      n.toLocaleString("en")
    } knocks from distinct sources.`,
  );
}

// 3. Start-up with a 4 096-port TCP and a 4 096-port UDP pool.
{
  const size = smoke ? 64 : 4096;
  const config = parseConfig(
    `listen: { addresses: ["127.0.0.1"] }\ndoors:\n  tcp:\n    secret: "${SECRET}"\n    ports: "30000-${
      30000 + size - 1
    }"\n    open: { for: 30s }\n  udp:\n    secret: "${SECRET}"\n    ports: "${30000 + size}-${
      30000 + 2 * size - 1
    }"\n    protocol: udp\n    open: { for: 30s }\n`,
    "bench.yaml",
  );
  const runner: CommandRunner = {
    run: () => Promise.resolve({ code: 0, timedOut: false, error: "" }),
    spawn: () => {
      throw new Error("no sessions in the benchmark");
    },
    close() {},
  };
  gc();
  const before = Deno.memoryUsage().rss;
  const t = performance.now();
  let failures = 0;
  const daemon = await Daemon.start({
    config,
    runner,
    onEvent: (e) => e.kind === "ready" && (failures = e.failures.length),
  });
  const ms = performance.now() - t;
  const rss = Deno.memoryUsage().rss - before;
  await daemon.stop();
  rows.push(
    `Start-up: ${size} TCP + ${size} UDP ports bound in ${
      Math.round(ms)
    } ms (${failures} could not be bound), ` +
      `+${(rss / 2 ** 20).toFixed(0)} MiB RSS.`,
  );
}

// 4. The store: one commit (a used code and an open record, as one open writes) and one
// open through the opener (request → commit → act with a no-op firewall), with 10, 1 000
// and 10 000 doors already open in the store.
{
  const config = parseConfig(
    `doors:\n  ssh:\n    secret: "${SECRET}"\n    ports: "20000-20999"\n    open: { for: 1h, nft: { port: 22 } }\n`,
    "bench.yaml",
  );
  const door = config.doors[0];
  const nop: Firewall = {
    start: () => Promise.resolve(),
    open: () => Promise.resolve(),
    close: () => Promise.resolve(),
    revoke: () => Promise.resolve(),
    intact: () => Promise.resolve(true),
    watch: () => {},
    shutdown: () => Promise.resolve(),
  };
  const runner: CommandRunner = {
    run: () => Promise.resolve({ code: 0, timedOut: false, error: "" }),
    spawn: () => {
      throw new Error("no sessions in the benchmark");
    },
    close() {},
  };
  const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const samples = smoke ? 50 : 500;
  const q = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))].toFixed(2);
  rows.push(
    "",
    "| doors open | commit p50 ms | commit p99 ms | fsynced commit p50 ms | fsynced commit p99 ms | open p50 ms | open p99 ms |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const level of smoke ? [10, 100] : [10, 1_000, 10_000]) {
    const dir = await Deno.makeTempDir({ prefix: "sesame-bench-" });
    const store = new SqliteStore(`${dir}/state.db`);
    await store.load();
    const until = Date.now() + 3_600_000;
    const record = (i: number): OpenRecord => ({
      door: "ssh",
      source: address(i),
      until,
      close: null,
      firewall: { kind: "nft", ports: [22], protocol: "tcp" },
    });
    await store.commit({ opened: Array.from({ length: level }, (_, i) => record(i)) });
    // What the opener commits for a firewall door ("normal": no fsync), and what it commits
    // for a command door ("full": the fsync waited for).
    const commits: number[] = [], fsynced: number[] = [];
    for (let i = 0; i < 2 * samples; i++) {
      const sync = i % 2 === 0 ? "normal" as const : "full" as const;
      const t = performance.now();
      await store.commit({
        used: [{ door: "ssh", secret: "f", prefix: `${address(level + i)}/32`, counter: i }],
        opened: [record(level + i)],
        now: Date.now(),
        sync,
      });
      (sync === "normal" ? commits : fsynced).push(performance.now() - t);
    }
    let done: (() => void) | undefined;
    const opener = new Opener({
      store,
      firewalls: { nft: nop, iptables: nop },
      runner,
      clock: systemClock,
      counters: new Counters(),
      report: (e) => e.kind === "opened" && done?.(),
    });
    const opens: number[] = [];
    for (let i = 0; i < samples; i++) {
      const source = address(level + 2 * samples + i);
      const t = performance.now();
      const opened = new Promise<void>((r) => done = r);
      opener.request({
        door,
        source,
        code: { door: "ssh", secret: "g", prefix: `${source}/32`, counter: 1 },
      });
      await opened;
      opens.push(performance.now() - t);
    }
    opener.cancelTimers();
    store.close();
    await Deno.remove(dir, { recursive: true });
    rows.push(
      `| ${level.toLocaleString("en")} | ${q(commits, 0.5)} | ${q(commits, 0.99)} | ${
        q(fsynced, 0.5)
      } | ${q(fsynced, 0.99)} | ${q(opens, 0.5)} | ${q(opens, 0.99)} |`,
    );
  }
}

// SPA: what a flood of packets costs (one HMAC per door on the port before anything else),
// and what an authentic packet costs (HMAC, decryption, checks).
{
  const { SpaGate } = await import("../lib/spa/gate.ts");
  const { encodeSpa } = await import("../lib/spa/fko.ts");
  const b64 = (n: number, fill: number) =>
    btoa(String.fromCharCode(...new Uint8Array(n).fill(fill)));
  const doorsOnPort = 4;
  const config = validateConfig({
    doors: Object.fromEntries(
      Array.from({ length: doorsOnPort }, (_, i) => [`spa${i}`, {
        spa: { port: 62201, key_base64: b64(32, i + 1), hmac_key_base64: b64(64, i + 1) },
        open: { nft: { port: 22 } },
      }]),
    ),
  });
  const spaDoors = config.doors as import("../lib/config/types.ts").SpaDoor[];
  const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const n = smoke ? 200 : 20_000;
  const forged = encodeSpa(
    { user: "x", timestamp: Date.now() / 1000, type: 1, message: "0.0.0.0,tcp/22" },
    { ...spaDoors[0].spa.keys, hmac: new Uint8Array(64) },
  );
  const gate = new SpaGate(spaDoors);
  let t = performance.now();
  for (let i = 0; i < n; i++) gate.handle(address(i), 62201, forged, Date.now());
  const forgedPerSecond = n / ((performance.now() - t) / 1000);
  const authentic = Array.from(
    { length: Math.min(n, 5000) },
    () =>
      encodeSpa(
        { user: "x", timestamp: Date.now() / 1000, type: 1, message: "0.0.0.0,tcp/22" },
        spaDoors[doorsOnPort - 1].spa.keys,
      ),
  );
  t = performance.now();
  for (const [i, p] of authentic.entries()) gate.handle(address(n + i), 62201, p, Date.now());
  const authenticPerSecond = authentic.length / ((performance.now() - t) / 1000);
  rows.push(
    "",
    `SPA (${doorsOnPort} doors on one port): ${
      Math.round(forgedPerSecond).toLocaleString("en")
    } forged packets verified and refused per second (one HMAC each per door), ${
      Math.round(authenticPerSecond).toLocaleString("en")
    } authentic packets decided per second (the last door's keys: 4 HMACs, a decryption).`,
  );
}

// The tick's sweep after a flood: every source part way through times out at once.
{
  const { doors } = validateConfig({
    doors: { t: { sequence: ["7001/tcp", "7002/tcp", "7003/tcp"], open: { for: "1m" } } },
  });
  const n = smoke ? 1_000 : 50_000;
  const engine = new KnockEngine(doors, { maxSources: n });
  for (let i = 0; i < n; i++) {
    engine.handle(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, "tcp", 7002, 1000);
  }
  const t = performance.now();
  const refused = engine.sweep(1000 + 60_000).length;
  const ms = performance.now() - t;
  rows.push(
    "",
    `Sweep: ${
      refused.toLocaleString("en")
    } sources part way through timed out in one tick, swept in ${ms.toFixed(1)} ms (${
      Math.round((ms * 1e6) / Math.max(1, refused))
    } ns a source).`,
  );
}

const text = rows.join("\n");
console.log(text);
if (!smoke) {
  const path = `${ROOT}BENCHMARKS.md`;
  const START = "<!-- micro:start -->", END = "<!-- micro:end -->";
  const old = await Deno.readTextFile(path);
  const block = `${START}\nRun ${
    new Date().toISOString()
  }, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}.\n\n${text}\n${END}`;
  const a = old.indexOf(START), b = old.indexOf(END);
  await Deno.writeTextFile(
    path,
    a >= 0 && b > a ? old.slice(0, a) + block + old.slice(b + END.length) : `${old}\n${block}\n`,
  );
}
