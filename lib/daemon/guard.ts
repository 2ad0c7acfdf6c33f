/**
 * The firewall guard: sesame's rules in the kernel, applied at start and reload (all or
 * nothing across backends), watched while sesame runs, and put back when another tool
 * removes or changes them (`nft flush ruleset`, a firewall reload), with the doors still
 * open. Every repair runs at once: nothing ever waits while a protected port is open.
 * Repairs coalesce (one running, one queued), so two tools fighting over the ruleset
 * cannot spin a core; only the log is limited (a line a repair for the first five in a
 * minute, then one a minute).
 * @module
 */
import type { Firewalls, StartOptions } from "../actions/firewall.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config/types.ts";
import type { Counters } from "../counters.ts";
import { logger } from "../log.ts";
import type { OpenRecord } from "../store/store.ts";
import type { DaemonEvent } from "./report.ts";

const log = logger("daemon");

/** A firewall backend's name. */
export type FirewallKind = keyof Firewalls;
/** The backends, in the order they are applied. */
export const FIREWALL_KINDS: readonly FirewallKind[] = ["nft", "iptables"];

/** True when a door of `config` opens through backend `kind`. */
export function uses(config: Config, kind: FirewallKind): boolean {
  // The capture intake's rules live in sesame's nft table.
  if (kind === "nft" && config.capture.kind === "nflog") return true;
  return config.doors.some((d) => d.open?.[kind]);
}

/** What a backend's start needs of the config beyond its doors. */
function startOptions(config: Config): StartOptions {
  return {
    closedReply: config.closedReply,
    ...(config.capture.kind === "nflog"
      ? { capture: { group: config.capture.group, addresses: config.addresses } }
      : {}),
  };
}

/** True when a door of `config` opens through a kernel firewall. */
export function usesFirewall(config: Config): boolean {
  return FIREWALL_KINDS.some((kind) => uses(config, kind));
}

/** Options for {@link FirewallGuard}. */
export interface GuardOptions {
  /** The backends. */
  readonly firewalls: Firewalls;
  /** The repairs' pauses. */
  readonly clock: Clock;
  /** The doors open now (read when rules are written). */
  readonly records: () => OpenRecord[];
  /** Where a repair is reported. */
  readonly report: (event: DaemonEvent) => void;
  /** Where repairs are counted and timed. @default none */
  readonly counters?: Counters;
}

/** A backend's recent repairs (what the log says of them). */
interface Repairs {
  /** When the repairs of the last minute ran (monotonic ms). */
  times: number[];
  /** When the last summary line was written. */
  summarized: number;
  /** Repairs not logged one by one since the last summary. */
  unlogged: number;
}

/**
 * Keeps sesame's rules in place.
 *
 * @example A flush seen by the watch is repaired
 * ```ts
 * import { FirewallGuard } from "./guard.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { DryRunFirewall, ManualClock } from "../testing/mod.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000], open: { nft: { port: 22 } } } } });
 * const nft = new DryRunFirewall();
 * const guard = new FirewallGuard({
 *   firewalls: { nft, iptables: new DryRunFirewall() },
 *   clock: new ManualClock(0),
 *   records: () => [],
 *   report: () => {},
 * });
 * await guard.start(config, []);
 * nft.standing = false; // another tool flushed the ruleset
 * await guard.check("nft");
 * assertEquals(nft.calls, ["start 1 doors", "start 1 doors"]);
 * await guard.shutdown();
 * ```
 */
export class FirewallGuard {
  readonly #options: GuardOptions;
  #config: Config | undefined;
  /** Backends whose rules are being checked or repaired now. */
  readonly #checking = new Set<FirewallKind>();
  /** Changes seen while a check or repair ran: checked again when it ends. */
  readonly #again = new Set<FirewallKind>();
  readonly #repairs: Record<FirewallKind, Repairs> = {
    nft: { times: [], summarized: -Infinity, unlogged: 0 },
    iptables: { times: [], summarized: -Infinity, unlogged: 0 },
  };
  /** While true (a reload, the stop), changes are not checked. */
  #paused = false;
  #stopped = false;

  /** @param options the backends, the clock, the open doors and the report. */
  constructor(options: GuardOptions) {
    this.#options = options;
  }

  /**
   * Applies `config`'s rules on every backend it uses or an open door needs, then watches
   * them. Throws when one cannot be applied: the daemon must not run unprotected.
   */
  async start(config: Config, open: readonly OpenRecord[]): Promise<void> {
    for (const kind of FIREWALL_KINDS) {
      if (uses(config, kind) || open.some((r) => r.firewall?.kind === kind)) {
        await this.#options.firewalls[kind].start(config.doors, open, startOptions(config));
        log.info("{kind}: sesame's rules applied", { kind });
      }
    }
    this.#watch(config);
  }

  /**
   * Applies `config` in place of `running` on every backend either uses, as one change:
   * each backend's transaction is all or nothing, and when a later backend fails, the ones
   * already applied get `running` back. The kernel ends as it was, or fully changed.
   * Checks are held until {@link resume}.
   */
  async apply(config: Config, running: Config): Promise<void> {
    this.#paused = true;
    const { firewalls, records } = this.#options;
    const applied: FirewallKind[] = [];
    // Backends the new config uses first, those it leaves last: protection is added
    // before any is taken away, so a door moving between backends is never unguarded.
    const order = [
      ...FIREWALL_KINDS.filter((kind) => uses(config, kind)),
      ...FIREWALL_KINDS.filter((kind) => !uses(config, kind) && uses(running, kind)),
    ];
    try {
      for (const kind of order) {
        applied.push(kind); // put back too if it fails: part of it may have gone through
        await firewalls[kind].start(config.doors, records, startOptions(config));
      }
    } catch (e) {
      for (const kind of applied) {
        await firewalls[kind].start(running.doors, records, startOptions(running)).catch((undo) =>
          log.error("{kind}: cannot put the running rules back after a failed reload: {error}", {
            kind,
            error: (undo as Error).message,
          })
        );
      }
      throw e;
    }
  }

  /**
   * Watches `config`'s backends from now on and checks each once: changes made while
   * checks were held (another tool may have flushed the rules during a reload) are seen.
   */
  resume(config: Config): void {
    this.#paused = false;
    this.#watch(config);
    for (const kind of FIREWALL_KINDS) if (uses(config, kind)) void this.check(kind);
  }

  /**
   * Checks backend `kind`'s rules and puts them back when they are gone or altered, with
   * the doors still open, and says so at error.
   */
  async check(kind: FirewallKind): Promise<void> {
    const config = this.#config;
    if (this.#paused || this.#stopped || !config) return;
    if (this.#checking.has(kind)) {
      // A flush during a repair (or during the check before it) must not be lost: the
      // repair may have read the rules before it. Checked again when this one ends.
      this.#again.add(kind);
      return;
    }
    this.#checking.add(kind);
    const { firewalls, clock, records, report } = this.#options;
    try {
      const firewall = firewalls[kind];
      const seen = clock.monotonic();
      if (await firewall.intact()) return;
      // In repair mode what can be put back is, even when a door's own set went missing;
      // the open doors are read when the rules are written.
      await firewall.start(config.doors, records, { repair: true });
      const now = clock.monotonic();
      if (this.#options.counters) {
        this.#options.counters.firewallRepairs++;
        this.#options.counters.repairTime.observe((now - seen) / 1000);
      }
      report({ kind: "firewall-restored", backend: kind });
      this.#logRepair(kind, Math.round(now - seen), records);
    } catch (e) {
      log.error("{kind}: cannot put sesame's rules back: {error}", {
        kind,
        error: (e as Error).message,
      });
    } finally {
      this.#checking.delete(kind);
      if (this.#again.delete(kind)) void this.check(kind);
    }
  }

  /** Stops checking (the daemon stops); the rules stay, so the ports stay protected. */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Says at error that the rules were put back: each of the first five in a minute, then
   * one line a minute with how many more (a tool that keeps flushing must not flood the log).
   */
  #logRepair(kind: FirewallKind, tookMs: number, records: () => OpenRecord[]): void {
    const now = this.#options.clock.monotonic();
    const repair = this.#repairs[kind];
    repair.times = [...repair.times.filter((t) => now - t < 60_000), now];
    if (repair.times.length <= 5) {
      log.error(
        "{kind}: sesame's rules were removed or changed by another program (a firewall reload?): put back in {took} ms, with {open} doors still open",
        {
          kind,
          took: tookMs,
          open: records().filter((r) => r.firewall?.kind === kind).length,
        },
      );
      return;
    }
    repair.unlogged++;
    if (now - repair.summarized < 60_000) return;
    repair.summarized = now;
    log.error(
      "{kind}: something keeps removing sesame's rules: put back {count} more times (each at once; the last in {took} ms); one line a minute from now on",
      { kind, count: repair.unlogged, took: tookMs },
    );
    repair.unlogged = 0;
  }

  /** Stops checking and releases what each backend holds (processes, timers). */
  async shutdown(): Promise<void> {
    this.stop();
    for (const kind of FIREWALL_KINDS) await this.#options.firewalls[kind].shutdown();
  }

  #watch(config: Config): void {
    this.#config = config;
    for (const kind of FIREWALL_KINDS) {
      if (uses(config, kind)) this.#options.firewalls[kind].watch(() => void this.check(kind));
    }
  }
}
