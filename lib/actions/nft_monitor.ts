/**
 * Follows `nft monitor` for the firewall guard: says when sesame's table may have been
 * changed by someone else (another tool's flush or ruleset reload).
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { CommandRunner, Session } from "./runner.ts";

/**
 * How long the watch gathers a change's events before it calls back: a flush is many
 * lines, read in a few ms; every ms here is a ms the protected ports may stand open.
 */
const COALESCE_MS = 10;
/** How often the watch calls back without an event, in case nft monitor dropped one. */
const BACKSTOP_MS = 5_000;

/** True for an `nft monitor` line that may change sesame's table (not its elements). */
function concernsTable(line: string): boolean {
  return line !== "" && !line.startsWith("#") && !line.startsWith("add element") &&
    !line.startsWith("delete element");
}

/**
 * Follows `nft monitor` (one long-lived process): any change to a table, chain, set or
 * rule, or a flush, may concern sesame's table; element events (openings, expiries) do
 * not. Calls are coalesced over 10 ms. A monitor that dies is restarted. The monitor
 * can drop events (its netlink buffer overflows under load), so it also calls back every
 * {@link BACKSTOP_MS} without one.
 */
export class NftMonitor {
  readonly #runner: CommandRunner;
  readonly #nft: string;
  readonly #clock: Clock;
  /** The long-lived `nft monitor`, while watching. */
  #monitor: Session | undefined;
  #watching = false;
  #backstop: Timer | undefined;

  /**
   * @param runner spawns nft.
   * @param nft the nft program.
   * @param clock timers for the coalescing and the backstop.
   */
  constructor(runner: CommandRunner, nft: string, clock: Clock) {
    this.#runner = runner;
    this.#nft = nft;
    this.#clock = clock;
  }

  /** Starts following; `onChange` is called after changes (and by the backstop). Once only. */
  start(onChange: () => void): void {
    if (this.#watching) return;
    this.#watching = true;
    const clock = this.#clock;
    let timer: Timer | undefined;
    const changed = () => {
      timer ??= clock.setTimeout(() => {
        timer = undefined;
        if (this.#watching) onChange();
      }, COALESCE_MS);
    };
    this.#backstop = clock.setInterval(changed, BACKSTOP_MS);
    const follow = () => {
      if (!this.#watching) return;
      let monitor: Session;
      try {
        monitor = this.#monitor = this.#runner.spawn([this.#nft, "monitor"]);
      } catch {
        setTimeout(follow, 1000); // nft cannot start: try again, and check meanwhile
        changed();
        return;
      }
      (async () => {
        const reader = monitor.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read().catch(() => ({ value: "", done: true }));
          if (done) break;
          buffer += value;
          const lines = buffer.split("\n");
          buffer = lines.pop()!;
          if (lines.some(concernsTable)) changed();
        }
      })();
      monitor.stderr.cancel().catch(() => {});
      monitor.status.then(() => {
        if (this.#monitor !== monitor || !this.#watching) return;
        changed(); // whatever happened while nobody watched
        setTimeout(follow, 1000);
      });
    };
    follow();
  }

  /** Stops following, and waits for the monitor to end. */
  async stop(): Promise<void> {
    this.#watching = false;
    this.#clock.clearTimeout(this.#backstop);
    const monitor = this.#monitor;
    this.#monitor = undefined;
    try {
      monitor?.kill("SIGTERM");
    } catch { /* gone */ }
    await monitor?.status;
  }
}
