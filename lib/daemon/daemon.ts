/**
 * The daemon: wiring only. It starts the parts in order (store, engine, firewall, opener,
 * sequences, listeners), routes each knock down one path (listener → sequences → engine
 * → opener or report), and reloads and stops them. Every failure fails closed: an error
 * never opens a door, and stopping closes every door a command opened.
 * @module
 */
import { type Config, type Door, type SpaDoor, userDoors } from "../config/types.ts";
import { SpaGate } from "../spa/gate.ts";
import { Counters } from "../counters.ts";
import { type Decision, KnockEngine } from "../engine/engine.ts";
import { UsedCodes } from "../engine/used_codes.ts";
import { ConfigError, FirewallError } from "../errors.ts";
import { formatDuration } from "../duration.ts";
import type { Protocol } from "../knock.ts";
import { logger } from "../log.ts";
import { IptablesFirewall } from "../actions/iptables.ts";
import { NftFirewall } from "../actions/nft.ts";
import type { Firewalls } from "../actions/firewall.ts";
import { type CommandRunner, WorkerRunner } from "../actions/runner.ts";
import {
  type BindFailure,
  type Endpoint,
  type Listeners,
  type ListenersFactory,
  SocketListeners,
} from "../net/listeners.ts";
import { SqliteStore } from "../store/sqlite.ts";
import {
  type LoadResult,
  MemoryStore,
  type OpenRecord,
  type SpaDigest,
  type Store,
  type StoredState,
} from "../store/store.ts";
import { acceptWindow } from "../window.ts";
import { doorWeakness, weaknessWarning } from "../weakness.ts";
import { doorBindFailures, shouldFallBackToIPv4, wantedEndpoints } from "./binding.ts";
import { Opener } from "./opener.ts";
import { checkDescriptors, gatewayWarnings, warnEphemeral } from "./preflight.ts";
import { type DaemonEvent, isRefusal, logLine } from "./report.ts";
import { RefusalLog } from "./refusal_log.ts";
import {
  type ControlAnswer,
  type ControlRequest,
  type ControlServer,
  serveControl,
} from "./control.ts";
import { parseAddress } from "../address.ts";
import { type MetricsServer, renderMetrics, serveMetrics } from "./metrics.ts";
import { Sequences } from "./sequences.ts";
import { type InstanceLock, takeInstanceLock } from "./instance_lock.ts";

export type { DaemonEvent };

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
}

/** What `sesame status` learns from a running daemon. */
export interface DaemonStatus {
  /** The daemon's process ID. */
  readonly pid: number;
  /** When it started, ISO 8601. */
  readonly started_at: string;
  /** Seconds since it started. */
  readonly uptime_s: number;
  /** Its config file, when known. */
  readonly config: string | null;
  /** The doors open now. */
  readonly open: readonly OpenRecord[];
  /** Scanners banned now: source, evidence, until (ISO 8601). */
  readonly bans: readonly { source: string; evidence: string; until: string }[];
}

const log = logger("daemon");
/** Per-knock debug lines: a category of their own, never rate-limited (debugging only). */
const knockLog = logger("knock");
/** Failure lines (what fail2ban reads): limited by {@link RefusalLog}, not by LogTape. */
const refusalLog = logger("refusal");
const TICK_MS = 500;

type FirewallKind = keyof Firewalls;

/** A backend's recent repairs (for the pauses after repeated ones). */
interface Repairs {
  times: number[];
  hold: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}
const FIREWALL_KINDS: readonly FirewallKind[] = ["nft", "iptables"];

/**
 * A running knock daemon.
 *
 * @example
 * ```ts
 * import { Daemon } from "./daemon.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { MemoryListeners } from "../net/listeners.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000, 8000], open: { for: "5s" } } } });
 * let listeners: MemoryListeners | undefined;
 * const daemon = await Daemon.start({
 *   config,
 *   listeners: (onKnock, now, counters) => listeners = new MemoryListeners(onKnock, now, counters),
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
  readonly counters: Counters;
  #config: Config;
  #doors: Map<string, Door>;
  #engine: KnockEngine;
  #sequences: Sequences;
  readonly #used: UsedCodes;
  readonly #now: () => number;
  readonly #runner: CommandRunner;
  readonly #ownsRunner: boolean;
  readonly #store: Store;
  readonly #firewalls: Firewalls;
  readonly #opener: Opener;
  readonly #listeners: Listeners;
  readonly #onEvent: (event: DaemonEvent) => void;
  #tick: ReturnType<typeof setInterval> | undefined;
  #stopping: Promise<void> | undefined;
  /** Addresses listened on (after the IPv4 fallback). */
  #addresses: readonly string[] = [];
  /** This namespace's instance lock, when sesame drives a firewall. */
  readonly #lock: InstanceLock | undefined;
  /** Backends whose rules are being checked or repaired now. */
  readonly #guarding = new Set<FirewallKind>();
  /** Changes seen while a check or repair ran: checked again when it ends. */
  readonly #guardAgain = new Set<FirewallKind>();
  /** Per backend: times of the latest repairs, until when the next one waits, its timer. */
  readonly #repair: Record<FirewallKind, Repairs> = {
    nft: { times: [], hold: 0, timer: undefined },
    iptables: { times: [], hold: 0, timer: undefined },
  };
  #reloading = false;
  /** False until the firewall is in place: knocks heard before are not acted on. */
  #ready = false;
  /** The latest time a tick saw (to notice a clock stepped back). */
  #lastTick = 0;
  /** SPA packets: HMACs, checks, used digests. */
  #spa: SpaGate;
  /** SPA packets made before this are refused (after a lost state). */
  readonly #spaRefuseBefore: number;
  /** Which failure lines are written. */
  readonly #refusals = new RefusalLog();
  /** When the last summary of dropped failure lines was considered, ms. */
  #lastSummary = Date.now();
  /** Link-local sources already reported. */
  readonly #linkLocalSeen = new Set<string>();
  /** Per-knock debug lines cost nothing unless enabled: checked once at start. */
  readonly #debug = knockLog.isEnabledFor("debug");
  #resolveStopped!: () => void;
  /** Resolves when {@link stop} has finished. */
  readonly stopped: Promise<void>;
  readonly #startedAt = Date.now();
  readonly #controlPath: string | undefined;
  readonly #configFile: string | undefined;
  #control: ControlServer | undefined;
  #metrics: MetricsServer | undefined;

  private constructor(
    options: DaemonOptions,
    store: Store,
    used: UsedCodes,
    lock: InstanceLock | undefined,
    spa: { used: readonly SpaDigest[]; maxTime: number; refuseBefore: number },
  ) {
    this.#lock = lock;
    this.#controlPath = options.control;
    this.#configFile = options.configFile;
    const config = this.#config = options.config;
    this.#doors = new Map(config.doors.map((d) => [d.name, d]));
    this.#now = options.now ?? Date.now;
    this.#runner = options.runner ?? new WorkerRunner();
    this.#ownsRunner = !options.runner;
    if (this.#runner instanceof WorkerRunner) this.#runner.warm();
    this.#onEvent = options.onEvent ?? (() => {});
    this.counters = new Counters();
    this.#store = store;
    this.#used = used;
    this.#firewalls = options.firewalls ?? {
      nft: new NftFirewall(this.#runner, { now: this.#now, mode: config.nftMode }),
      iptables: new IptablesFirewall(this.#runner, {
        now: this.#now,
        paths: {
          v4: `/usr/sbin/${config.iptablesTool}`,
          v6: `/usr/sbin/${config.iptablesTool.replace("iptables", "ip6tables")}`,
        },
      }),
    };
    this.#opener = new Opener({
      store,
      firewalls: this.#firewalls,
      runner: this.#runner,
      now: this.#now,
      counters: this.counters,
      report: (e) => this.#report(e),
    });
    this.#engine = this.#newEngine(config);
    this.#sequences = this.#newSequences();
    this.#spaRefuseBefore = spa.refuseBefore;
    this.#spa = new SpaGate(spaDoors(config), spa.used, spa.maxTime, spa.refuseBefore, config);
    const listen = options.listeners ??
      ((k, now, c, p) => new SocketListeners(k, now, c, p));
    this.#listeners = listen(
      (s, p, port, at) => this.#knock(s, p, port, at),
      this.#now,
      this.counters,
      (s, port, payload, at) => this.#packet(s, port, payload, at),
    );
    this.stopped = new Promise((r) => this.#resolveStopped = r);
  }

  /**
   * Starts a daemon: loads the store, applies the firewall, takes over the open doors
   * (closing those that fell due while it was down), derives the codes in the window,
   * binds the listeners.
   * @throws {ConfigError} when the config cannot run (a door without `open`, too few file descriptors).
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config } = options;
    assertRunnable(config);
    const now = options.now ?? Date.now;
    // The instance lock first: a second daemon touches nothing, not even the state.
    const lock = options.lock ??
      (!options.firewalls && usesFirewall(config) ? await takeInstanceLock() : undefined);
    const store = options.store ??
      (config.stateFile ? new SqliteStore(config.stateFile) : new MemoryStore());
    let loaded;
    try {
      loaded = await store.load();
    } catch (e) {
      lock?.release();
      throw e;
    }
    const state = describeLoad(loaded, config, now());
    const used = new UsedCodes(adoptCodes(config, state));
    // The latest time sesame committed: a clock that restarts behind it (no RTC after a
    // power loss) must not lower the floors below codes used before.
    const latest = Math.max(now(), (state as { maxTime?: number }).maxTime ?? 0);
    if (loaded.kind === "corrupt" || loaded.kind === "lost") {
      // The codes used lately are unknown: every code of the current window counts as used.
      for (const door of userDoors(config.doors)) {
        if (door.kind === "rotating") {
          used.floor(door.name, door.fingerprint, acceptWindow(door, latest).hi, door.user);
        }
      }
    }
    const lost = loaded.kind === "corrupt" || loaded.kind === "lost";
    const maxAge = Math.max(0, ...spaDoors(config).map((d) => d.spa.maxAgeMs));
    const daemon = new Daemon(options, store, used, lock, {
      used: state.spa ?? [],
      maxTime: Math.max(now(), (state as { maxTime?: number }).maxTime ?? 0),
      // Which SPA packets were used lately is unknown: none made before now is taken.
      // (nor one stamped up to max_age after it: a client's clock may run ahead).
      // Kept in the store until it has passed (the first commit below writes it): a second
      // start, after this one stopped, must not forget it.
      refuseBefore: Math.max(lost ? latest + maxAge : 0, state.spaRefuseBefore ?? 0),
    });
    // A clock that restarted behind the latest time committed (stepped back while sesame
    // was down) would lengthen every open door by the step: their ends move back by it.
    const behind = latest - now();
    const open = behind > 1000
      ? state.open.map((r) => ({ ...r, until: r.until - behind }))
      : state.open;
    try {
      await daemon.#start(open);
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
  async #start(open: readonly OpenRecord[]): Promise<void> {
    // Codes adopted from an older state, the fail-closed floors and the doors salvaged from
    // a damaged store become durable now.
    await this.#store.commit({
      used: this.#used.marks(),
      opened: open,
      now: this.#now(),
      ...(this.#spaRefuseBefore > this.#now() ? { refuseSpaBefore: this.#spaRefuseBefore } : {}),
    });
    await this.#sequences.refresh(this.#now());
    const bound = await this.#bind(); // knocks are held back until the firewall is in place
    const metrics = this.#config.metrics;
    if (metrics) {
      try {
        this.#metrics = serveMetrics(metrics.hostname, metrics.port, () => this.metrics());
      } catch (e) {
        throw new ConfigError([{
          path: "listen.metrics",
          message: `cannot serve metrics on ${metrics.hostname}:${metrics.port}: ${
            (e as Error).message
          }`,
        }]);
      }
      log.info("metrics at http://{host}:{port}/metrics", {
        host: metrics.hostname.includes(":") ? `[${metrics.hostname}]` : metrics.hostname,
        port: this.#metrics.port,
      });
    }
    for (const kind of FIREWALL_KINDS) {
      if (uses(this.#config, kind) || open.some((r) => r.firewall?.kind === kind)) {
        await this.#firewalls[kind].start(this.#config.doors, open);
        log.info("{kind}: sesame's rules applied", { kind });
      }
    }
    this.#watchFirewalls();
    await this.#opener.restore(open);
    if (open.length > 0) {
      log.info("took over {count} open doors from the state file", { count: open.length });
    }
    this.#ready = true;
    if (this.#controlPath) {
      try {
        this.#control = await serveControl(this.#controlPath, (r) => this.#answer(r));
      } catch (e) {
        // Only a daemon without a firewall can meet another here (the instance lock keeps
        // firewall daemons apart): it runs on, reachable by its log and metrics only.
        log.warning(
          "no control socket (sesame status and revoke cannot reach this daemon): {error}",
          {
            error: (e as Error).message,
          },
        );
      }
    }
    this.#announce(bound);
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
  }

  /** The Prometheus exposition of the daemon's counters now. */
  metrics(): string {
    const openNow = new Map<string, number>();
    for (const r of this.#opener.records()) openNow.set(r.door, (openNow.get(r.door) ?? 0) + 1);
    return renderMetrics({
      counters: this.counters,
      doors: this.#config.doors.map((d) => d.name),
      openNow,
      trackedSources: this.#engine.trackedSources,
      bannedNow: this.#engine.bans(this.#now()).length,
      memory: Deno.memoryUsage(),
    });
  }

  /** Where metrics are served, when they are (the port the system chose for port 0). */
  get metricsPort(): number | undefined {
    return this.#metrics?.port;
  }

  /** What the daemon tells `sesame status`. */
  status(): DaemonStatus {
    return {
      pid: Deno.pid,
      started_at: new Date(this.#startedAt).toISOString(),
      uptime_s: Math.round((Date.now() - this.#startedAt) / 1000),
      config: this.#configFile ?? null,
      open: this.#opener.records(),
      bans: this.#engine.bans(this.#now()).map((b) => ({
        ...b,
        until: new Date(b.until).toISOString(),
      })),
    };
  }

  /**
   * Closes now the doors open on `door` for `ip` or for `user` (`sesame revoke`), and with
   * `established` drops their connections too (conntrack). Established connections
   * otherwise continue, as after `for`.
   */
  async revoke(
    request: { door: string; ip?: string; user?: string; established?: boolean },
  ): Promise<ControlAnswer> {
    const door = this.#doors.get(request.door);
    if (!door) {
      return {
        ok: false,
        error: `no door "${request.door}" in the running config (doors: ${
          [...this.#doors.keys()].join(", ")
        })`,
      };
    }
    let source: string | undefined;
    if (request.ip !== undefined) {
      source = parseAddress(request.ip)?.text;
      if (!source) return { ok: false, error: `not an IP address: ${JSON.stringify(request.ip)}` };
    }
    if (
      request.user !== undefined &&
      !(door.kind === "rotating" && door.users?.some((u) => u.name === request.user))
    ) {
      return { ok: false, error: `door ${door.name} has no user "${request.user}"` };
    }
    if (source === undefined && request.user === undefined) {
      return { ok: false, error: "say whose door to close: an address or a user" };
    }
    const { closed, failed } = await this.#opener.revoke({
      door: door.name,
      source,
      user: request.user,
    });
    if (closed.length + failed.length === 0 && request.established && source !== undefined) {
      // The door closed at its time already; its connections may live on: drop them.
      const spec = door.open?.nft ?? door.open?.iptables;
      const dropped = await this.#dropEstablished([{
        door: door.name,
        source,
        until: 0,
        close: null,
        ...(spec ? { firewall: { kind: "nft", ports: spec.ports, protocol: spec.protocol } } : {}),
      }]);
      if (dropped > 0) return { ok: true, closed: [], established_dropped: dropped };
    }
    if (closed.length + failed.length === 0) {
      return {
        ok: false,
        nothing: true,
        error: `nothing was open on door ${door.name} for ${source ?? `user ${request.user}`}`,
      };
    }
    if (failed.length > 0) {
      return {
        ok: false,
        error: `closing failed for ${
          failed.map((r) => r.source).join(", ")
        } (see the daemon's log; it retries)`,
      };
    }
    const dropped = request.established ? await this.#dropEstablished(closed) : undefined;
    return {
      ok: true,
      closed: closed.map((r) => ({ source: r.source, user: r.user ?? null })),
      ...(dropped === undefined ? {} : { established_dropped: dropped }),
    };
  }

  /** Deletes the conntrack entries of revoked doors: their connections end now. */
  async #dropEstablished(records: readonly OpenRecord[]): Promise<number> {
    let dropped = 0;
    for (const r of records) {
      const base = [
        "/usr/sbin/conntrack",
        "-D",
        ...(r.source.includes(":") ? ["-f", "ipv6"] : []),
        "-s",
        r.source,
      ];
      const fw = r.firewall;
      // A door on the admin's own sets names no ports: every connection of the address.
      // TCP: live connections only (not the TIME_WAIT remains of closed ones).
      const state = fw?.protocol === "udp" ? [] : ["--state", "ESTABLISHED"];
      const argvs = fw && fw.ports.length > 0
        ? fw.ports.map((p) => [...base, "-p", fw.protocol, ...state, "--dport", String(p)])
        : [base];
      for (const argv of argvs) {
        const result = await this.#runner.run(argv, 5000, undefined, true);
        const count = /(\d+) flow entries have been deleted/.exec(result.error)?.[1];
        if (count === undefined) {
          log.error("conntrack: cannot drop the connections of {source}: {error}", {
            source: r.source,
            error: result.error || `exit code ${result.code}`,
          });
        } else dropped += Number(count);
      }
    }
    return dropped;
  }

  #answer(request: ControlRequest): Promise<ControlAnswer> {
    if (request.op === "status") return Promise.resolve({ ok: true, ...this.status() });
    return this.revoke(request);
  }

  /** The config in force. */
  get config(): Config {
    return this.#config;
  }

  /** Sources tracked now. */
  get trackedSources(): number {
    return this.#engine.trackedSources;
  }

  /** The doors open now. */
  openDoors(): OpenRecord[] {
    return this.#opener.records();
  }

  /** Resolves when every open decided so far has been committed and acted on (tests). */
  settled(): Promise<void> {
    return this.#opener.settled();
  }

  /**
   * Replaces the config (SIGHUP). Listeners that stay are kept; used codes carry over.
   * A config that cannot run is refused and the old one keeps running.
   */
  async reload(config: Config): Promise<void> {
    this.#reloading = true;
    try {
      await this.#reload(config);
    } finally {
      // Checks skipped while reloading (another tool may have flushed the rules meanwhile)
      // happen now, against whatever config is in force.
      this.#reloading = false;
      for (const kind of FIREWALL_KINDS) {
        if (uses(this.#config, kind)) void this.#guard(kind);
      }
    }
  }

  async #reload(config: Config): Promise<void> {
    try {
      assertRunnable(config);
      // What binding the new pools would refuse is refused before anything changes.
      await checkDescriptors(wantedEndpoints(config.doors, config.addresses).length);
      await this.#applyFirewalls(config);
    } catch (e) {
      if (e instanceof ConfigError || e instanceof FirewallError) {
        this.#report({ kind: "reload-failed", error: e.message });
      } else {
        // A bug is not a refused config: say so, with its stack. The old rules still stand.
        log.error(
          "internal error during the reload (please report); the running config stays: {error}",
          {
            error: String((e as Error)?.stack ?? e),
          },
        );
      }
      throw e;
    }
    const before = userDoors(this.#config.doors);
    for (const door of userDoors(config.doors)) {
      const old = before.find((d) =>
        d.name === door.name && d.kind === "rotating" && door.kind === "rotating" &&
        d.user === door.user
      );
      if (
        door.kind === "rotating" && old?.kind === "rotating" && old.fingerprint !== door.fingerprint
      ) {
        log.info(
          "door {door}: {whose} secret changed (fingerprint {from} → {to}): the new secret's codes open from now on, the old one's do not",
          {
            door: door.name,
            whose: door.user === undefined ? "its" : `user ${door.user}'s`,
            from: old.fingerprint,
            to: door.fingerprint,
          },
        );
      }
    }
    const gone = removedUsers(this.#config, config);
    for (const { door, user } of removedUsers(config, this.#config)) {
      log.info("door {door}: user {user} added: their codes open from now on", { door, user });
    }
    if (JSON.stringify(config.metrics) !== JSON.stringify(this.#config.metrics)) {
      log.warning("listen.metrics changed: the new address takes effect at the next start");
    }
    this.#config = config;
    this.#doors = new Map(config.doors.map((d) => [d.name, d]));
    this.#engine = this.#newEngine(config);
    this.#sequences = this.#newSequences();
    // Used SPA packets carry over: a reload never revives one.
    this.#spa = new SpaGate(
      spaDoors(config),
      this.#spa.usedDigests(),
      Math.max(this.#spa.maxTime, this.#now()),
      this.#spaRefuseBefore,
      config,
    );
    await this.#sequences.refresh(this.#now());
    this.#watchFirewalls();
    // Users removed from a door lose their open doors, now that the new config is in force,
    // and before the new ports are bound: a bind that fails must not leave them open.
    for (const { door, user } of gone) {
      const { closed } = await this.#opener.revoke({ door, user });
      if (closed.length > 0) {
        log.info("door {door}: user {user} was removed: closed {count} open", {
          door,
          user,
          count: closed.length,
        });
      }
    }
    let bound;
    try {
      bound = await this.#bind();
    } catch (e) {
      // The new config is in force (its rules, its doors) but hears no knock: say so loudly.
      log.error(
        "reloaded, but {error}: no knock is heard until a reload or a restart binds some (are the new ports in use?)",
        { error: e instanceof ConfigError ? e.issues.map((i) => i.message).join("; ") : String(e) },
      );
      this.#report({ kind: "reloaded" });
      throw e;
    }
    this.#announce(bound);
    log.info("reloaded: {doors} doors", { doors: config.doors.length });
    this.#report({ kind: "reloaded" });
  }

  /** Watches the backends in use: another tool's firewall reload puts sesame's rules back. */
  #watchFirewalls(): void {
    for (const kind of FIREWALL_KINDS) {
      if (uses(this.#config, kind)) this.#firewalls[kind].watch(() => void this.#guard(kind));
    }
  }

  /**
   * Puts sesame's rules back when they are gone or altered (`nft flush ruleset`, a jump
   * removed), with the doors still open, and says so at error. Something that keeps
   * removing them is answered with growing pauses (up to a minute), logged each time.
   */
  async #guard(kind: FirewallKind): Promise<void> {
    if (this.#reloading || this.#stopping) return;
    if (this.#guarding.has(kind)) {
      // A flush during a repair (or during the check before it) must not be lost: the
      // repair may have read the rules before it. Checked again when this one ends.
      this.#guardAgain.add(kind);
      return;
    }
    this.#guarding.add(kind);
    try {
      const firewall = this.#firewalls[kind];
      if (await firewall.intact()) return;
      const now = Date.now();
      const repair = this.#repair[kind];
      if (now < repair.hold) return;
      repair.times = [...repair.times.filter((t) => now - t < 60_000), now];
      log.error(
        "{kind}: sesame's rules were removed or changed by another program (a firewall reload?): putting them back, with {open} doors still open",
        {
          kind,
          open: this.#opener.records().filter((r) => r.firewall?.kind === kind).length,
        },
      );
      // In repair mode what can be put back is, even when a door's own set went missing;
      // the open doors are read when the rules are written.
      await firewall.start(this.#config.doors, () => this.#opener.records(), { repair: true });
      this.#report({ kind: "firewall-restored", backend: kind });
      if (repair.times.length > 5) {
        const pause = Math.min(60_000, 1000 * 2 ** (repair.times.length - 5));
        repair.hold = now + pause;
        log.error(
          "{kind}: something keeps removing sesame's rules ({count} times in a minute): the next repair waits {pause}",
          { kind, count: repair.times.length, pause: formatDuration(pause) },
        );
        clearTimeout(repair.timer);
        repair.timer = setTimeout(() => void this.#guard(kind), pause + 10);
      }
    } catch (e) {
      log.error("{kind}: cannot put sesame's rules back: {error}", {
        kind,
        error: (e as Error).message,
      });
    } finally {
      this.#guarding.delete(kind);
      if (this.#guardAgain.delete(kind)) void this.#guard(kind);
    }
  }

  /**
   * Applies `config` to every backend either config uses, as one change: each backend's
   * transaction is all or nothing, and when a later backend fails, the ones already
   * applied get the running config back. The kernel ends as it was, or fully changed.
   */
  async #applyFirewalls(config: Config): Promise<void> {
    const records = () => this.#opener.records();
    const applied: FirewallKind[] = [];
    // Backends the new config uses first, those it leaves last: protection is added
    // before any is taken away, so a door moving between backends is never unguarded.
    const order = [
      ...FIREWALL_KINDS.filter((kind) => uses(config, kind)),
      ...FIREWALL_KINDS.filter((kind) => !uses(config, kind) && uses(this.#config, kind)),
    ];
    try {
      for (const kind of order) {
        applied.push(kind); // put back too if it fails: part of it may have gone through
        await this.#firewalls[kind].start(config.doors, records);
      }
    } catch (e) {
      for (const kind of applied) {
        await this.#firewalls[kind].start(this.#config.doors, records).catch((undo) =>
          log.error("{kind}: cannot put the running rules back after a failed reload: {error}", {
            kind,
            error: (undo as Error).message,
          })
        );
      }
      throw e;
    }
  }

  /** Stops listening, closes every door a command opened, keeps the rest in the store. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearInterval(this.#tick);
      this.#listeners.closeAll();
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
    clearInterval(this.#tick);
    this.#control?.close();
    await this.#metrics?.shutdown();
    for (const kind of FIREWALL_KINDS) clearTimeout(this.#repair[kind].timer);
    this.#listeners.closeAll();
    this.#opener.cancelTimers();
    for (const kind of FIREWALL_KINDS) await this.#firewalls[kind].shutdown();
    this.#store.close();
    if (this.#ownsRunner) this.#runner.close();
    this.#lock?.release();
  }

  #newEngine(config: Config): KnockEngine {
    return new KnockEngine(userDoors(config.doors).filter((d) => d.kind !== "spa"), {
      maxSources: config.maxSources,
      reorderWindowMs: config.reorderWindowMs,
      scan: config.scan,
      allow: config.allow,
      deny: config.deny,
      used: this.#used,
      counters: this.counters,
    });
  }

  #newSequences(): Sequences {
    return new Sequences(
      this.#engine,
      (e) => log.error("cannot derive a sequence: {error}", { error: String(e) }),
    );
  }

  #report(event: DaemonEvent): void {
    if (isRefusal(event)) {
      this.counters.refused(event.door, event.kind === "refused" ? event.reason : event.kind);
      // Failure lines: one per source and door a minute, 100 a second in all.
      if (!this.#refusals.admit(event.door, event.source, Date.now(), event.evidence)) {
        return this.#emit(event);
      }
      const line = logLine(event, (name) => this.#doors.get(name))!;
      refusalLog.info(line.message, line.properties);
      return this.#emit(event);
    }
    const line = logLine(event, (name) => this.#doors.get(name));
    // `open.log: false` silences a door's routine lines (opened, extended, closed), not its failures.
    const quiet = line?.level === "info" && "door" in event &&
      this.#doors.get(event.door)?.open?.log === false;
    if (line && !quiet) {
      log[line.level === "warning" ? "warn" : line.level](line.message, line.properties);
    }
    this.#emit(event);
  }

  #emit(event: DaemonEvent): void {
    try {
      this.#onEvent(event);
    } catch (e) {
      log.error("event handler failed: {error}", { error: String(e) });
    }
  }

  #onTick(): void {
    const now = this.#now();
    this.#watchClock(now);
    const timeouts = this.#engine.sweep(now);
    if (timeouts.length > 0) this.#decide(timeouts);
    if (Date.now() - this.#lastSummary >= 60_000) {
      this.#lastSummary = Date.now();
      // SPA digests older than any packet still taken: forgotten, here and in the store.
      if (this.#spa.prune() > 0) {
        this.#store.commit({ pruneSpaBefore: this.#spa.horizon, now }).catch(() => {});
      }
      const dropped = this.#refusals.takeDropped();
      if (dropped > 0) {
        refusalLog.warn(
          "{dropped} failure lines were not written in the last minute (more than 100 a second); the metrics count every failure",
          { dropped },
        );
      }
    }
    this.#sequences.refresh(now).catch((e) =>
      log.error("cannot derive sequences: {error}", { error: String(e) })
    );
  }

  /**
   * A clock stepped back by more than a door's window would accept older codes: used codes
   * stay refused (their marks never expire), but the admin must know. Logged at error.
   */
  #watchClock(now: number): void {
    const last = this.#lastTick; // ticks are 500 ms apart: a step shows as one jump
    this.#lastTick = now;
    const windows = this.#config.doors.flatMap((d) =>
      d.kind === "rotating" ? [d.skew * d.periodMs] : d.kind === "spa" ? [d.spa.maxAgeMs] : []
    );
    if (windows.length === 0 || last - now <= Math.max(TICK_MS * 2, Math.min(...windows))) return;
    log.error(
      "the clock went back {back} (from {from} to {to}), more than a door's window: used codes stay refused; check the time source",
      {
        back: formatDuration(last - now),
        from: new Date(last).toISOString(),
        to: new Date(now).toISOString(),
      },
    );
  }

  #endpoints() {
    return wantedEndpoints(this.#config.doors, this.#addresses);
  }

  async #bind(): Promise<{ endpoints: Endpoint[]; failures: BindFailure[] }> {
    this.#addresses = this.#config.addresses;
    let endpoints = this.#endpoints();
    await checkDescriptors(endpoints.length);
    await warnEphemeral(this.#config.doors);
    for (const warning of await gatewayWarnings(this.#config.doors)) {
      log.warning("{warning}", { warning });
    }
    let failures = this.#listeners.update(endpoints);
    if (shouldFallBackToIPv4(endpoints, failures)) {
      log.warning("cannot listen on [::] (IPv6 off?): listening on 0.0.0.0 instead");
      this.#addresses = this.#addresses.map((a) => a === "::" ? "0.0.0.0" : a);
      endpoints = this.#endpoints();
      failures = this.#listeners.update(endpoints);
    }
    for (const f of doorBindFailures(this.#config.doors, failures)) {
      log.warning(
        "door {door}: {count} of its ports could not be bound ({reasons}): {sample}. Knocks there go unheard; a rotating door whose code lands on one cannot open that period",
        { ...f },
      );
    }
    if (this.#listeners.size === 0) {
      throw new ConfigError([{ path: "listen", message: "no knock port could be bound" }]);
    }
    return { endpoints, failures };
  }

  /** The start-up summary, once the daemon acts on knocks (after start and each reload). */
  #announce({ endpoints, failures }: { endpoints: Endpoint[]; failures: BindFailure[] }): void {
    const bound = this.#listeners.size;
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
      const weak = weaknessWarning(doorWeakness(door, this.#config.reorderWindowMs));
      if (weak) log.warning("{warning}", { warning: weak, door: door.name });
      if (door.kind !== "rotating") continue;
      log.info(
        "door {door}: {length} {protocol} knocks from {pool} ports, period {period}, next rotation in {left}",
        {
          door: door.name,
          length: door.length,
          protocol: door.protocol,
          pool: door.candidates.length,
          period: formatDuration(door.periodMs),
          left: formatDuration(door.periodMs - (this.#now() % door.periodMs)),
        },
      );
    }
    this.#report({ kind: "ready", endpoints: bound, failures });
  }

  /** The knock path: listener → sequences (bind_source derivation) → engine → decisions. */
  #knock(source: string, protocol: Protocol, port: number, at: number): void {
    if (this.#debug) {
      knockLog.debug("knock from {source} on {port}/{protocol}", { source, port, protocol });
    }
    if (!this.#ready) return; // the firewall is not in place yet: a door could not open
    if ((source.charCodeAt(0) | 32) === 102 /* f or F */ && isLinkLocal(source)) {
      return this.#refuseLinkLocal(source);
    }
    this.#sequences.knock(source, protocol, port, at, this.#handle);
  }

  /**
   * A socket address carries no scope: an element for fe80::1 would open the door to
   * that address on every link. Refused, logged once per source (a bounded memory).
   */
  #refuseLinkLocal(source: string): void {
    this.counters.ignored++;
    if (this.#linkLocalSeen.has(source)) return;
    if (this.#linkLocalSeen.size >= 1024) this.#linkLocalSeen.clear();
    this.#linkLocalSeen.add(source);
    this.#report({ kind: "link-local", source });
  }

  /**
   * The SPA path: listener → gate (rate limit, HMAC, checks) → opener, or a failure line.
   * An authentic packet refused for another reason is used up in the store too.
   */
  #packet(source: string, port: number, payload: string, at: number): void {
    if (!this.#ready) return;
    if ((source.charCodeAt(0) | 32) === 102 && isLinkLocal(source)) {
      return this.#refuseLinkLocal(source);
    }
    const d = this.#spa.handle(source, port, payload, at);
    if (d.kind === "open") {
      this.#opener.request(this.#doors.get(d.door)!, d.target, undefined, undefined, at, {
        forMs: d.forMs,
        spa: { digest: d.digest, seen: d.seen },
      });
      return;
    }
    if (d.reason === "limited") {
      this.counters.spaLimited++;
      return;
    }
    // A datagram's source can be forged: SPA refusals are never TCP evidence.
    this.#report({
      kind: "refused",
      door: d.door ?? `spa-${port}`,
      source,
      reason: d.reason,
      evidence: "udp",
      detail: d.detail,
    });
    if (d.digest !== undefined && d.seen !== undefined) {
      this.#store.commit({ spa: [{ digest: d.digest, seen: d.seen }], now: this.#now() }).catch(
        (e) => log.error("state not written ({error}): an SPA packet's use", { error: String(e) }),
      );
    }
  }

  readonly #handle = (source: string, protocol: Protocol, port: number, at: number): void => {
    const decisions = this.#engine.handle(source, protocol, port, at);
    if (decisions.length > 0) this.#decide(decisions, at);
  };

  #decide(decisions: readonly Decision[], at?: number): void {
    for (const d of decisions) {
      if (d.kind === "open") {
        this.#opener.request(this.#doors.get(d.door)!, d.source, d.code, d.user, at);
      } else this.#report(d);
    }
  }
}

/** Logs how the store loaded; returns the state to start from. */
function describeLoad(loaded: LoadResult, config: Config, now: number): StoredState {
  const file = config.stateFile;
  switch (loaded.kind) {
    case "first":
      log.info("first start: a new state at {file}", { file });
      return { used: [], open: [] };
    case "lost":
      log.error(
        "the state at {file} was lost ({evidence}): the codes used lately are unknown. Failing closed: every code of the current window is refused",
        { file, evidence: loaded.evidence },
      );
      return loaded.state ?? { used: [], open: [] };
    case "corrupt":
      log.error(
        "the state at {file} is damaged ({error}); kept as {keptAs}. Failing closed: every code of the current window is refused; {salvaged} open doors could still be read",
        {
          file,
          error: loaded.error.message,
          keptAs: loaded.keptAs,
          salvaged: loaded.salvaged.length,
        },
      );
      return { used: [], open: loaded.salvaged };
    case "ok": {
      if (!file) {
        log.warning(
          "no state_file: used codes are kept in memory only, so replay protection ends when sesame stops",
        );
      }
      if (loaded.imported) {
        log.info("imported the JSON state file {file}; the old file is kept as {keptAs}", {
          file,
          keptAs: loaded.imported,
        });
      }
      const maxTime = loaded.state.maxTime ?? 0;
      if (maxTime > now + 1000) {
        log.error(
          "the clock is {behind} behind the latest time sesame committed ({latest}): it was stepped back. Used codes stay refused, and the doors still open end that much earlier",
          { behind: formatDuration(maxTime - now), latest: new Date(maxTime).toISOString() },
        );
      }
      return loaded.state;
    }
  }
}

/**
 * The used codes a store kept, for this config: records from before fingerprints count
 * for the door's current secret (fail closed).
 */
function adoptCodes(config: Config, state: StoredState) {
  const secrets = new Map(
    config.doors.flatMap((d) => d.kind === "rotating" ? [[d.name, d.fingerprint]] : []),
  );
  return state.used.flatMap((c) => {
    const secret = c.secret ?? secrets.get(c.door);
    return secret === undefined ? [] : [{ ...c, secret }];
  });
}

/** True for an IPv6 link-local address (fe80::/10), as sockets report it (no scope). */
function isLinkLocal(source: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(source);
}

/** The (door, user) pairs of `before` that `after` no longer has (the door itself stays). */
function removedUsers(before: Config, after: Config): { door: string; user: string }[] {
  return before.doors.flatMap((door) => {
    const now = after.doors.find((d) => d.name === door.name);
    if (door.kind !== "rotating" || !door.users || !now) return [];
    const kept = new Set(now.kind === "rotating" ? now.users?.map((u) => u.name) : []);
    return door.users.filter((u) => !kept.has(u.name)).map((u) => ({
      door: door.name,
      user: u.name,
    }));
  });
}

function spaDoors(config: Config): SpaDoor[] {
  return config.doors.filter((d): d is SpaDoor => d.kind === "spa");
}

function uses(config: Config, kind: FirewallKind): boolean {
  return config.doors.some((d) => d.open?.[kind]);
}

function usesFirewall(config: Config): boolean {
  return FIREWALL_KINDS.some((kind) => uses(config, kind));
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
