/**
 * In-process measurements for BENCHMARKS.md: memory per tracked source, the cost of one
 * knock in the engine, and the start-up time of a daemon with a 4 096-port TCP and a
 * 4 096-port UDP pool on 127.0.0.1. Needs no root. `--smoke` shrinks everything.
 */
import { KnockEngine } from "../lib/engine/engine.ts";
import { parseConfig } from "../lib/config/load.ts";
import { codeForCounter } from "../lib/code.ts";
import { Daemon } from "../lib/daemon/daemon.ts";
import type { CommandRunner } from "../lib/actions/runner.ts";

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
