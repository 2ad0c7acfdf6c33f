/**
 * The daemon orders the parts; it judges, opens and answers nothing itself. Start: the
 * instance lock, the store and its recovery, the derivations, the listeners, the metrics,
 * the firewall last (a start that fails changes nothing in the kernel), then the open
 * doors taken over and the control socket. Reload: check, apply the firewall, replace the
 * intake's config, close removed users' doors, bind. Stop: listeners, command doors,
 * release. The knock path itself runs listener → {@link Intake} → {@link Opener} or
 * {@link Reporter}, without coming back here.
 * @module
 */
import { systemFirewalls } from "../actions/system_firewalls.ts";
import type { Firewalls } from "../actions/firewall.ts";
import { type CommandRunner, WorkerRunner } from "../actions/runner.ts";
import { type Clock, systemClock, type Timer } from "../clock.ts";
import type { Config, Door } from "../config/types.ts";
import { Counters } from "../counters.ts";
import { logger } from "../log.ts";
import { type Listeners, type ListenersFactory, SocketListeners } from "../net/listeners.ts";
import { SqliteStore } from "../store/sqlite.ts";
import { CaptureListeners, countCaptureLogged } from "../capture/listeners.ts";
import { MemoryStore, type OpenRecord, type Store } from "../store/store.ts";
import { Admin, type DaemonStatus, type RevokeRequest } from "./admin.ts";
import { Binder } from "./binder.ts";
import type { ControlAnswer } from "./control.ts";
import { FirewallGuard, usesFirewall } from "./guard.ts";
import { firstOrDeleted, persistRecovery } from "./recovery.ts";
import { type InstanceLock, takeInstanceLock } from "./instance_lock.ts";
import { Intake } from "./intake.ts";
import { Opener } from "./opener.ts";
import { assertRunnable } from "./preflight.ts";
import { recover, type Recovery } from "./recovery.ts";
import type { DaemonEvent } from "./report.ts";
import { Reporter } from "./reporter.ts";
import { ClockWatch } from "./clock_watch.ts";
import { Fleet } from "../cluster/fleet.ts";
import { reloadFromFile, type ReloadOutcome, ReloadQueue } from "./reloads.ts";
import { applyReload, type ReloadParts } from "./reload_apply.ts";

export type { DaemonEvent, DaemonStatus };

/** Options for {@link Daemon.start}. */
export interface DaemonOptions {
  /** The validated config. Every door must have `open`. */
  readonly config: Config;
  /** Runs commands. @default a {@link WorkerRunner} */
  readonly runner?: CommandRunner;
  /** Wall time, monotonic time and timers. @default systemClock */
  readonly clock?: Clock;
  /** Called for every {@link DaemonEvent}. */
  readonly onEvent?: (event: DaemonEvent) => void;
  /** The durable state. @default the config's `state_file`, or memory without one */
  readonly store?: Store;
  /** Firewall backends. @default nft and iptables through the runner */
  readonly firewalls?: Firewalls;
  /** Makes the listeners. @default real sockets */
  readonly listeners?: ListenersFactory;
  /** The instance lock. @default taken under /run/sesame when sesame drives a real firewall */
  readonly lock?: InstanceLock;
  /** Where to serve the control socket (`sesame status`, `sesame revoke`). @default none */
  readonly control?: string;
  /** The config file's absolute path: the control socket names it, so clients know whose daemon it is. */
  readonly configFile?: string;
  /** Reads the config file again, for {@link Daemon.reloadFile} (SIGHUP, `sesame reload`). */
  readonly loadConfig?: () => Promise<Config>;
}

const log = logger("daemon");

/** What {@link Daemon.start} makes before the daemon itself. */
interface StartParts {
  readonly store: Store;
  readonly lock: InstanceLock | undefined;
  readonly runner: CommandRunner;
  readonly firewalls: Firewalls;
}
/** How often time is looked at: timeouts swept, the window's codes derived, the clock watched. */
const TICK_MS = 500;

/**
 * A running knock daemon.
 *
 * @example
 * ```ts
 * import { Daemon } from "./daemon.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { MemoryListeners } from "../testing/mod.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000, 8000], open: { for: "5s" } } } });
 * let listeners: MemoryListeners | undefined;
 * const daemon = await Daemon.start({
 *   config,
 *   listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
 * });
 * listeners!.knock("192.0.2.7", "tcp", 7000);
 * listeners!.knock("192.0.2.7", "tcp", 8000);
 * await daemon.settled();
 * assertEquals(daemon.openDoors().map((r) => r.source), ["192.0.2.7"]);
 * await daemon.stop();
 * ```
 */
export class Daemon {
  /** Counters since start. */
  readonly counters: Counters = new Counters();
  #config: Config;
  #doors: Map<string, Door>;
  readonly #clock: Clock;
  readonly #runner: CommandRunner;
  readonly #ownsRunner: boolean;
  readonly #store: Store;
  readonly #lock: InstanceLock | undefined;
  readonly #reporter: Reporter;
  readonly #opener: Opener;
  readonly #intake: Intake;
  readonly #guard: FirewallGuard;
  readonly #admin: Admin;
  readonly #listeners: Listeners;
  readonly #binder: Binder;
  readonly #clockWatch: ClockWatch;
  readonly #controlPath: string | undefined;
  readonly #reloads: ReloadQueue;
  readonly #fleet: Fleet | undefined;
  /** What a reload works on. */
  readonly #parts: ReloadParts;
  #tick: Timer | undefined;
  #captureCount: Timer | undefined;
  readonly #firewalls: Firewalls;
  #stopping: Promise<void> | undefined;
  #resolveStopped!: () => void;
  /** Resolves when {@link stop} has finished. */
  readonly stopped: Promise<void> = new Promise((r) => this.#resolveStopped = r);

  private constructor(
    options: DaemonOptions,
    { store, lock, runner, firewalls }: StartParts,
    recovery: Recovery,
    fleet: Fleet | undefined,
  ) {
    const config = this.#config = options.config;
    this.#doors = new Map(config.doors.map((d) => [d.name, d]));
    this.#lock = lock;
    this.#store = store;
    this.#controlPath = options.control;
    const clock = this.#clock = options.clock ?? systemClock;
    const counters = this.counters;
    this.#runner = runner;
    this.#ownsRunner = !options.runner;
    if (runner instanceof WorkerRunner) runner.warm();
    this.#firewalls = firewalls;
    this.#reporter = new Reporter({
      counters,
      now: clock.now,
      doorNamed: (name) => this.#doors.get(name),
      onEvent: options.onEvent,
    });
    const report = (e: DaemonEvent) => this.#reporter.report(e);
    this.#fleet = fleet;
    const opener = this.#opener = new Opener({
      store,
      firewalls,
      runner,
      clock,
      counters,
      report,
      ...(fleet ? { fleet } : {}),
    });
    this.#intake = new Intake({
      config,
      used: recovery.used,
      counters,
      opener,
      reporter: this.#reporter,
      store,
      clock,
      spa: recovery.spa,
    });
    this.#guard = new FirewallGuard({
      firewalls,
      clock,
      records: () => opener.records(),
      report,
      counters,
    });
    this.#admin = new Admin({
      config: () => this.#config,
      opener,
      intake: () => this.#intake,
      runner,
      counters,
      clock,
      configFile: options.configFile,
      reload: () => this.reloadFile(),
      fleet,
    });
    this.#reloads = new ReloadQueue(reloadFromFile({
      load: options.loadConfig,
      stopping: () => this.#stopping !== undefined,
      reload: (config) => this.reload(config),
    }));
    const capture = config.capture;
    const listen = options.listeners ??
      (capture.kind === "nflog"
        ? (sink, o) => new CaptureListeners(sink, { ...o, group: capture.group })
        : (sink, o) => new SocketListeners(sink, o));
    this.#listeners = listen(this.#intake, { now: clock.now, counters });
    this.#binder = new Binder(this.#listeners, report, clock);
    this.#clockWatch = new ClockWatch(TICK_MS);
    this.#parts = {
      guard: this.#guard,
      intake: this.#intake,
      opener,
      binder: this.#binder,
      reporter: this.#reporter,
    };
  }

  /**
   * Starts a daemon: loads the store, derives the codes in the window, binds the
   * listeners, applies the firewall, takes over the open doors (closing those that fell
   * due while it was down).
   * @throws {ConfigError} when the config cannot run (a door without `open`, too few file descriptors).
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config } = options;
    assertRunnable(config);
    const now = (options.clock ?? systemClock).now;
    // The instance lock first: a second daemon touches nothing, not even the state.
    const lock = options.lock ??
      (!options.firewalls && usesFirewall(config) ? await takeInstanceLock() : undefined);
    const store = options.store ??
      (config.stateFile ? new SqliteStore(config.stateFile) : new MemoryStore());
    const runner = options.runner ?? new WorkerRunner();
    const firewalls = options.firewalls ??
      systemFirewalls(config, runner, options.clock ?? systemClock);
    let loaded;
    try {
      const memory = !options.store && !config.stateFile;
      loaded = await firstOrDeleted(await store.load(), config, firewalls, memory);
    } catch (e) {
      store.close();
      if (!options.runner) runner.close();
      lock?.release();
      throw e;
    }
    const recovery = recover(loaded, config, now());
    let fleet: Fleet | undefined;
    try {
      // Durable before anything else can fail: a start that fails after a lost state must
      // leave the floors behind, or the next start would find a clean store without them.
      await persistRecovery(store, recovery, now());
      fleet = await Fleet.forConfig(config, {
        clock: options.clock ?? systemClock,
        door: (name) => daemon.#doors.get(name),
        opener: () => daemon.#opener,
        configFile: options.configFile,
      });
    } catch (e) {
      store.close();
      if (!options.runner) runner.close();
      lock?.release();
      throw e;
    }
    const parts = { store, lock, runner, firewalls };
    const daemon: Daemon = new Daemon(options, parts, recovery, fleet);
    try {
      await daemon.#start(recovery);
    } catch (e) {
      await daemon.#release();
      throw e;
    }
    return daemon;
  }

  /**
   * Everything that can fail comes before the kernel is touched (the state, derivations,
   * descriptors, binding); the firewall comes last. A start that fails changes nothing in
   * the kernel; sesame's table from a previous run, if any, stays as it was.
   */
  async #start({ open }: Recovery): Promise<void> {
    const now = this.#clock.now();
    this.#intake.tick(now);
    const bound = await this.#binder.bind(this.#config); // knocks are dropped until armed
    this.#admin.serveMetrics();
    this.#admin.writeMetricsFile();
    await this.#guard.start(this.#config, open);
    await this.#opener.restore(open, {
      timeoutOf: (name) => this.#doors.get(name)?.open?.commandTimeoutMs,
      known: (r) => {
        const door = this.#doors.get(r.door);
        return door !== undefined && (r.user === undefined ||
          (door.kind === "rotating" && door.users?.some((u) => u.name === r.user) === true));
      },
    });
    if (open.length > 0) {
      log.info("took over {count} open doors from the state file", { count: open.length });
    }
    this.#intake.arm();
    this.#fleet?.start();
    if (this.#controlPath) await this.#admin.serveControl(this.#controlPath);
    this.#binder.announce(this.#config, bound);
    this.#tick = this.#clock.setInterval(() => this.#onTick(), TICK_MS);
    if (this.#config.capture.kind === "nflog") {
      this.#captureCount = countCaptureLogged(this.#firewalls.nft, this.counters, this.#clock);
    }
  }

  // --- what tests, the CLI and the control socket read ---

  /** The config in force. */
  get config(): Config {
    return this.#config;
  }

  /** Sources tracked now. */
  get trackedSources(): number {
    return this.#intake.trackedSources;
  }

  /** The doors open now. */
  openDoors(): OpenRecord[] {
    return this.#opener.records();
  }

  /** Resolves when every open decided so far has been committed and acted on, and every close under way has ended. */
  settled(): Promise<void> {
    return this.#opener.settled();
  }

  /** The Prometheus exposition of the daemon's counters now. */
  metrics(): string {
    return this.#admin.metrics();
  }

  /** Where metrics are served, when they are (the port the system chose for port 0). */
  get metricsPort(): number | undefined {
    return this.#admin.metricsPort;
  }

  /** What the daemon tells `sesame status`. */
  status(): DaemonStatus {
    return this.#admin.status();
  }

  /** Closes doors now (`sesame revoke`): see {@link Admin.revoke}. */
  revoke(request: RevokeRequest): Promise<ControlAnswer> {
    return this.#admin.revoke(request);
  }

  // --- reload and stop ---

  /**
   * Reads the config file again and reloads with it (SIGHUP, `sesame reload`), one
   * reload at a time; resolves with what changed, or why the running config stays.
   */
  reloadFile(): Promise<ReloadOutcome> {
    return this.#reloads.request();
  }

  /**
   * Replaces the config. Listeners that stay are kept; used codes and scanner bans carry
   * over. A config that cannot run is refused and the old one keeps running.
   * @returns what changed, a line each.
   */
  async reload(config: Config): Promise<string[]> {
    try {
      return await this.#reload(config);
    } finally {
      // Checks held while reloading (another tool may have flushed the rules meanwhile)
      // happen now, against whatever config is in force.
      this.#guard.resume(this.#config);
    }
  }

  #reload(config: Config): Promise<string[]> {
    return applyReload(this.#parts, this.#config, config, (adopted) => {
      this.#config = adopted;
      this.#doors = new Map(adopted.doors.map((d) => [d.name, d]));
    });
  }

  /** Stops listening, closes every door a command opened, keeps the rest in the store. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      // A reload under way finishes first: nothing is applied after the release below.
      await this.#reloads.idle();
      this.#clock.clearTimeout(this.#tick);
      this.#guard.stop();
      this.#binder.stop();
      this.#listeners.closeAll();
      // The fleet's watch first: a grant mirrored after the closes below would open a door
      // nothing closes.
      await this.#fleet?.stop();
      await this.#opener.closeAll();
      await this.#release();
      log.info(
        "stopped: {knocks} knocks and {spaPackets} SPA packets heard, {scanners} scanners ignored, {acceptErrors} accept errors",
        { ...this.counters },
      );
      this.#resolveStopped();
    })();
    return this.#stopping;
  }

  /** Releases processes, the store and timers (after stop, or a failed start). */
  async #release(): Promise<void> {
    this.#clock.clearTimeout(this.#tick);
    this.#clock.clearTimeout(this.#captureCount);
    this.#binder.stop();
    await this.#admin.close();
    await this.#fleet?.stop();
    this.#listeners.closeAll();
    this.#opener.cancelTimers();
    await this.#guard.shutdown();
    this.#store.close();
    if (this.#ownsRunner) this.#runner.close();
    this.#lock?.release();
  }

  /** Time passing: the clock watched, timeouts swept, the window derived, summaries. */
  #onTick(): void {
    const now = this.#clock.now();
    this.#clockWatch.observe(now, this.#config);
    this.#intake.tick(now);
    this.#reporter.summarize();
  }
}
