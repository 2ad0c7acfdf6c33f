/**
 * Binding the knock listeners to what the config wants (the pure half is binding.ts):
 * preflight checks and warnings, the IPv4 fallback, one warning per door that lost
 * ports, ports that could not be bound tried again (1 s, 2 s, 4 s … a minute apart) until
 * they are, and the start-up summary once knocks are acted on.
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { Config } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import type { BindFailure, Endpoint, Listeners } from "../net/listeners.ts";
import { doorWeakness, weaknessWarning } from "../weakness.ts";
import { doorBindFailures, shouldFallBackToIPv4, wantedEndpoints } from "./binding.ts";
import { checkDescriptors, checkEphemeral, gatewayWarnings, socketsNeeded } from "./preflight.ts";
import type { DaemonEvent } from "./report.ts";

const log = logger("daemon");

/** What a bind did. */
export interface Bound {
  /** The endpoints wanted (after the IPv4 fallback). */
  readonly endpoints: readonly Endpoint[];
  /** Those that could not be bound. */
  readonly failures: readonly BindFailure[];
  /** The addresses listened on (after the IPv4 fallback). */
  readonly addresses: readonly string[];
}

/**
 * Binds a config's pools on the listeners.
 *
 * @example
 * ```ts
 * import { Binder } from "./binder.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { MemoryListeners } from "../testing/mod.ts";
 * import { systemClock } from "../clock.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000, 8000], decoys: 0, open: { for: "5s" } } } });
 * const listeners = new MemoryListeners({ knock() {}, packet() {} });
 * const bound = await new Binder(listeners, () => {}, systemClock).bind(config);
 * assertEquals(bound.failures.length, 0);
 * assertEquals(listeners.size, 2 * config.addresses.length);
 * ```
 */
export class Binder {
  readonly #listeners: Listeners;
  readonly #report: (event: DaemonEvent) => void;
  readonly #clock: Clock;
  /** The next try of the ports that could not be bound, and the wait after it. */
  #retry: Timer | undefined;
  #retryWait = 1000;

  /**
   * @param listeners what binds. @param report where `ready` goes.
   * @param clock the wall clock (the next rotation, in the summary) and the retries' timer.
   */
  constructor(listeners: Listeners, report: (event: DaemonEvent) => void, clock: Clock) {
    this.#listeners = listeners;
    this.#report = report;
    this.#clock = clock;
  }

  /** Stops trying the ports that could not be bound (a stop, or before a new bind). */
  stop(): void {
    this.#clock.clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  /**
   * Binds what `config` wants and releases the rest; ports that stay keep listening.
   * @throws {ConfigError} when too few file descriptors are allowed, or no port could be bound.
   */
  async bind(config: Config, retryWhenNone = false): Promise<Bound> {
    this.stop(); // the ports an earlier config could not bind are no longer wanted
    let addresses = config.addresses;
    let endpoints = wantedEndpoints(config.doors, addresses);
    await checkDescriptors(socketsNeeded(config));
    await checkEphemeral(config.doors);
    for (const warning of await gatewayWarnings(config.doors)) {
      log.warning("{warning}", { warning });
    }
    let failures = this.#listeners.update(endpoints);
    if (shouldFallBackToIPv4(endpoints, failures)) {
      log.warning("cannot listen on [::] (IPv6 off?): listening on 0.0.0.0 instead");
      addresses = addresses.map((a) => a === "::" ? "0.0.0.0" : a);
      endpoints = wantedEndpoints(config.doors, addresses);
      failures = this.#listeners.update(endpoints);
    }
    for (const f of doorBindFailures(config.doors, failures)) {
      log.warning(
        "door {door}: {count} of its ports could not be bound ({reasons}): {sample}. Knocks there go unheard; a rotating door whose code lands on one cannot open that period",
        { ...f },
      );
    }
    if (this.#listeners.size === 0) {
      // A reload in force without a port keeps trying the new ports (a start fails).
      if (retryWhenNone && failures.length > 0) this.#tryAgain(endpoints, failures.length);
      throw new ConfigError([{ path: "listen", message: "no knock port could be bound" }]);
    }
    this.stop();
    this.#retryWait = 1000;
    if (failures.length > 0) this.#tryAgain(endpoints, failures.length);
    return { endpoints, failures, addresses };
  }

  /**
   * Binds again what could not be bound (another program held the ports: a squatter, or
   * a slow-exiting old instance), a second, then 2, 4 … at most 60 s apart, until all are.
   */
  #tryAgain(endpoints: readonly Endpoint[], missing: number): void {
    this.#retry = this.#clock.setTimeout(() => {
      const failures = this.#listeners.update(endpoints);
      if (failures.length < missing) {
        log.info("bound {count} knock ports that could not be bound before; {left} still cannot", {
          count: missing - failures.length,
          left: failures.length,
        });
      }
      if (failures.length === 0) return void (this.#retry = undefined);
      this.#retryWait = Math.min(60_000, this.#retryWait * 2);
      this.#tryAgain(endpoints, failures.length);
    }, this.#retryWait);
  }

  /** The start-up summary, once the daemon acts on knocks (after start and each reload). */
  announce(config: Config, { endpoints, failures }: Bound): void {
    const bound = this.#listeners.size;
    const tcp = endpoints.filter((e) => e.protocol === "tcp").length;
    if (config.capture.kind === "nflog") {
      log.info(
        "listening on NFLOG group {group} for knocks on {ports} ports ({tcp} TCP, {udp} UDP), nothing bound, for {doors} doors",
        {
          ports: bound,
          tcp,
          udp: endpoints.length - tcp,
          group: config.capture.group,
          doors: config.doors.map((d) => d.name).join(", "),
        },
      );
    } else {
      log.info(
        "listening on {bound} sockets ({tcp} TCP, {udp} UDP) on {addresses} for {doors} doors",
        {
          bound,
          tcp,
          udp: endpoints.length - tcp,
          addresses: config.addresses.join(", "),
          doors: config.doors.map((d) => d.name).join(", "),
        },
      );
    }
    for (const warning of config.warnings ?? []) log.warning("{warning}", { warning });
    for (const door of config.doors) {
      const weak = weaknessWarning(doorWeakness(door, config.reorderWindowMs));
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
          left: formatDuration(door.periodMs - (this.#clock.now() % door.periodMs)),
        },
      );
    }
    this.#report({ kind: "ready", endpoints: bound, failures });
  }
}
