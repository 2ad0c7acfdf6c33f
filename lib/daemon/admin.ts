/**
 * The daemon's answers to its admin: `sesame status` and `sesame revoke` (through the
 * control socket) and the Prometheus metrics (over HTTP). Serving them, and what they say.
 * @module
 */
import type { ReloadOutcome } from "./reloads.ts";
import type { CommandRunner } from "../actions/runner.ts";
import type { Clock, Timer } from "../clock.ts";
import type { Config } from "../config/types.ts";
import type { OpenRecord } from "../store/store.ts";
import { parseAddress } from "../address.ts";
import type { Counters } from "../counters.ts";
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import {
  type ControlAnswer,
  type ControlRequest,
  type ControlServer,
  serveControl,
} from "./control.ts";
import type { Intake } from "./intake.ts";
import { renderMetrics } from "./metrics.ts";
import { type MetricsServer, serveMetrics } from "./metrics_server.ts";
import type { Opener } from "./opener.ts";
import { revokeDoors } from "./revoke.ts";
import type { Fleet, FleetStatus } from "../cluster/fleet.ts";

const log = logger("daemon");

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
  /** How knocks are heard: `sockets`, or `nflog` with its group and the reader's counts. */
  readonly intake?: {
    readonly kind: "sockets" | "nflog";
    readonly group?: number;
    readonly captured?: number;
    readonly logged?: number;
    readonly restarts?: number;
  };
  /** With a cluster: this node, its connection, the fleet's shared doors. */
  readonly fleet?: FleetStatus;
}

/** What `sesame revoke` asks: a door's doors for an address or a user. */
export interface RevokeRequest {
  /** The door's name. */
  readonly door: string;
  /** Only this address's. */
  readonly ip?: string;
  /** Only this user's. */
  readonly user?: string;
  /** Also drop the connections they established (conntrack). */
  readonly established?: boolean;
}

/** Options for {@link Admin}. */
export interface AdminOptions {
  /** The config in force, read at each answer. */
  readonly config: () => Config;
  /** The open doors. */
  readonly opener: Opener;
  /** The knock intake (tracked sources, bans), read at each answer. */
  readonly intake: () => Intake;
  /** Runs conntrack. */
  readonly runner: CommandRunner;
  /** The counters the metrics show. */
  readonly counters: Counters;
  /** Uptime and bans. */
  readonly clock: Clock;
  /** The config file's absolute path, for status. */
  readonly configFile?: string;
  /** Reads the config file again and reloads (`sesame reload`). */
  readonly reload?: () => Promise<ReloadOutcome>;
  /** This node's fleet: status shows its grants, revoke reaches every node. */
  readonly fleet?: Fleet;
}

/**
 * Status, revoke and metrics, and the sockets that serve them. A daemon has one; its
 * `status()`, `revoke()` and `metrics()` are these.
 *
 * @example Revoke says what it closed, or why nothing
 * ```ts
 * import { Daemon } from "./daemon.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { MemoryListeners } from "../testing/mod.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000], open: { for: "5s" } } } });
 * let listeners: MemoryListeners | undefined;
 * const daemon = await Daemon.start({
 *   config,
 *   listeners: (sink, options) => listeners = new MemoryListeners(sink, options),
 * });
 * listeners!.knock("192.0.2.7", "tcp", 7000);
 * await daemon.settled();
 * assertEquals(await daemon.revoke({ door: "legacy", ip: "192.0.2.7" }), {
 *   ok: true,
 *   closed: [{ source: "192.0.2.7", user: null }],
 * });
 * assertEquals((await daemon.revoke({ door: "legacy", ip: "192.0.2.7" })).ok, false);
 * assertEquals(daemon.metrics().includes('sesame_opens_total{door="legacy"} 1'), true);
 * await daemon.stop();
 * ```
 */
export class Admin {
  readonly #options: AdminOptions;
  readonly #startedAt: number;
  #control: ControlServer | undefined;
  #metrics: MetricsServer | undefined;
  #metricsFileTimer: Timer | undefined;

  /** @param options what the answers read. */
  constructor(options: AdminOptions) {
    this.#options = options;
    this.#startedAt = options.clock.now();
  }

  /**
   * Serves metrics where `listen.metrics` says, if it does.
   * @throws {ConfigError} when the address cannot be served.
   */
  serveMetrics(): void {
    const metrics = this.#options.config().metrics;
    if (!metrics) return;
    const { counters, clock } = this.#options;
    let lastWarning = -Infinity;
    const onRefused = () => {
      counters.metricsRefused++;
      const now = clock.monotonic();
      if (now - lastWarning < 60_000) return; // one line a minute; the metric counts each
      lastWarning = now;
      log.warning(
        "metrics: connections refused (more than 32 at once, or out of file descriptors); {count} so far (sesame_metrics_refused_total)",
        { count: counters.metricsRefused },
      );
    };
    try {
      this.#metrics = serveMetrics(metrics.hostname, metrics.port, () => this.metrics(), {
        onRefused,
      });
    } catch (e) {
      throw new ConfigError([{
        path: "listen.metrics",
        message: `cannot serve metrics on ${metrics.hostname}:${metrics.port}: ${
          (e as Error).message
        }`,
      }], { cause: e });
    }
    log.info("metrics at http://{host}:{port}/metrics", {
      host: metrics.hostname.includes(":") ? `[${metrics.hostname}]` : metrics.hostname,
      port: this.#metrics.port,
    });
  }

  /**
   * Writes the metrics to `listen.metrics_file` now and every 15 s, for node_exporter's
   * textfile collector: metrics without a port. Written to a new file of a random name
   * beside it (created exclusively: never through a link or into a FIFO another user
   * planted) and renamed over it (a rename replaces a link, it does not follow it), so a
   * reader never sees half a file. A write that fails is logged (once a minute), never fatal.
   */
  writeMetricsFile(): void {
    const path = this.#options.config().metricsFile;
    if (!path) return;
    const { clock } = this.#options;
    let lastError = -Infinity;
    const write = () => {
      const tmp = `${path}.sesame-${crypto.randomUUID()}`;
      try {
        const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o644 });
        try {
          const bytes = new TextEncoder().encode(this.metrics());
          for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
          // Readable by node_exporter whatever the umask: by path, once the path is still
          // the file written (no fd chmod in Deno).
          if (Deno.lstatSync(tmp).ino === file.statSync().ino) Deno.chmodSync(tmp, 0o644);
        } finally {
          file.close();
        }
        Deno.renameSync(tmp, path);
      } catch (e) {
        try {
          Deno.removeSync(tmp); // ours (created exclusively), or nothing
        } catch { /* not created */ }
        if (clock.monotonic() - lastError < 60_000) return;
        lastError = clock.monotonic();
        log.error("cannot write the metrics to {path}: {error}", {
          path,
          error: (e as Error).message,
        });
      }
    };
    write();
    this.#metricsFileTimer = clock.setInterval(write, 15_000);
  }

  /** Serves the control socket at `path`; a daemon that cannot runs on without one. */
  async serveControl(path: string): Promise<void> {
    try {
      this.#control = await serveControl(path, (r) => this.answer(r));
    } catch (e) {
      // Only a daemon without a firewall can meet another here (the instance lock keeps
      // firewall daemons apart): it runs on, reachable by its log and metrics only.
      log.warning(
        "no control socket (sesame status and revoke cannot reach this daemon): {error}",
        { error: (e as Error).message },
      );
    }
  }

  /** Where metrics are served, when they are (the port the system chose for port 0). */
  get metricsPort(): number | undefined {
    return this.#metrics?.port;
  }

  /** Stops serving (and writing the metrics file). */
  async close(): Promise<void> {
    this.#options.clock.clearTimeout(this.#metricsFileTimer);
    this.#control?.close();
    await this.#metrics?.shutdown();
  }

  /** Answers one control request. */
  async answer(request: ControlRequest): Promise<ControlAnswer> {
    switch (request.op) {
      case "status":
        return { ok: true, ...this.status() };
      case "reload": {
        const outcome: ReloadOutcome = await (this.#options.reload?.() ??
          { ok: false, error: "this daemon cannot reload" });
        return outcome.ok
          ? { ok: true, changes: outcome.changes }
          : { ok: false, error: outcome.error, ...(outcome.applied ? { applied: true } : {}) };
      }
      case "unban":
        return this.unban(request.ip);
      default:
        return this.revoke(request);
    }
  }

  /** Lifts a scanner's bans (`sesame unban --ip`). */
  unban(ip: string): ControlAnswer {
    const address = parseAddress(ip);
    if (!address) return { ok: false, error: `not an IP address: ${JSON.stringify(ip)}` };
    const lifted = this.#options.intake().unban(address.text);
    if (lifted === 0) {
      return { ok: false, error: `${address.text} is not banned`, nothing: true };
    }
    log.info("unbanned {source} by request", { source: address.text });
    return { ok: true, source: address.text, lifted };
  }

  /** The Prometheus exposition of the daemon's counters now. */
  metrics(): string {
    const { opener, counters, clock } = this.#options;
    const intake = this.#options.intake();
    const openNow = new Map<string, number>();
    for (const r of opener.records()) openNow.set(r.door, (openNow.get(r.door) ?? 0) + 1);
    return renderMetrics({
      counters,
      doors: this.#options.config().doors.map((d) => d.name),
      openNow,
      trackedSources: intake.trackedSources,
      bannedNow: intake.bans(clock.now()).length,
      memory: Deno.memoryUsage(),
      ...(this.#options.fleet
        ? { fleet: { connected: this.#options.fleet.status().connected } }
        : {}),
    });
  }

  #intakeStatus(): NonNullable<DaemonStatus["intake"]> {
    const capture = this.#options.config().capture;
    if (capture.kind === "sockets") return { kind: "sockets" };
    const { counters } = this.#options;
    return {
      kind: "nflog",
      group: capture.group,
      captured: counters.captured,
      logged: counters.captureLogged,
      restarts: counters.captureRestarts,
    };
  }

  /** What the daemon tells `sesame status`. */
  status(): DaemonStatus {
    const { clock, opener } = this.#options;
    const now = clock.now();
    return {
      pid: Deno.pid,
      started_at: new Date(this.#startedAt).toISOString(),
      uptime_s: Math.round((now - this.#startedAt) / 1000),
      config: this.#options.configFile ?? null,
      open: opener.records(),
      bans: this.#options.intake().bans(now).map((b) => ({
        ...b,
        until: new Date(b.until).toISOString(),
      })),
      intake: this.#intakeStatus(),
      ...(this.#options.fleet ? { fleet: this.#options.fleet.status() } : {}),
    };
  }

  /**
   * Closes now the doors open on `door` for `ip` or for `user` (`sesame revoke`): see
   * {@link revokeDoors}.
   */
  revoke(request: RevokeRequest): Promise<ControlAnswer> {
    const { config, opener, fleet, runner } = this.#options;
    return revokeDoors({ doors: config().doors, opener, fleet, runner }, request);
  }
}
