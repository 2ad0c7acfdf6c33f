/**
 * The doorkeeper: which doors are open for whom until when, running open and close
 * commands through a {@link CommandRunner} and closing each door when its time is up.
 * Records are made before any command runs, so the state file can hold them first:
 * a crash after an open never leaves a door open past its time.
 * @module
 */
import type { Door } from "../config/types.ts";
import type { OpenRecord } from "../state.ts";
import { substitute } from "./command.ts";
import type { CommandRunner } from "./runner.ts";
import type { Firewall } from "./firewall.ts";

/** Something that happened to a door, for logs, tests and the demo. */
export interface DoorEvent {
  /** What happened. */
  readonly type: "opened" | "extended" | "closed" | "open-failed" | "close-failed";
  /** Door name. */
  readonly door: string;
  /** Source address. */
  readonly ip: string;
  /** When the door closes (opened/extended), ms. */
  readonly until: number;
  /** The command's error, for the failures. */
  readonly error?: string;
}

/** Options for {@link Doorkeeper}. */
export interface DoorkeeperOptions {
  /** Runs the commands. */
  readonly runner: CommandRunner;
  /** The clock. @default Date.now */
  readonly now?: () => number;
  /** Called for every event. */
  readonly onEvent?: (event: DoorEvent) => void;
  /** Called when the set of open doors changed and should be saved. */
  readonly onChange?: () => void;
  /** Firewall backends, by kind, for doors with `nft` or `iptables`. */
  readonly firewalls?: Partial<Record<"nft" | "iptables", Firewall>>;
}

interface Entry {
  record: OpenRecord;
  timer: ReturnType<typeof setTimeout> | undefined;
  timeoutMs: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
/** setTimeout takes at most 2^31-1 ms; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Keeps the open doors.
 *
 * @example
 * ```ts ignore
 * const keeper = new Doorkeeper({ runner: new WorkerRunner() });
 * const { record, fresh } = keeper.plan(door, "192.0.2.7");
 * await saveState();
 * await keeper.runOpen(door, record, fresh);
 * ```
 */
export class Doorkeeper {
  readonly #entries = new Map<string, Entry>();
  readonly #runner: CommandRunner;
  readonly #now: () => number;
  readonly #onEvent: (event: DoorEvent) => void;
  readonly #onChange: () => void;
  readonly #closing = new Set<Promise<void>>();
  readonly #firewalls: Partial<Record<"nft" | "iptables", Firewall>>;

  constructor(options: DoorkeeperOptions) {
    this.#runner = options.runner;
    this.#now = options.now ?? Date.now;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#onChange = options.onChange ?? (() => {});
    this.#firewalls = options.firewalls ?? {};
  }

  /** The doors open now, as the state file keeps them. */
  records(): OpenRecord[] {
    return [...this.#entries.values()].map((e) => ({ ...e.record }));
  }

  /** True while `door` is open for `ip`. */
  isOpen(door: string, ip: string): boolean {
    return this.#entries.has(key(door, ip));
  }

  /**
   * Takes over doors recorded by an earlier run: those past their time are closed now,
   * the others when their time comes.
   */
  async restore(records: readonly OpenRecord[]): Promise<void> {
    const now = this.#now();
    const due: Promise<void>[] = [];
    for (const record of records) {
      const entry: Entry = {
        record: { ...record },
        timer: undefined,
        timeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
      };
      this.#entries.set(key(record.door, record.ip), entry);
      if (record.until <= now) due.push(this.#close(entry));
      else this.#schedule(entry);
    }
    await Promise.all(due);
  }

  /**
   * Records that `door` opens for `ip` now. `fresh` is false when it was open already:
   * its time is extended and no open command needs to run again. The caller saves the
   * state before {@link runOpen} (commit, then act), so no save is requested here.
   */
  plan(door: Door, ip: string): { record: OpenRecord; fresh: boolean } {
    const open = door.open!;
    const until = this.#now() + open.forMs;
    const k = key(door.name, ip);
    const found = this.#entries.get(k);
    if (found) {
      found.record.until = Math.max(found.record.until, until);
      this.#schedule(found);
      return { record: found.record, fresh: false };
    }
    const close = open.closeCommand ? substitute(open.closeCommand, { ip, door: door.name }) : null;
    const spec = open.nft ?? open.iptables;
    const firewall = spec
      ? {
        kind: open.nft ? "nft" as const : "iptables" as const,
        ports: spec.ports,
        protocol: spec.protocol,
      }
      : undefined;
    const entry: Entry = {
      record: { door: door.name, ip, until, close, ...(firewall ? { firewall } : {}) },
      timer: undefined,
      timeoutMs: open.commandTimeoutMs,
    };
    this.#entries.set(k, entry);
    this.#schedule(entry);
    return { record: entry.record, fresh: true };
  }

  /**
   * Carries out a planned opening (call after the record is saved): the firewall lets the
   * source through (or extends its time), and on a fresh opening the open command runs.
   */
  async runOpen(door: Door, record: OpenRecord, fresh: boolean): Promise<void> {
    const open = door.open!;
    const fail = (error: string) =>
      // The door may be half open: the close stays scheduled so it is undone in time.
      this.#onEvent({
        type: "open-failed",
        door: door.name,
        ip: record.ip,
        until: record.until,
        error,
      });
    if (record.firewall) {
      try {
        await this.#firewalls[record.firewall.kind]!.open(record);
      } catch (e) {
        return fail((e as Error).message);
      }
    }
    if (fresh && open.command) {
      const argv = substitute(open.command, { ip: record.ip, door: door.name });
      const result = await this.#runner.run(argv, open.commandTimeoutMs);
      if (result.code !== 0) return fail(describeFailure(result));
    }
    this.#onEvent({
      type: fresh ? "opened" : "extended",
      door: door.name,
      ip: record.ip,
      until: record.until,
    });
  }

  /**
   * Shutdown: closes every door a command opened (nothing would close it while sesame is
   * not running). Doors that only a firewall opened stay until their time, which the kernel
   * enforces by itself (nft timeouts, iptables --datestop); they remain in {@link records}
   * so the state file carries them to the next start.
   */
  async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.record.firewall && !entry.record.close) clearTimeout(entry.timer);
      else closing.push(this.#close(entry));
    }
    await Promise.all(closing);
    await Promise.all(this.#closing);
  }

  /** Cancels the timers without closing anything (a crash-like stop, for tests). */
  abandon(): void {
    for (const e of this.#entries.values()) clearTimeout(e.timer);
    this.#entries.clear();
  }

  #schedule(entry: Entry): void {
    clearTimeout(entry.timer);
    const wait = Math.max(0, entry.record.until - this.#now());
    entry.timer = setTimeout(() => {
      if (entry.record.until > this.#now()) this.#schedule(entry); // extended, or a long wait re-armed
      else this.#track(this.#close(entry));
    }, Math.min(wait, MAX_TIMER_MS));
  }

  #track(p: Promise<void>): void {
    this.#closing.add(p);
    p.finally(() => this.#closing.delete(p));
  }

  async #close(entry: Entry): Promise<void> {
    const { record } = entry;
    clearTimeout(entry.timer);
    const k = key(record.door, record.ip);
    if (this.#entries.get(k) !== entry) return; // closed already
    this.#entries.delete(k);
    let error: string | undefined;
    if (record.firewall) {
      const firewall = this.#firewalls[record.firewall.kind];
      await firewall?.close(record).catch((e) => error = (e as Error).message);
    }
    if (record.close) {
      const result = await this.#runner.run(record.close, entry.timeoutMs, undefined, true);
      if (result.code !== 0) error = describeFailure(result);
    }
    this.#onEvent({
      type: error ? "close-failed" : "closed",
      door: record.door,
      ip: record.ip,
      until: record.until,
      error,
    });
    this.#onChange();
  }
}

function key(door: string, ip: string): string {
  return `${door}\u0000${ip}`;
}

function describeFailure(result: { code: number; timedOut: boolean; error: string }): string {
  if (result.timedOut) return "killed after its time limit";
  return `exit code ${result.code}${result.error ? `: ${result.error}` : ""}`;
}
