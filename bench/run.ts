/**
 * `deno task bench`: sesame against knockd, side by side, on the same machine in one run.
 *
 * Everything runs inside a network namespace this script creates (its own loopback,
 * 127.0.0.0/8), and every level is bounded in count and time. Systems:
 * - trivial: a listener that only records in-order sequences (the generator's ceiling),
 * - sesame-nft: sesame with the nftables backend (one long-lived `nft -i`), opens observed
 *   with `nft monitor`; sesame-nft-batch: the same with an `nft -f` process per batch;
 *   sesame-nft-state: sesame-nft with a state_file (what the README recommends: every open
 *   is committed to SQLite before it acts), the configuration users run;
 *   sesame-bind-state: a rotating bind_source door with the store and nft (each source its
 *   own code, derived per new source: the costly path; the C generator knocks codes this
 *   script derives for each source),
 * - sesame-fleet-state: sesame-bind-state as one gateway of a fleet: a three-member etcd on
 *   the namespace's loopback (data on tmpfs), every door shared, so each open first commits
 *   its code's mark (and its grant) in etcd and is then confirmed there,
 * - sesame-nflog-state: sesame-nft-state with the capture intake (`listen.capture: nflog`):
 *   nothing binds, tcpdump reads the knocks from the kernel's NFLOG group,
 * - sesame-cmd: sesame running a command per open (capped by process spawning),
 * - knockd: knockd 0.8 with the same command (its only path).
 * The command action is bench/record.sh, the same for both: it appends source and time.
 *
 * Writes BENCHMARKS.md and bench/results.json (or --out DIR). --smoke: one tiny level.
 */
import { parseArgs } from "node:util";

const args = parseArgs({
  args: Deno.args,
  options: {
    smoke: { type: "boolean" },
    out: { type: "string" },
    levels: { type: "string" },
    systems: { type: "string" },
    seconds: { type: "string" },
    gap: { type: "string" },
    noise: { type: "string" },
    sources: { type: "string" },
    generator: { type: "string" },
    "reorder-window": { type: "string" },
  },
});
const ROOT = new URL("../", import.meta.url).pathname;
const smoke = args.values.smoke === true;
// Levels as RATE/PROTOCOL: TCP where the generator can offer it, UDP beyond (a UDP knock
// costs the generator far less than a TCP handshake, and it runs on the same 2 cores).
const levels =
  (args.values.levels ?? (smoke ? "10/tcp" : "10/tcp,100/tcp,1000/tcp,5000/tcp,1000/udp,5000/udp"))
    .split(
      ",",
    ).map((l) => {
      const [rate, protocol = "tcp"] = l.split("/");
      return { rate: Number(rate), protocol: protocol as "tcp" | "udp" };
    });
const systems = (args.values.systems ??
  "trivial,sesame-nft-state,sesame-nflog-state,sesame-bind-state,sesame-fleet-state,sesame-nft,sesame-nft-batch,sesame-cmd,knockd")
  .split(",");
const seconds = Number(args.values.seconds ?? (smoke ? 1 : 3));
const gapMs = Number(args.values.gap ?? 10);
const noiseRate = Number(args.values.noise ?? 0);
/** --sources N: what a tracked source costs, from outside (RSS) and inside (heap). */
const sourcesToTrack = Number(args.values.sources ?? 0);
const outDir = args.values.out ?? ROOT;
/** --reorder-window D: sesame's listen.reorder_window (to measure the delivery's disorder whole). */
const reorderWindow = args.values["reorder-window"];
const PORTS = {
  tcp: [[7001, "tcp"], [7002, "tcp"], [7003, "tcp"]] as [number, "tcp" | "udp"][],
  udp: [[7101, "udp"], [7102, "udp"], [7103, "udp"]] as [number, "tcp" | "udp"][],
};
const NS = `sesame-bench-${Deno.pid}`;
const dec = new TextDecoder();

async function run(
  argv: string[],
  input?: string,
  env?: Record<string, string>,
): Promise<string> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) throw new Error(`${argv.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

const inNs = (argv: string[]) => ["ip", "netns", "exec", NS, ...argv];
/** The V8 flags the compiled binary runs with (deno.json's compile task): sesame runs so here. */
const V8_FLAGS = [
  ...(/--v8-flags=\S+/.exec(
    JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.compile,
  ) ??
    []),
];
const deno = (
  file: string,
  ...rest: string[]
) => [
  Deno.execPath(),
  "run",
  "-q",
  "-P",
  ...(file === "cli.ts" ? V8_FLAGS : []),
  `--config=${ROOT}deno.json`,
  `${ROOT}${file}`,
  ...rest,
];

/**
 * CPU seconds of a process and of its live descendants (sesame's nft session, the capture
 * intake's tcpdump: their work is the daemon's), with its waited children; peak RSS (KiB)
 * of the process itself.
 */
async function usage(pid: number): Promise<{ cpu: number; hwmKiB: number }> {
  try {
    const ticks = async (p: number): Promise<number> => {
      const stat = (await Deno.readTextFile(`/proc/${p}/stat`)).split(") ")[1].split(" ");
      let sum = [11, 12, 13, 14].reduce((s, i) => s + Number(stat[i]), 0);
      const children = await Deno.readTextFile(`/proc/${p}/task/${p}/children`).catch(() => "");
      for (const child of children.split(" ").filter(Boolean)) {
        sum += await ticks(Number(child)).catch(() => 0);
      }
      return sum;
    };
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpu: (await ticks(pid)) / 100, hwmKiB: hwm };
  } catch {
    return { cpu: NaN, hwmKiB: NaN };
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface LevelResult {
  system: string;
  protocol?: "tcp" | "udp";
  offered: number;
  achieved: number;
  sent: number;
  detected: number;
  detectedPct: number;
  /** Wrong knocks the generator sent beside the sequences. */
  noiseSent: number;
  p50ms: number;
  p99ms: number;
  cpuS: number;
  peakRssMiB: number;
  /** Doors open when the level began (nft systems: elements in sesame's sets). */
  openAtStart: number;
}

/** Starts a system in the namespace; returns how to read its opens (source → ms) and stop it. */
async function startSystem(system: string, dir: string): Promise<{
  pid: number;
  opens(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}> {
  const record = `${dir}/record.log`;
  await Deno.writeTextFile(record, "");
  const readRecord = async () => {
    const map = new Map<string, number>();
    for (const line of (await Deno.readTextFile(record)).split("\n")) {
      const [ip, at] = line.split(" ");
      if (ip && at && !map.has(ip)) map.set(ip, Number(at) * 1000);
    }
    return map;
  };
  const spawn = (argv: string[], stdin: "piped" | "null" = "null") =>
    new Deno.Command(argv[0], { args: argv.slice(1), stdin, stdout: "piped", stderr: "piped" })
      .spawn();
  const waitText = async (stream: ReadableStream<Uint8Array>, text: string) => {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const deadline = Date.now() + 15_000;
    while (!seen.includes(text)) {
      if (Date.now() > deadline) throw new Error(`${system}: no "${text}" in ${seen}`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`${system} ended: ${seen}`);
      seen += value;
    }
    (async () => {
      while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
    })();
  };
  const staticSeq = (p: "tcp" | "udp") =>
    PORTS[p].map(([port, proto]) => `"${port}/${proto}"`).join(", ");
  if (system === "trivial") {
    const child = spawn(
      inNs(deno("bench/trivial.ts", JSON.stringify([PORTS.tcp, PORTS.udp]))),
      "piped",
    );
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("ready")) text += (await reader.read()).value ?? "";
    return {
      pid: child.pid,
      async opens() {
        await child.stdin.close();
        while (!text.includes("}")) {
          const { value, done } = await reader.read();
          if (done) break;
          text += value;
        }
        const json = JSON.parse(text.slice(text.indexOf("{")));
        return new Map(Object.entries(json as Record<string, number>));
      },
      async stop() {
        try {
          child.kill("SIGKILL");
        } catch { /* ended */ }
        await child.status;
        await child.stderr.cancel();
      },
    };
  }
  if (system === "knockd") {
    await Deno.writeTextFile(
      `${dir}/knockd.conf`,
      `[options]\n  LogFile = ${dir}/knockd.log\n  PidFile = ${dir}/knockd.pid\n  Interface = lo\n` +
        (["tcp", "udp"] as const).map((p) =>
          `[bench-${p}]\n  sequence = ${
            PORTS[p].map(([port, proto]) => `${port}:${proto}`).join(",")
          }\n` +
          `  seq_timeout = 10\n  tcpflags = syn\n  command = ${ROOT}bench/record.sh ${record} %IP%\n`
        ).join(""),
    );
    const child = spawn(inNs(["/usr/sbin/knockd", "-c", `${dir}/knockd.conf`, "-i", "lo"]));
    const deadline = Date.now() + 10_000;
    while (!(await Deno.readTextFile(`${dir}/knockd.log`).catch(() => "")).includes("listening")) {
      if (Date.now() > deadline) throw new Error("knockd did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      pid: child.pid,
      opens: readRecord,
      async stop() {
        child.kill("SIGTERM");
        await child.status;
        await Promise.all([child.stdout.cancel(), child.stderr.cancel()]);
      },
    };
  }
  const capture = system === "sesame-nflog-state";
  const fleet = system === "sesame-fleet-state";
  const bind = system === "sesame-bind-state" || fleet;
  const nft = system.startsWith("sesame-nft") || bind || capture;
  const etcd = fleet ? await startEtcd(dir) : undefined;
  const action = nft
    ? "nft: { port: 9 }"
    : `command: ["${ROOT}bench/record.sh", "${record}", "{ip}"]`;
  const state = system === "sesame-nft-state" || bind || capture;
  const share = fleet ? "share: bench\n    " : "";
  await Deno.writeTextFile(
    `${dir}/sesame.yaml`,
    `listen: { addresses: ["127.0.0.1"], metrics: "127.0.0.1:9464"${
      system === "sesame-nft-batch" ? ", nft_mode: batch" : ""
    }${capture ? ", capture: nflog, closed_reply: reject" : ""}${
      reorderWindow ? `, reorder_window: ${reorderWindow}` : ""
    } }\n${state ? `state_file: ${dir}/state.db\n` : ""}${etcd?.cluster ?? ""}doors:\n` +
      (["tcp", "udp"] as const).map((p) =>
        `  bench-${p}:\n    sequence: [${
          staticSeq(p)
        }]\n    sequence_timeout: 10s\n    ${share}open: { for: 10m, log: false, ${action} }\n`
      ).join("") +
      (bind ? BIND_DOOR.replace("ACTION", action).replace("open:", `${share}open:`) : ""),
    { mode: 0o600 }, // it may hold a secret: sesame refuses a config others can read
  );
  let monitor: Deno.ChildProcess | undefined;
  const seen = new Map<string, number>();
  let monitorDone: Promise<void> | undefined;
  if (nft) {
    monitor = spawn(inNs(["nft", "monitor", "elements"]));
    monitorDone = (async () => {
      const reader = monitor!.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        const at = performance.timeOrigin + performance.now();
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop()!;
        for (const line of lines) {
          const m = /^add element inet sesame \S+ \{ (\S+) /.exec(line);
          if (m && !seen.has(m[1])) seen.set(m[1], at);
        }
      }
    })();
  }
  const child = spawn(
    inNs(deno("cli.ts", "listen", "-c", `${dir}/sesame.yaml`, "--log-level", "warning")),
  );
  // warning level prints nothing at start: wait for the ports instead (the capture intake
  // binds none: wait for its rules).
  const deadline = Date.now() + 15_000;
  while (capture) {
    const table = await run(inNs(["nft", "list", "table", "inet", "sesame"])).catch(() => "");
    if (table.includes("log group")) break;
    if (Date.now() > deadline) throw new Error("sesame's capture rules did not appear");
    await new Promise((r) => setTimeout(r, 50));
  }
  for (; !capture;) {
    const probe = await new Deno.Command("ip", {
      args: ["netns", "exec", NS, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${PORTS.tcp[0][0]}`],
    }).output();
    if (probe.success) break;
    if (Date.now() > deadline) throw new Error("sesame did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  // A bound port is not a daemon that acts yet: knocks count once its firewall is in place
  // (sesame binds first and applies the firewall last). Wait for the table, then a moment.
  if (nft) {
    while (!(await run(inNs(["nft", "list", "table", "inet", "sesame"])).catch(() => ""))) {
      if (Date.now() > deadline) throw new Error("sesame's table did not appear");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await new Promise((r) => setTimeout(r, 300));
  void waitText;
  return {
    pid: child.pid,
    // nft monitor can drop events under load (netlink buffer): the sets themselves are the
    // ground truth of who got in; the monitor's timestamps give the latency where it saw them.
    opens: async () => {
      if (!nft) return await readRecord();
      const present = new Map<string, number>();
      for (const p of ["tcp", "udp", "bind"]) {
        const json = JSON.parse(
          await run(inNs(["nft", "-j", "list", "set", "inet", "sesame", `door_bench_${p}_v4`]))
            .catch(() => '{"nftables":[]}'), // no such door in this system
        );
        for (const item of json.nftables) {
          for (const e of item.set?.elem ?? []) {
            const ip = typeof e === "string" ? e : e.elem?.val;
            if (typeof ip === "string") present.set(ip, seen.get(ip) ?? NaN);
          }
        }
      }
      return present;
    },
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Promise.all([child.stdout.cancel(), child.stderr.cancel()]);
      await etcd?.stop();
      if (monitor) {
        monitor.kill("SIGTERM");
        await monitor.status;
        await monitorDone;
        await monitor.stderr.cancel();
        await run(inNs(["nft", "delete", "table", "inet", "sesame"])).catch(() => {});
      }
    },
  };
}

/**
 * Three etcd members on the namespace's loopback (127.0.0.1:23791–3, peers 23801–3), data
 * on tmpfs, election timeout raised for two shared cores; the `cluster` section of the
 * gateway's config.
 */
async function startEtcd(dir: string): Promise<{ cluster: string; stop(): Promise<void> }> {
  const data = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "sesame-bench-etcd-" });
  const peers = [0, 1, 2].map((i) => `m${i}=http://127.0.0.1:${23801 + i}`).join(",");
  const members = [0, 1, 2].map((i) =>
    new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        NS,
        "etcd",
        `--name=m${i}`,
        `--data-dir=${data}/m${i}`,
        `--listen-client-urls=http://127.0.0.1:${23791 + i}`,
        `--advertise-client-urls=http://127.0.0.1:${23791 + i}`,
        `--listen-peer-urls=http://127.0.0.1:${23801 + i}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${23801 + i}`,
        `--initial-cluster=${peers}`,
        "--initial-cluster-state=new",
        "--heartbeat-interval=200",
        "--election-timeout=2000",
        "--log-level=error",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  const endpoints = [0, 1, 2].map((i) => `http://127.0.0.1:${23791 + i}`);
  const deadline = Date.now() + 30_000;
  while (
    !(await run(
      inNs([
        "env",
        "ETCDCTL_API=3",
        "etcdctl",
        `--endpoints=${endpoints.join(",")}`,
        "put",
        "/sesame/bench-probe",
        "1",
      ]),
    ).then(() => true, () => false))
  ) {
    if (Date.now() > deadline) throw new Error("etcd did not start");
    await new Promise((r) => setTimeout(r, 200));
  }
  void dir;
  return {
    cluster: `cluster:\n  node: bench\n  groups: [bench]\n  etcd: { endpoints: [${
      endpoints.join(", ")
    }] }\n`,
    async stop() {
      for (const m of members) {
        try {
          m.kill("SIGKILL");
        } catch { /* gone */ }
        await m.status;
      }
      await Deno.remove(data, { recursive: true }).catch(() => {});
    },
  };
}

/** A rotating bind_source door for sesame-bind-state: each source has codes of its own. */
const BIND_SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const BIND_DOOR = `  bench-bind:
    secret: "${BIND_SECRET}"
    ports: "7200-7999"
    length: 3
    period: 1h
    bind_source: true
    sequence_timeout: 10s
    open: { for: 10m, log: false, ACTION }
`;

/**
 * The codes of the bind_source door for the generator's sources 127.SUBNET.x.y, one line
 * of ports per sequence, in a file; returns its path.
 */
async function bindCodes(dir: string, subnet: number, count: number): Promise<string> {
  const { validateConfig } = await import("../lib/config/validate.ts");
  const { codeForCounter } = await import("../lib/code.ts");
  const { parseAddress } = await import("../lib/address.ts");
  const door = validateConfig({
    doors: {
      "bench-bind": {
        secret: BIND_SECRET,
        ports: "7200-7999",
        length: 3,
        period: "1h",
        bind_source: true,
      },
    },
  }).doors[0];
  const counter = Math.floor(Date.now() / 3_600_000);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const source = parseAddress(`127.${subnet}.${(i >> 8) & 255}.${i & 255}`)!;
    lines.push((await codeForCounter(door, counter, source)).knocks.map((k) => k.port).join(" "));
  }
  const path = `${dir}/codes-${subnet}.txt`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** sesame's /metrics in the namespace: a function summing a metric's samples. */
async function scrape(): Promise<(name: string) => number> {
  const metrics = await run(inNs([
    "/usr/bin/python3",
    "-c",
    "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9464/metrics',timeout=5).read().decode())",
  ])).catch(() => "");
  return (name: string) =>
    [...metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))]
      .reduce((sum, m) => sum + Number(m[1]), 0);
}

/** What a tracked source costs: RSS from /proc (outside), heap from /metrics (inside). */
interface SourcesResult {
  system: string;
  /** Wrong knocks sent, one a source. */
  sent: number;
  tracked: number;
  rssBytesPerSource: number;
  heapBytesPerSource: number;
  rssMiBBefore: number;
  rssMiBAfter: number;
}

/**
 * Sends one wrong knock from each of `n` sources (the C generator's noise), all within the
 * door's sequence timeout, and compares RSS and heap before and after, per source tracked.
 */
async function benchSources(system: string, n: number, subnetBase: number): Promise<SourcesResult> {
  if (!fastGenerator) throw new Error("--sources needs the C generator (cc)");
  const dir = await Deno.makeTempDir({ prefix: "sesame-bench-" });
  const sys = await startSystem(system, dir);
  const rss = async () =>
    Number(/VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${sys.pid}/status`))?.[1]) * 1024;
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const before = { rss: await rss(), metrics: await scrape() };
    // Runs of at most 33 000 sources (a /16 each), side by side, 15 000 knocks/s in all
    // (what the C generator keeps up here): 99 000 sources are sent within 7 s, inside the
    // door's 10 s sequence timeout, so every source is still tracked when RSS is read.
    const per = 33_000;
    const runs = Array.from({ length: Math.ceil(n / per) }, (_, b) => Math.min(per, n - b * per));
    const outs = await Promise.all(runs.map((count, b) =>
      run(
        inNs([
          fastGenerator,
          "127.0.0.1",
          "1",
          String(count / (15_000 / runs.length)),
          String(gapMs),
          String(subnetBase + b),
          "tcp",
          ...PORTS.tcp.map(([port]) => String(port)),
        ]),
        undefined,
        { LOADGEN_NOISE: String(15_000 / runs.length), LOADGEN_NOISE_PORTS: "7002,7003" },
      )
    ));
    const sent = outs.reduce((sum, out) => sum + (JSON.parse(out).noise ?? 0), 0);
    const after = { rss: await rss(), metrics: await scrape() };
    const tracked = after.metrics("sesame_tracked_sources") -
      before.metrics("sesame_tracked_sources");
    return {
      system,
      sent,
      tracked,
      rssBytesPerSource: (after.rss - before.rss) / tracked,
      heapBytesPerSource: (after.metrics("sesame_heap_used_bytes") -
        before.metrics("sesame_heap_used_bytes")) / tracked,
      rssMiBBefore: before.rss / 2 ** 20,
      rssMiBAfter: after.rss / 2 ** 20,
    };
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Per sesame system: opens decided, opened, failed, and elements in the kernel's sets. */
const accountings: {
  system: string;
  decided: number;
  opened: number;
  failed: number;
  inKernel: number;
}[] = [];

async function benchSystem(system: string, subnetBase: number): Promise<LevelResult[]> {
  const dir = await Deno.makeTempDir({ prefix: "sesame-bench-" });
  const results: LevelResult[] = [];
  const sys = await startSystem(system, dir);
  try {
    for (const [li, { rate, protocol }] of levels.entries()) {
      // Open latency with many doors open: a level after a high one starts with thousands.
      const bind = system === "sesame-bind-state" || system === "sesame-fleet-state";
      const openAtStart = system.startsWith("sesame-nft") || bind ? (await sys.opens()).size : NaN;
      const before = await usage(sys.pid);
      const subnet = subnetBase + li;
      const codesFile = bind ? await bindCodes(dir, subnet, Math.ceil(rate * seconds)) : undefined;
      const ports = codesFile ? [`@${codesFile}`] : PORTS[protocol].map(([port]) => String(port));
      const gen = JSON.parse(
        fastGenerator
          ? await run(
            inNs([
              fastGenerator,
              "127.0.0.1",
              String(rate),
              String(seconds),
              String(gapMs),
              String(subnet),
              protocol,
              ...ports,
            ]),
            undefined,
            // Noise: wrong single knocks on pool ports, each source a tracked source.
            noiseRate > 0
              ? { LOADGEN_NOISE: String(noiseRate), LOADGEN_NOISE_PORTS: "7002,7003" }
              : undefined,
          )
          : await run(inNs(deno(
            "bench/loadgen.ts",
            JSON.stringify({
              host: "127.0.0.1",
              knocks: PORTS[protocol],
              rate,
              seconds,
              gapMs,
              subnet,
              noiseRate,
              noisePorts: [7002, 7003], // pool ports: each noise source becomes a tracked source
              ...(codesFile ? { codesFile } : {}),
            }),
          ))),
      );
      await new Promise((r) => setTimeout(r, smoke ? 500 : 2000)); // let the last opens land
      const after = await usage(sys.pid);
      results.push({
        ...summarise(system, gen, new Map()),
        protocol,
        cpuS: after.cpu - before.cpu,
        peakRssMiB: after.hwmKiB / 1024,
        openAtStart,
      });
      (results.at(-1) as LevelResult & { _gen?: unknown })._gen = gen;
    }
    const opens = await sys.opens();
    if (system.startsWith("sesame")) {
      // Every decided open happens or is counted: what sesame decided, against the kernel.
      const value = await scrape();
      const accounting = {
        decided: value("sesame_open_decisions_total"),
        opened: value("sesame_opens_total"),
        failed: value('sesame_action_failures_total\\{action="open"\\}') +
          value('sesame_action_failures_total\\{action="commit"\\}'),
        inKernel: opens.size,
      };
      console.error(
        `  accounting: ${accounting.decided} opens decided, ${accounting.opened} opened, ${accounting.failed} failed, ${accounting.inKernel} in the kernel's sets`,
      );
      accountings.push({ system, ...accounting });
      // The disorder the daemon's delivery put into sequences: what reorder_window covers.
      const early = value("sesame_knock_reorder_seconds_count");
      const bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];
      const within = (p: number) =>
        bounds.find((b) =>
          value(`sesame_knock_reorder_seconds_bucket\\{le="${b}"\\}`) >= p * early
        );
      console.error(
        `  reorder: ${early} knocks arrived before the knocks ahead of them; p99 waited <= ${
          within(0.99) ?? ">5"
        } s, p99.9 <= ${within(0.999) ?? ">5"} s, all <= ${within(1) ?? ">5"} s`,
      );
    }
    for (const r of results) {
      const gen = (r as LevelResult & { _gen?: { sequences: [string, number][] } })._gen!;
      Object.assign(r, summarise(system, gen as never, opens), {
        protocol: r.protocol,
        cpuS: r.cpuS,
        peakRssMiB: r.peakRssMiB,
        openAtStart: r.openAtStart,
      });
      delete (r as { _gen?: unknown })._gen;
    }
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
  return results;
}

function summarise(
  system: string,
  gen: {
    sent: number;
    noise?: number;
    offered: number;
    achieved: number;
    sequences: [string, number][];
  },
  opens: Map<string, number>,
): LevelResult {
  const latencies: number[] = [];
  let detected = 0;
  for (const [source, last] of gen.sequences) {
    const at = opens.get(source);
    if (at === undefined) continue;
    detected++;
    if (!Number.isNaN(at)) latencies.push(Math.max(0, at - last)); // NaN: in the set, time unseen
  }
  latencies.sort((a, b) => a - b);
  return {
    system,
    offered: gen.offered,
    achieved: Math.round(gen.achieved),
    sent: gen.sent,
    detected,
    detectedPct: gen.sent ? (100 * detected) / gen.sent : 0,
    noiseSent: gen.noise ?? 0,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    cpuS: NaN,
    peakRssMiB: NaN,
    openAtStart: NaN,
  };
}

/**
 * The load generator: bench/loadgen.c (compiled here with cc) offers far more than the Deno
 * one on the same cores; the Deno one serves where cc is missing, for --generator deno, and
 * for noise. Returns the binary's path, or undefined for the Deno generator.
 */
let generatorDir: string | undefined;
async function compileGenerator(): Promise<string | undefined> {
  if (args.values.generator === "deno") return undefined;
  generatorDir = await Deno.makeTempDir({ prefix: "sesame-loadgen-" });
  const out = `${generatorDir}/loadgen`;
  try {
    await run(["cc", "-O2", "-o", out, `${ROOT}bench/loadgen.c`]);
    return out;
  } catch (e) {
    if (args.values.generator === "c") throw e;
    console.error(
      `bench: no C compiler (${(e as Error).message.split("\n")[0]}): using the Deno generator`,
    );
    return undefined;
  }
}
const fastGenerator = await compileGenerator();

const all: LevelResult[] = [];
const sourcesResults: SourcesResult[] = [];
try {
  await run(["ip", "netns", "add", NS]).catch((e) => {
    console.error(
      `bench: needs root (network namespace, nft, knockd's packet capture): ${e.message}`,
    );
    Deno.exit(2);
  });
  await run(inNs(["ip", "link", "set", "lo", "up"]));
  for (const [i, system] of systems.entries()) {
    console.error(`bench: ${system} ...`);
    if (sourcesToTrack > 0) {
      if (!system.startsWith("sesame-nft")) {
        console.error("  --sources measures sesame-nft systems (it reads sesame's /metrics)");
        continue;
      }
      const r = await benchSources(system, sourcesToTrack, 1 + i * 10);
      console.error(
        `  ${r.sent} sources knocked once, ${r.tracked} tracked: RSS ${
          r.rssMiBBefore.toFixed(0)
        } -> ${r.rssMiBAfter.toFixed(0)} MiB, ${r.rssBytesPerSource.toFixed(0)} bytes of RSS and ${
          r.heapBytesPerSource.toFixed(0)
        } of heap (garbage included) a source`,
      );
      sourcesResults.push(r);
      continue;
    }
    const results = await benchSystem(system, 1 + i * 10);
    for (const r of results) {
      console.error(
        `  ${r.offered}/s ${r.protocol}: sent ${r.sent} (${r.achieved}/s)${
          r.noiseSent ? ` beside ${r.noiseSent} wrong knocks` : ""
        }, detected ${r.detectedPct.toFixed(1)} %, p50 ${r.p50ms.toFixed(1)} ms, p99 ${
          r.p99ms.toFixed(1)
        } ms, cpu ${r.cpuS.toFixed(2)} s, rss ${r.peakRssMiB.toFixed(0)} MiB${
          r.openAtStart > 0 ? `, ${r.openAtStart} doors open at its start` : ""
        }`,
      );
    }
    all.push(...results);
  }
} finally {
  await run(["ip", "netns", "delete", NS]).catch(() => {});
  if (generatorDir) await Deno.remove(generatorDir, { recursive: true }).catch(() => {});
}

const machine =
  `${Deno.build.os} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`;
const date = new Date().toISOString();
const fmt = (n: number, d = 1) => Number.isFinite(n) ? n.toFixed(d) : "–";
const table = [
  "| system | knocks | offered seq/s | achieved seq/s | sent | detected | p50 ms | p99 ms | daemon CPU s | peak RSS MiB | doors open at start |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...all.map((r) =>
    `| ${r.system} | ${r.protocol} | ${r.offered} | ${r.achieved} | ${r.sent} | ${
      fmt(r.detectedPct)
    } % | ${fmt(r.p50ms)} | ${fmt(r.p99ms)} | ${fmt(r.cpuS, 2)} | ${fmt(r.peakRssMiB, 0)} | ${
      fmt(r.openAtStart, 0)
    } |`
  ),
].join("\n");
console.log(table);
const resultsPath = args.values.out ? `${outDir}/results.json` : `${ROOT}bench/results.json`;
await Deno.mkdir(outDir, { recursive: true });
await Deno.writeTextFile(
  resultsPath,
  JSON.stringify(
    { date, machine, seconds, gapMs, noiseRate, levels: all, accountings, sources: sourcesResults },
    null,
    2,
  ) +
    "\n",
);
if (all.length === 0) {
  console.error(`bench: wrote ${resultsPath}`); // --sources: no levels, no table to replace
} else {
  // BENCHMARKS.md keeps its prose; the table between the markers is replaced.
  const mdPath = args.values.out ? `${outDir}/BENCHMARKS.md` : `${ROOT}BENCHMARKS.md`;
  const START = "<!-- bench:start -->", END = "<!-- bench:end -->";
  const block =
    `${START}\nRun ${date} on ${machine}; ${seconds} s per level, ${gapMs} ms between knocks, ` +
    `3-knock sequences, each from its own source${
      noiseRate ? `, noise ${noiseRate} wrong knocks/s` : ""
    }.\n\n${table}\n${END}`;
  const old = await Deno.readTextFile(mdPath).catch(() => `# Benchmarks\n\n${START}\n${END}\n`);
  const at = old.indexOf(START), end = old.indexOf(END);
  await Deno.writeTextFile(
    mdPath,
    at >= 0 && end > at
      ? old.slice(0, at) + block + old.slice(end + END.length)
      : `${old}\n${block}\n`,
  );
  const chartPath = args.values.out ? `${outDir}/chart.svg` : `${ROOT}bench/chart.svg`;
  await Deno.writeTextFile(chartPath, chart(all));
  console.error(`bench: wrote ${resultsPath}, ${mdPath} and ${chartPath}`);
}

/**
 * Detection and p99 latency against offered rate, one line per system (TCP levels), as a
 * small SVG a reader takes in at a glance: two panels, log-scaled rates.
 */
function chart(results: readonly LevelResult[]): string {
  // A rate offered again later (with many doors open) is a row of the table, not a point.
  const tcp = results.filter((r, i) =>
    r.protocol !== "udp" && r.noiseSent === 0 &&
    results.findIndex((o) =>
        o.system === r.system && o.offered === r.offered && o.protocol === r.protocol &&
        o.noiseSent === 0
      ) === i
  );
  const systems = [...new Set(tcp.map((r) => r.system))];
  const rates = [...new Set(tcp.map((r) => r.offered))].sort((a, b) => a - b);
  if (rates.length === 0) return "<svg xmlns='http://www.w3.org/2000/svg'/>\n";
  const W = 360,
    H = 220,
    M = 48,
    colors = ["#444", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  const lx = (v: number) => Math.log10(Math.max(1, v));
  const [x0, x1] = [lx(rates[0]), lx(rates.at(-1)!) || 1];
  const x = (rate: number) => M + ((lx(rate) - x0) / Math.max(1e-9, x1 - x0)) * (W - M - 10);
  const p99s = tcp.map((r) => r.p99ms).filter(Number.isFinite);
  const [y0, y1] = [Math.log10(0.1), Math.log10(Math.max(10, ...p99s))];
  const panel = (
    dx: number,
    title: string,
    y: (r: LevelResult) => number | undefined,
    ticks: [number, string][],
  ) => {
    const parts = [
      `<g transform="translate(${dx},0)">`,
      `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">${title}</text>`,
      `<line x1="${M}" y1="${H - 30}" x2="${W - 10}" y2="${H - 30}" stroke="#999"/>`,
      `<line x1="${M}" y1="28" x2="${M}" y2="${H - 30}" stroke="#999"/>`,
      ...rates.map((r) =>
        `<text x="${x(r)}" y="${H - 14}" text-anchor="middle" font-size="10">${r}</text>`
      ),
      `<text x="${W / 2}" y="${
        H - 2
      }" text-anchor="middle" font-size="10">offered sequences/s</text>`,
      ...ticks.map(([v, label]) =>
        `<text x="${M - 4}" y="${v + 3}" text-anchor="end" font-size="10">${label}</text>`
      ),
    ];
    systems.forEach((system, i) => {
      const pts = tcp.filter((r) => r.system === system).flatMap((r) => {
        const v = y(r);
        return v === undefined ? [] : [`${x(r.offered).toFixed(1)},${v.toFixed(1)}`];
      });
      parts.push(
        `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${
          pts.join(" ")
        }"/>`,
      );
    });
    parts.push("</g>");
    return parts.join("\n");
  };
  const top = 28, bottom = H - 30;
  const yPct = (pct: number) => bottom - (pct / 100) * (bottom - top);
  const yMs = (ms: number) => bottom - ((Math.log10(ms) - y0) / (y1 - y0)) * (bottom - top);
  const legend = systems.map((system, i) =>
    `<text x="${2 * W + 10}" y="${40 + i * 16}" font-size="11" fill="${
      colors[i % colors.length]
    }">${system}</text>`
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      2 * W + 150
    }" height="${H}" font-family="sans-serif">`,
    panel(0, "detected %", (r) => yPct(r.detectedPct), [[yPct(0), "0"], [yPct(50), "50"], [
      yPct(100),
      "100",
    ]]),
    panel(
      W,
      "p99 last knock → open, ms (log)",
      (r) => Number.isFinite(r.p99ms) ? yMs(Math.max(0.1, r.p99ms)) : undefined,
      [
        [yMs(0.1), "0.1"],
        [yMs(1), "1"],
        [yMs(10), "10"],
        ...(y1 >= 2 ? [[yMs(100), "100"] as [number, string]] : []),
        ...(y1 >= 3 ? [[yMs(1000), "1000"] as [number, string]] : []),
      ],
    ),
    ...legend,
    "</svg>",
  ].join("\n") + "\n";
}
