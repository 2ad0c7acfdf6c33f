/**
 * The benchmark's load generator: complete knock sequences, each from its own loopback
 * source (127.S.x.y), at an offered rate, for a bounded time. Prints one JSON object:
 * { sent, offered, achieved, seconds, sequences: [[source, lastKnockMs], ...] }.
 *
 * Usage: deno run -P bench/loadgen.ts '{"host":"127.0.0.1","knocks":[[7000,"tcp"],...],
 *   "rate":100,"seconds":3,"gapMs":10,"subnet":2,"noiseRate":0}'
 * Traffic goes to loopback only, and every loop ends by count and by time.
 */
import net from "node:net";

interface Options {
  host: string;
  knocks: [number, "tcp" | "udp"][];
  rate: number;
  seconds: number;
  gapMs: number;
  subnet: number;
  noiseRate?: number;
  noisePorts?: number[];
  /** A file of per-sequence TCP ports, one line per sequence (a bind_source door's codes). */
  codesFile?: string;
}

const o: Options = JSON.parse(Deno.args[0]);
const codes = o.codesFile
  ? Deno.readTextFileSync(o.codesFile).trim().split("\n").map((l) =>
    l.split(" ").map((p) => [Number(p), "tcp"] as [number, "tcp"])
  )
  : undefined;
if (!o.host.startsWith("127.")) throw new Error("the load generator only sends to loopback");
const MAX_SEQUENCES = 200_000;
const HARD_STOP_MS = (o.seconds + 30) * 1000;
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const outcomes: Record<string, number> = {};
function tcp(port: number, local: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: o.host, port, localAddress: local });
    const done = (how: string) => {
      outcomes[how] = (outcomes[how] ?? 0) + 1;
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(() => done(`timeout:${port}`), 1000);
    s.once("connect", () => done("accepted"));
    s.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? "error"));
  });
}

async function udp(port: number, socket: Deno.DatagramConn): Promise<void> {
  await socket.send(new Uint8Array([0]), { transport: "udp", hostname: o.host, port });
}

async function sequence(i: number, out: [string, number][]): Promise<void> {
  const source = `127.${o.subnet}.${(i >> 8) & 255}.${i & 255}`;
  const needsUdp = o.knocks.some(([, p]) => p === "udp");
  const socket = needsUdp
    ? Deno.listenDatagram({ transport: "udp", hostname: source, port: 0 })
    : undefined;
  try {
    for (const [k, [port, protocol]] of (codes?.[i] ?? o.knocks).entries()) {
      if (k > 0 && o.gapMs > 0) await sleep(o.gapMs);
      if (protocol === "tcp") await tcp(port, source);
      else await udp(port, socket!);
    }
    out.push([source, nowMs()]);
  } finally {
    socket?.close();
  }
}

const started = nowMs();
const deadline = started + o.seconds * 1000;
const total = Math.min(MAX_SEQUENCES, Math.round(o.rate * o.seconds), 65_000);
const done: [string, number][] = [];
const inflight = new Set<Promise<void>>();
let launched = 0;
// Noise: wrong single knocks from other sources, bounded like the rest.
let noise = 0;
const noiseTotal = Math.round((o.noiseRate ?? 0) * o.seconds);
while (launched < total && nowMs() < started + HARD_STOP_MS) {
  const due = started + (launched / o.rate) * 1000;
  const wait = due - nowMs();
  if (wait > 1) await sleep(wait);
  // Launch every sequence that is due (a timer wakes late under load).
  while (launched < total && started + (launched / o.rate) * 1000 <= nowMs()) {
    const p = sequence(launched++, done).catch(() => {});
    inflight.add(p);
    p.finally(() => inflight.delete(p));
    const noiseDue = Math.min(
      noiseTotal,
      Math.floor(((nowMs() - started) / 1000) * (o.noiseRate ?? 0)),
    );
    while (noise < noiseDue) {
      const i = noise++;
      const src = `127.${o.subnet + 100}.${(i >> 8) & 255}.${i & 255}`;
      const port = o.noisePorts?.[i % o.noisePorts.length] ?? o.knocks[0][0] + 1;
      const q = tcp(port, src);
      inflight.add(q);
      q.finally(() => inflight.delete(q));
    }
  }
  if (nowMs() > deadline + 5000) break;
}
await Promise.all(inflight);
const seconds = (nowMs() - started) / 1000;
console.log(JSON.stringify({
  sent: done.length,
  outcomes,
  noise,
  offered: o.rate,
  achieved: done.length / Math.max(seconds, o.seconds),
  seconds,
  sequences: done,
}));
