/**
 * The sending part of the burst knockers (_burst.ts, _fleet_knock.ts): every entry of a
 * plan at once, each entry's ports in order, a TCP connect from `source` to `host` each,
 * the next as soon as the last ended. The callers check the addresses; this stops by
 * itself after `ms`.
 */
import net from "node:net";

/** One knocker: where from, where to, which ports in order. */
export interface PlanEntry {
  readonly source: string;
  readonly host: string;
  readonly ports: readonly number[];
}

/** Sends `plan`; resolves with how many connects succeeded and failed. */
export async function knockPlan(
  plan: readonly PlanEntry[],
  ms = 30_000,
): Promise<{ sent: number; failed: number }> {
  const deadline = Date.now() + ms;
  let sent = 0, failed = 0;
  const connect = (host: string, port: number, localAddress: string) =>
    new Promise<void>((resolve) => {
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
  await Promise.all(plan.map(async ({ source, host, ports }) => {
    for (const port of ports) {
      if (Date.now() > deadline) return;
      await connect(host, port, source);
    }
  }));
  return { sent, failed };
}
