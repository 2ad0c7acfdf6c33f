/**
 * The daemon: wires the clock, the listeners, the knock engine, the doorkeeper and the
 * state file. The knock path is synchronous (listener → engine); derivations, state
 * writes and commands happen beside it. Every failure fails closed: an error never opens
 * a door, and stopping closes every door a command opened.
 * @module
 */
import type { Config, Door, RotatingDoor } from "./config/types.ts";
import { codeForCounter } from "./code.ts";
import { parseAddress } from "./address.ts";
import { type Decision, KnockEngine, SKEW_PROBE } from "./engine.ts";
import { type DoorEvent, Doorkeeper } from "./actions/doorkeeper.ts";
import { type CommandRunner, WorkerRunner } from "./actions/runner.ts";
import { NftFirewall } from "./actions/nft.ts";
import { IptablesFirewall } from "./actions/iptables.ts";
import type { Firewall } from "./actions/firewall.ts";
import { type BindFailure, type Endpoint, ListenerSet } from "./net/listeners.ts";
import { emptyState, type OpenRecord, StateFile } from "./state.ts";
import { logger } from "./log.ts";
import { ephemeralPortRange, openFileLimit } from "./system.ts";
import type { Knock, Protocol } from "./sequence.ts";
import { formatDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";

/** Events the daemon reports besides its log lines: what tests and the demo watch. */
export type DaemonEvent =
  | DoorEvent
  | {
    readonly type: "ready";
    readonly endpoints: number;
    readonly failures: readonly BindFailure[];
  }
  | {
    readonly type: "replay";
    readonly door: string;
    readonly ip: string;
    readonly counter: number;
  }
  | { readonly type: "scan"; readonly ip: string; readonly reason: "decoy" | "ports" }
  | { readonly type: "skew"; readonly door: string; readonly ip: string; readonly periods: number }
  | { readonly type: "reloaded" }
  | { readonly type: "reload-failed"; readonly error: string };

/** Options for {@link Daemon.start}. */
export interface DaemonOptions {
  /** The validated config. Every door must have `open`. */
  readonly config: Config;
  /** Runs commands. @default a {@link WorkerRunner} */
  readonly runner?: CommandRunner;
  /** The clock. @default Date.now */
  readonly now?: () => number;
  /** Called for every {@link DaemonEvent}. */
  readonly onEvent?: (event: DaemonEvent) => void;
}

const log = logger("daemon");
const TICK_MS = 500;
/** Knocks held per source while its bind_source sequences are derived. */
const MAX_QUEUED_KNOCKS = 32;
const FD_MARGIN = 64;

interface QueuedKnock {
  protocol: Protocol;
  port: number;
  at: number;
}

/**
 * A running knock daemon.
 *
 * @example
 * ```ts ignore
 * import { Daemon } from "./daemon.ts";
 * const daemon = await Daemon.start({ config });
 * Deno.addSignalListener("SIGTERM", () => daemon.stop());
 * await daemon.stopped;
 * ```
 */
export class Daemon {
  #config: Config;
  #engine: KnockEngine;
  readonly #now: () => number;
  readonly #runner: CommandRunner;
  readonly #ownsRunner: boolean;
  readonly #keeper: Doorkeeper;
  readonly #firewalls: Record<FirewallKind, Firewall>;
  readonly #listeners: ListenerSet;
  readonly #state: StateFile | undefined;
  readonly #onEvent: (event: DaemonEvent) => void;
  readonly #pending = new Map<string, QueuedKnock[]>();
  #tick: ReturnType<typeof setInterval> | undefined;
  #deriving = new Set<string>();
  #stopping: Promise<void> | undefined;
  /** Addresses listened on (after the IPv4 fallback). */
  #addresses: readonly string[] = [];
  /** Window-mode doors: the derived codes by counter, to know which ports to bind. */
  #windowCodes = new Map<number, Map<number, readonly Knock[]>>();
  /** Per-knock debug lines cost nothing unless enabled: checked once at start. */
  readonly #debug = log.isEnabledFor("debug");
  #resolveStopped!: () => void;
  /** Resolves when {@link stop} has finished. */
  readonly stopped: Promise<void>;

  private constructor(
    options: DaemonOptions,
    parts: {
      engine: KnockEngine;
      state?: StateFile;
      keeper: Doorkeeper;
      runner: CommandRunner;
      firewalls: Record<FirewallKind, Firewall>;
    },
  ) {
    const { engine, state, keeper, runner, firewalls } = parts;
    this.#firewalls = firewalls;
    this.#config = options.config;
    this.#engine = engine;
    this.#now = options.now ?? Date.now;
    this.#runner = runner;
    this.#ownsRunner = !options.runner;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#state = state;
    this.#keeper = keeper;
    this.#listeners = new ListenerSet((s, p, port, at) => this.#knock(s, p, port, at), this.#now);
    this.stopped = new Promise((r) => this.#resolveStopped = r);
  }

  /**
   * Starts a daemon: loads the state file, closes doors that fell due while it was down,
   * derives the codes in the window, binds the listeners.
   * @throws {ConfigError} when the config cannot run (a door without `open`, too few file descriptors).
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config } = options;
    assertRunnable(config);
    const now = options.now ?? Date.now;
    const runner = options.runner ?? new WorkerRunner();
    if (runner instanceof WorkerRunner) runner.warm();
    // The doorkeeper and the state file call back into the daemon, which needs them to exist first.
    const ref: { daemon?: Daemon } = {};
    const firewalls = {
      nft: new NftFirewall(runner, { now, mode: config.nftMode }),
      iptables: new IptablesFirewall(runner, { now }),
    };
    const keeper = new Doorkeeper({
      runner,
      now,
      firewalls,
      onEvent: (e) => ref.daemon && ref.daemon.#doorEvent(e),
      onChange: () => void (ref.daemon && ref.daemon.#save().catch(() => {})),
    });
    let state = emptyState();
    let corrupt = false;
    let file: StateFile | undefined;
    if (config.stateFile) {
      file = new StateFile(
        config.stateFile,
        () => ({ used: ref.daemon!.#engine.usedCodes(), open: keeper.records() }),
      );
      const loaded = await file.load();
      if (loaded.kind === "ok") state = loaded.state;
      if (loaded.kind === "corrupt") {
        corrupt = true;
        log.error(
          "state file {file} is corrupt ({error}); kept as {keptAs}. Failing closed: every code of the current window is refused",
          { file: config.stateFile, error: loaded.error.message, keptAs: loaded.keptAs },
        );
      }
    }
    const engine = newEngine(config, state.used);
    // The firewall first: protected ports are closed to all but the still-open sources
    // before anything else happens. If it cannot be done, sesame does not start.
    for (const kind of FIREWALL_KINDS) {
      if (uses(config, kind) || state.open.some((r) => r.firewall?.kind === kind)) {
        await firewalls[kind].apply(config.doors, state.open);
        log.info("{kind}: sesame's rules applied", { kind });
      }
    }
    const daemon = ref.daemon = new Daemon(options, {
      engine,
      state: file,
      keeper,
      runner,
      firewalls,
    });
    if (corrupt) daemon.#blockWindow();
    // Doors a previous run opened: close those past their time before anything else.
    await keeper.restore(state.open);
    if (state.open.length > 0) {
      log.info("took over {count} open doors from the state file", { count: state.open.length });
    }
    await daemon.#save();
    await daemon.#refreshSequences();
    await daemon.#bind();
    daemon.#tick = setInterval(() => daemon.#onTick(), TICK_MS);
    return daemon;
  }

  /** The config in force. */
  get config(): Config {
    return this.#config;
  }

  /** Sources tracked now. */
  get trackedSources(): number {
    return this.#engine.trackedSources;
  }

  /** Counters since start: knocks heard, accept errors, sources tracked, scanners found, knocks ignored. */
  stats(): {
    knocks: number;
    acceptErrors: number;
    trackedSources: number;
    scanners: number;
    ignored: number;
  } {
    return {
      knocks: this.#listeners.stats.knocks,
      acceptErrors: this.#listeners.stats.acceptErrors,
      trackedSources: this.#engine.trackedSources,
      scanners: this.#engine.scannersDetected,
      ignored: this.#engine.ignoredKnocks,
    };
  }

  /** The doors open now. */
  openDoors(): OpenRecord[] {
    return this.#keeper.records();
  }

  /**
   * Replaces the config (SIGHUP). Listeners that stay are kept, so knocks in progress on
   * them survive; used codes carry over. A config that cannot run is refused and the old
   * one keeps running.
   */
  async reload(config: Config): Promise<void> {
    try {
      assertRunnable(config);
    } catch (e) {
      this.#emit({ type: "reload-failed", error: (e as Error).message });
      throw e;
    }
    for (const kind of FIREWALL_KINDS) {
      if (!uses(config, kind) && !uses(this.#config, kind)) continue;
      try {
        await this.#firewalls[kind].apply(config.doors, this.#keeper.records());
      } catch (e) {
        this.#emit({ type: "reload-failed", error: (e as Error).message });
        throw e; // each transaction failed as a whole: the old rules still stand
      }
    }
    this.#config = config;
    this.#engine = newEngine(config, this.#engine.usedCodes());
    this.#pending.clear();
    this.#windowCodes = new Map();
    await this.#refreshSequences();
    await this.#bind();
    log.info("reloaded: {doors} doors", { doors: config.doors.length });
    this.#emit({ type: "reloaded" });
  }

  /** Stops listening, closes every open door, saves the state. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearInterval(this.#tick);
      this.#listeners.closeAll();
      await this.#keeper.closeAll();
      await (this.#firewalls.nft as NftFirewall).shutdown();
      await this.#save().catch((e) =>
        log.error("cannot save state: {error}", { error: (e as Error).message })
      );
      if (this.#ownsRunner) this.#runner.close();
      log.info(
        "stopped: {knocks} knocks heard, {scanners} scanners ignored, {acceptErrors} accept errors",
        this.stats(),
      );
      this.#resolveStopped();
    })();
    return this.#stopping;
  }

  /** Stops like a crash: listeners and timers end, nothing is closed or saved (tests). */
  abandon(): void {
    clearInterval(this.#tick);
    void (this.#firewalls.nft as NftFirewall).shutdown();
    this.#listeners.closeAll();
    this.#keeper.abandon();
    if (this.#ownsRunner) this.#runner.close();
    this.#resolveStopped();
  }

  #emit(event: DaemonEvent): void {
    try {
      this.#onEvent(event);
    } catch (e) {
      log.error("event handler failed: {error}", { error: String(e) });
    }
  }

  #doorEvent(e: DoorEvent): void {
    const props = {
      door: e.door,
      ip: e.ip,
      until: new Date(e.until).toISOString(),
      error: e.error,
    };
    if (e.type === "opened") log.info("door {door} opened for {ip} until {until}", props);
    else if (e.type === "extended") {
      log.info("door {door} already open for {ip}: extended until {until}", props);
    } else if (e.type === "closed") log.info("door {door} closed for {ip}", props);
    else if (e.type === "open-failed") {
      log.error("door {door}: open command failed for {ip}: {error}", props);
    } else log.error("door {door}: close command failed for {ip}: {error}", props);
    this.#emit(e);
  }

  async #save(): Promise<void> {
    await this.#state?.save();
  }

  #blockWindow(): void {
    const now = this.#now();
    this.#config.doors.forEach((door, i) => {
      if (door.kind === "rotating") this.#engine.blockThrough(i, this.#engine.window(door, now)[1]);
    });
  }

  /** Installs the sequences of unbound rotating doors for T−skew … T+skew+1 (one ahead, ready at the boundary). */
  async #refreshSequences(): Promise<void> {
    const now = this.#now();
    const engine = this.#engine;
    const jobs: Promise<void>[] = [];
    this.#config.doors.forEach((door, i) => {
      if (door.kind !== "rotating" || door.bindSource) return;
      const [lo, hi] = engine.window(door, now);
      const have = new Set(engine.installedCounters(i));
      // The window, one ahead (ready at the boundary), and the counters followed to detect skew.
      for (let c = lo - SKEW_PROBE; c <= hi + SKEW_PROBE + 1; c++) {
        const job = `${i}/${c}`;
        if (have.has(c) || this.#deriving.has(job)) continue;
        this.#deriving.add(job);
        jobs.push(
          codeForCounter(door, c).then((code) => {
            if (this.#engine !== engine) return;
            engine.setSequence(i, c, code.knocks, this.#now());
            if (door.bind === "window") {
              const codes = this.#windowCodes.get(i) ?? new Map<number, readonly Knock[]>();
              this.#windowCodes.set(i, codes);
              codes.set(c, code.knocks);
              for (const old of codes.keys()) if (old < lo - SKEW_PROBE) codes.delete(old);
            }
          }).finally(() => this.#deriving.delete(job)),
        );
      }
    });
    await Promise.all(jobs);
  }

  #onTick(): void {
    const now = this.#now();
    this.#engine.sweep(now);
    this.#refreshSequences().then(() => this.#rebindWindow()).catch((e) =>
      log.error("cannot derive sequences: {error}", { error: String(e) })
    );
  }

  #endpoints(): Endpoint[] {
    const endpoints = new Map<string, Endpoint>();
    const now = this.#now();
    for (const hostname of this.#addresses) {
      this.#config.doors.forEach((door, i) => {
        if (door.kind === "rotating" && door.bind === "window") {
          // Only the ports of the codes in the window, and of the next one (bound before its boundary).
          const [lo, hi] = this.#engine.window(door, now);
          for (const [counter, knocks] of this.#windowCodes.get(i) ?? []) {
            if (counter < lo || counter > hi + 1) continue;
            for (const { port, protocol } of knocks) {
              endpoints.set(`${protocol}/${hostname}/${port}`, { hostname, port, protocol });
            }
          }
          return;
        }
        for (const protocol of ["tcp", "udp"] as const) {
          for (const port of door.pool[protocol]) {
            endpoints.set(`${protocol}/${hostname}/${port}`, { hostname, port, protocol });
          }
        }
      });
    }
    return [...endpoints.values()];
  }

  /** Window-mode doors: binds the ports of codes entering the window, releases those that left. */
  #rebindWindow(): void {
    if (!this.#config.doors.some((d) => d.kind === "rotating" && d.bind === "window")) return;
    const failures = this.#listeners.update(this.#endpoints());
    for (const f of failures) {
      log.warning(
        "cannot bind {port}/{protocol} for the window ({reason}): that code cannot be knocked",
        {
          port: f.endpoint.port,
          protocol: f.endpoint.protocol,
          reason: f.reason,
        },
      );
    }
  }

  async #bind(): Promise<void> {
    this.#addresses = this.#config.addresses;
    let endpoints = this.#endpoints();
    await checkDescriptors(endpoints.length);
    await warnEphemeral(this.#config.doors);
    let failures = this.#listeners.update(endpoints);
    // "::" fails on every port when the kernel has no IPv6 (EAFNOSUPPORT and the like, not
    // "in use" or "denied"): fall back to IPv4 alone.
    const v6 = failures.filter((f) => f.endpoint.hostname === "::");
    const v6Wanted = endpoints.filter((e) => e.hostname === "::").length;
    if (
      v6Wanted > 0 && v6.length === v6Wanted &&
      v6.every((f) => f.reason !== "AddrInUse" && f.reason !== "PermissionDenied")
    ) {
      log.warning("cannot listen on [::] (IPv6 off?): listening on 0.0.0.0 instead");
      this.#addresses = this.#addresses.map((a) => a === "::" ? "0.0.0.0" : a);
      endpoints = this.#endpoints();
      failures = this.#listeners.update(endpoints);
    }
    for (const door of this.#config.doors) {
      const mine = failures.filter((f) => door.pool[f.endpoint.protocol].includes(f.endpoint.port));
      if (mine.length === 0) continue;
      const reasons = [...new Set(mine.map((f) => f.reason))].join(", ");
      const sample = mine.slice(0, 8).map((f) => `${f.endpoint.port}/${f.endpoint.protocol}`).join(
        " ",
      );
      log.warning(
        "door {door}: {count} of its ports could not be bound ({reasons}): {sample}. Knocks there go unheard; a rotating door whose code lands on one cannot open that period",
        { door: door.name, count: mine.length, reasons, sample },
      );
    }
    const bound = this.#listeners.size;
    if (bound === 0) {
      throw new ConfigError([{ path: "listen", message: "no knock port could be bound" }]);
    }
    const tcp = endpoints.filter((e) => e.protocol === "tcp").length;
    log.info(
      "listening on {bound} sockets ({tcp} TCP, {udp} UDP) on {addresses} for {doors} doors",
      {
        bound,
        tcp,
        udp: endpoints.length - tcp,
        addresses: this.#config.addresses.join(", "),
        doors: this.#config.doors.map((d) => d.name).join(", "),
      },
    );
    for (const door of this.#config.doors) {
      if (door.kind === "rotating" && door.bind === "window") {
        log.warning(
          "door {door}: its pool of {pool} ports is bound by window: only the ports of the codes in the window listen, re-bound every period. A port scan then narrows the code down to its {orderings} orderings",
          { door: door.name, pool: door.candidates.length, orderings: factorial(door.length) },
        );
      }
      if (door.kind === "rotating") {
        const left = door.periodMs - (this.#now() % door.periodMs);
        log.info(
          "door {door}: {length} {protocol} knocks from {pool} ports, period {period}, next rotation in {left}",
          {
            door: door.name,
            length: door.length,
            protocol: door.protocol,
            pool: door.candidates.length,
            period: formatDuration(door.periodMs),
            left: formatDuration(left),
          },
        );
      }
    }
    this.#emit({ type: "ready", endpoints: bound, failures });
  }

  /** The knock path: synchronous unless a bind_source door needs this source's sequences. */
  #knock(source: string, protocol: Protocol, port: number, at: number): void {
    if (this.#debug) {
      log.debug("knock from {ip} on {port}/{protocol}", { ip: source, port, protocol });
    }
    const queued = this.#pending.get(source);
    if (queued) {
      if (queued.length < MAX_QUEUED_KNOCKS) queued.push({ protocol, port, at });
      return;
    }
    const engine = this.#engine;
    const missing = engine.missingBound(source, protocol, port, at);
    if (missing.length > 0) {
      this.#pending.set(source, [{ protocol, port, at }]);
      this.#deriveBound(engine, source, missing, at);
      return;
    }
    this.#decide(engine.handle(source, protocol, port, at));
  }

  #deriveBound(
    engine: KnockEngine,
    source: string,
    missing: { doorIndex: number; counter: number }[],
    at: number,
  ): void {
    const address = parseAddress(source);
    Promise.all(missing.map(async ({ doorIndex, counter }) => {
      const code = await codeForCounter(engine.doors[doorIndex], counter, address);
      engine.setBoundSequence(source, doorIndex, counter, code.knocks, at);
    })).catch((e) => log.error("cannot derive a bound sequence: {error}", { error: String(e) }))
      .finally(() => {
        const queue = this.#pending.get(source) ?? [];
        this.#pending.delete(source);
        if (this.#engine !== engine) return;
        for (const k of queue) {
          // Sequences for a later counter may be needed now (a boundary passed): derive again.
          if (engine.missingBound(source, k.protocol, k.port, k.at).length > 0) continue;
          this.#decide(engine.handle(source, k.protocol, k.port, k.at));
        }
      });
  }

  #decide(decisions: readonly Decision[]): void {
    for (const d of decisions) {
      if (d.kind === "scan") {
        log.warning("{ip} looks like a scanner ({reason}): ignored until {until}", {
          ip: d.source,
          reason: d.reason === "decoy" ? "knocked a decoy port" : "too many distinct knock ports",
          until: new Date(d.until).toISOString(),
        });
        this.#emit({ type: "scan", ip: d.source, reason: d.reason });
        continue;
      }
      if (d.kind === "skew") {
        const door = d.door as RotatingDoor;
        log.warning(
          "door {door}: {ip} sent the code of {periods} period(s) {direction}: the clocks disagree by about {drift} (only ±{skew} period(s) are accepted). Not opened",
          {
            door: door.name,
            ip: d.source,
            periods: Math.abs(d.periods),
            direction: d.periods > 0 ? "ahead" : "behind",
            drift: formatDuration(Math.abs(d.periods) * door.periodMs),
            skew: door.skew,
          },
        );
        this.#emit({ type: "skew", door: door.name, ip: d.source, periods: d.periods });
        continue;
      }
      if (d.kind === "replay") {
        log.warning(
          "door {door}: {ip} completed an already used code (counter {counter}): a replay? Not opened",
          {
            door: d.door.name,
            ip: d.source,
            counter: d.counter,
          },
        );
        this.#emit({ type: "replay", door: d.door.name, ip: d.source, counter: d.counter });
        continue;
      }
      this.#open(d.door, d.source);
    }
  }

  /** Commit, then act: the used code and the open record reach the state file before the door opens. */
  #open(door: Door, ip: string): void {
    let planned;
    try {
      planned = this.#keeper.plan(door, ip);
    } catch (e) {
      log.error("door {door}: refusing to open for {ip}: {error}", {
        door: door.name,
        ip,
        error: (e as Error).message,
      });
      return;
    }
    const { record, fresh } = planned;
    this.#save().then(
      () => this.#keeper.runOpen(door, record, fresh),
      (e) =>
        log.error("door {door}: state file not written ({error}): not opening for {ip}", {
          door: door.name,
          ip,
          error: (e as Error).message,
        }),
    );
  }
}

function factorial(n: number): number {
  return n <= 1 ? 1 : n * factorial(n - 1);
}

function newEngine(config: Config, used: Iterable<[string, number]>): KnockEngine {
  return new KnockEngine(config.doors, {
    maxSources: config.maxSources,
    reorderWindowMs: config.reorderWindowMs,
    scan: config.scan,
    allow: config.allow,
    deny: config.deny,
    used,
  });
}

type FirewallKind = "nft" | "iptables";
const FIREWALL_KINDS: readonly FirewallKind[] = ["nft", "iptables"];

function uses(config: Config, kind: FirewallKind): boolean {
  return config.doors.some((d) => d.open?.[kind]);
}

function assertRunnable(config: Config): void {
  const clientOnly = config.doors.filter((d) => !d.open);
  if (clientOnly.length > 0) {
    throw new ConfigError(clientOnly.map((d) => ({
      path: `doors.${d.name}`,
      message: `has no "open": it is a client-side door; listen needs an action for every door`,
    })));
  }
}

async function checkDescriptors(sockets: number): Promise<void> {
  const limit = await openFileLimit();
  if (limit && sockets + FD_MARGIN > limit.soft) {
    throw new ConfigError([{
      path: "doors",
      message:
        `needs ${sockets} sockets (+${FD_MARGIN} spare) but the open file limit is ${limit.soft}` +
        ` (hard ${limit.hard}): raise it (systemd LimitNOFILE=${
          sockets + 1024
        }, or ulimit -n) or shrink the pools`,
    }]);
  }
}

async function warnEphemeral(doors: readonly Door[]): Promise<void> {
  const range = await ephemeralPortRange();
  if (!range) return;
  for (const door of doors) {
    const ports = [...door.pool.tcp, ...door.pool.udp];
    const inside = ports.filter((p) => p >= range[0] && p <= range[1]).length;
    if (inside > 0) {
      log.warning(
        "door {door}: {inside} pool ports lie in the kernel's ephemeral range {lo}-{hi} (net.ipv4.ip_local_port_range): outgoing connections may take them",
        { door: door.name, inside, lo: range[0], hi: range[1] },
      );
    }
  }
}
