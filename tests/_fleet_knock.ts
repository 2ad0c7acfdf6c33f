/**
 * The fleet lab's knocker: every entry of the plan at once, each entry's ports in order
 * (a TCP connect from `source` to `host`, the next as soon as the last ended). Only to
 * the lab's own range (198.19.0.0/16, inside namespaces the test made); at most 2 000
 * entries and 30 s. Prints `{"sent": N, "failed": M}`.
 *
 * Usage: _fleet_knock.ts PLAN.json   (PLAN: [{ "source", "host", "ports": [p1, p2, …] }])
 */
import net from "node:net";

const plan = JSON.parse(await Deno.readTextFile(Deno.args[0])) as {
  source: string;
  host: string;
  ports: number[];
}[];
if (plan.length > 2000) throw new Error("at most 2 000 entries");
if (!plan.every((p) => p.host.startsWith("198.19.") && p.source.startsWith("198.19."))) {
  throw new Error("the fleet lab's addresses only");
}
const deadline = Date.now() + 30_000;
let sent = 0, failed = 0;

function connect(host: string, port: number, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, localAddress });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      if (ok) sent++;
      else failed++;
      resolve();
    };
    const timer = setTimeout(() => done(false), 2000);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

await Promise.all(plan.map(async ({ source, host, ports }) => {
  for (const port of ports) {
    if (Date.now() > deadline) return;
    await connect(host, port, source);
  }
}));
console.log(JSON.stringify({ sent, failed }));
