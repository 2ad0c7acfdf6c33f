/** Helpers for tests that run a real daemon on loopback. */
import type { CommandResult, CommandRunner, Session } from "../lib/actions/runner.ts";
import { parseConfig } from "../lib/config/load.ts";
import { Daemon, type DaemonEvent } from "../lib/daemon/daemon.ts";
import { sendKnock } from "../lib/net/sender.ts";
import type { Knock } from "../lib/knock.ts";

export const SECRET_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
export const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);

/** A random base for a pool of `size` ports, below the kernel's ephemeral range. */
export function randomBase(size: number): number {
  return 10_000 + Math.floor(Math.random() * (20_000 - size));
}

/** Records every command instead of running it. */
export class RecordingRunner implements CommandRunner {
  readonly runs: string[][] = [];
  readonly inputs: (string | undefined)[] = [];
  constructor(private readonly code = 0) {}
  run(argv: readonly string[], _timeoutMs: number, input?: string): Promise<CommandResult> {
    this.runs.push([...argv]);
    this.inputs.push(input);
    return Promise.resolve({ code: this.code, timedOut: false, error: "" });
  }
  spawn(_argv: readonly string[]): Session {
    throw new Error("RecordingRunner starts no sessions");
  }
  close(): void {}
}

/**
 * A clock that runs at real speed from a chosen start and can jump ahead: knocks keep
 * their real spacing (the reorder window sees it) while tests pick the period.
 */
export class FakeClock {
  #offset: number;
  constructor(start: number) {
    this.#offset = start - Date.now();
  }
  now = (): number => Date.now() + this.#offset;
  advance(ms: number): void {
    this.#offset += ms;
  }
}

export interface TestDaemon extends AsyncDisposable {
  daemon: Daemon;
  events: DaemonEvent[];
  runner: RecordingRunner;
  /** Resolves with the first event matching, or rejects after `ms`. */
  waitFor(match: (e: DaemonEvent) => boolean, ms?: number): Promise<DaemonEvent>;
}

export async function startDaemon(
  yaml: string,
  options: { now?: () => number; runner?: RecordingRunner } = {},
): Promise<TestDaemon> {
  const config = parseConfig(yaml, "test.yaml");
  const events: DaemonEvent[] = [];
  const waiters = new Set<() => void>();
  const runner = options.runner ?? new RecordingRunner();
  const daemon = await Daemon.start({
    config,
    runner,
    now: options.now,
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
  return { daemon, events, runner, waitFor, [Symbol.asyncDispose]: () => daemon.stop() };
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
