/** Helpers for tests that run a real daemon on loopback. */
import type { Clock } from "../lib/clock.ts";
import { RecordingRunner } from "../lib/testing/mod.ts";
import { parseConfig } from "../lib/config/load.ts";
import { Daemon, type DaemonEvent } from "../lib/daemon/daemon.ts";
import { sendKnock } from "../lib/net/sender.ts";
import type { Knock } from "../lib/knock.ts";

export const SECRET_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
export { RecordingRunner };

export const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);

/** A random base for a pool of `size` ports, below the kernel's ephemeral range. */
export function randomBase(size: number): number {
  return 10_000 + Math.floor(Math.random() * (20_000 - size));
}

export interface TestDaemon extends AsyncDisposable {
  daemon: Daemon;
  events: DaemonEvent[];
  runner: RecordingRunner;
  /** Resolves with the first event matching, or rejects after `ms`. */
  waitFor(match: (e: DaemonEvent) => boolean, ms?: number): Promise<DaemonEvent>;
  /**
   * Resolves once the daemon has heard `count` knocks in all and acted on them: the sockets
   * deliver on their own time, so this waits on I/O (bounded), not on the clock.
   */
  heard(count: number): Promise<void>;
}

export async function startDaemon(
  yaml: string,
  options: { clock?: Clock; runner?: RecordingRunner } = {},
): Promise<TestDaemon> {
  const config = parseConfig(yaml, "test.yaml");
  const events: DaemonEvent[] = [];
  const waiters = new Set<() => void>();
  const runner = options.runner ?? new RecordingRunner();
  const daemon = await Daemon.start({
    config,
    runner,
    clock: options.clock,
    onEvent: (e) => {
      events.push(e);
      for (const w of waiters) w();
    },
  });
  const waitFor = (match: (e: DaemonEvent) => boolean, ms = 3000) =>
    new Promise<DaemonEvent>((resolve, reject) => {
      const check = () => {
        const found = events.find(match);
        if (!found) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching event within ${ms} ms; events: ${JSON.stringify(events)}`));
      }, ms);
      waiters.add(check);
      check();
    });
  const heard = async (count: number) => {
    const deadline = Date.now() + 3000;
    while (daemon.counters.knocks < count) {
      if (Date.now() > deadline) {
        throw new Error(`heard ${daemon.counters.knocks} knocks within 3 s, wanted ${count}`);
      }
      await new Promise((r) => setTimeout(r, 2)); // the sockets' accept loops
    }
    await daemon.settled();
  };
  return { daemon, events, runner, waitFor, heard, [Symbol.asyncDispose]: () => daemon.stop() };
}

/** Sends knocks in order from `localAddress`, `gap` ms apart. */
export async function knockAll(
  host: string,
  knocks: readonly Knock[],
  options: { localAddress?: string; gap?: number } = {},
): Promise<void> {
  for (const [i, k] of knocks.entries()) {
    if (i > 0) await new Promise((r) => setTimeout(r, options.gap ?? 20));
    await sendKnock(k, { host, localAddress: options.localAddress });
  }
}

/** Waits `ms` (to let the daemon see that nothing happens). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Parses the reference implementation's "port/proto" strings. */
export function asKnocks(list: string[]): Knock[] {
  return list.map((s) => {
    const [port, protocol] = s.split("/");
    return { port: Number(port), protocol: protocol as "tcp" | "udp" };
  });
}
