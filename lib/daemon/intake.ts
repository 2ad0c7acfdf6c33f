/**
 * The intake: where every knock and SPA packet an intake hears (the socket listeners, and
 * later others) is judged. It owns the knock engine, the derivations and the SPA gate, and
 * hands each outcome down: an open to the opener, anything else to the reporter. Nothing
 * here calls back up into the daemon.
 * @module
 */
import type { Clock } from "../clock.ts";
import { type Config, type Door, spaDoors, userDoors } from "../config/types.ts";
import type { Counters } from "../counters.ts";
import { type Decision, KnockEngine } from "../engine/engine.ts";
import type { UsedCodes } from "../engine/used_codes.ts";
import type { HeardKnock, HeardPacket } from "../knock.ts";
import { logger } from "../log.ts";
import type { KnockSink } from "../net/listeners.ts";
import { PACKETS_PER_SECOND, SpaGate } from "../spa/gate.ts";
import type { SpaDigest, Store } from "../store/store.ts";
import type { Opener } from "./opener.ts";
import type { Reporter } from "./reporter.ts";
import { Sequences } from "./sequences.ts";

const log = logger("daemon");
/** Per-knock debug lines: a category of their own, never rate-limited (debugging only). */
const knockLog = logger("knock");

/** What the intake keeps of SPA packets across starts and reloads. */
export interface SpaMemory {
  /** Packets used lately (never taken again). */
  readonly used: readonly SpaDigest[];
  /** The highest time seen, ms. */
  readonly maxTime: number;
  /** Packets made before this are refused (after a lost state), ms. */
  readonly refuseBefore: number;
}

/** Options for {@link Intake}. */
export interface IntakeOptions {
  /** The config in force. */
  readonly config: Config;
  /** The used codes (shared with the store's recovery). */
  readonly used: UsedCodes;
  /** Where knocks and refusals are counted. */
  readonly counters: Counters;
  /** Where opens go. */
  readonly opener: Opener;
  /** Where everything else goes. */
  readonly reporter: Reporter;
  /** Where an SPA packet refused after its HMAC is used up. */
  readonly store: Store;
  /** The wall clock. */
  readonly clock: Clock;
  /** The SPA packets remembered. */
  readonly spa: SpaMemory;
}

/**
 * Judges what is heard. Until {@link arm} it hears and drops: the firewall is not in place.
 *
 * @example
 * ```ts
 * import { Intake } from "./intake.ts";
 * import { Opener } from "./opener.ts";
 * import { Reporter } from "./reporter.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { Counters } from "../counters.ts";
 * import { UsedCodes } from "../engine/used_codes.ts";
 * import { MemoryStore } from "../store/store.ts";
 * import { DryRunFirewall, ManualClock, RecordingRunner } from "../testing/mod.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const config = validateConfig({ doors: { legacy: { sequence: [7000, 8000], open: { for: "5s" } } } });
 * const clock = new ManualClock(1_000_000), counters = new Counters(), store = new MemoryStore();
 * const reporter = new Reporter({ counters, now: clock.now, doorNamed: () => undefined });
 * const opener = new Opener({
 *   store, clock, counters, report: (e) => reporter.report(e), runner: new RecordingRunner(),
 *   firewalls: { nft: new DryRunFirewall(), iptables: new DryRunFirewall() },
 * });
 * const intake = new Intake({
 *   config, used: new UsedCodes(), counters, opener, reporter, store, clock,
 *   spa: { used: [], maxTime: 0, refuseBefore: 0 },
 * });
 * intake.arm();
 * intake.knock({ source: "192.0.2.7", protocol: "tcp", port: 7000, at: clock.now(), proof: "handshake" });
 * intake.knock({ source: "192.0.2.7", protocol: "tcp", port: 8000, at: clock.now(), proof: "handshake" });
 * await opener.settled();
 * assertEquals(opener.records().map((r) => r.source), ["192.0.2.7"]);
 * opener.cancelTimers();
 * ```
 */
export class Intake implements KnockSink {
  readonly #options: IntakeOptions;
  #doors: Map<string, Door>;
  #engine: KnockEngine;
  #sequences: Sequences;
  #spa: SpaGate;
  /** False until the firewall is in place: what is heard before is dropped. */
  #armed = false;
  /** The capture intake hears the knocks: every one is forgeable. */
  #forgeable = false;
  /** Link-local sources already reported. */
  readonly #linkLocalSeen = new Set<string>();
  /** Per-knock debug lines cost nothing unless enabled: checked once. */
  readonly #debug = knockLog.isEnabledFor("debug");
  /** When SPA digests were last pruned (and drops summed up), ms. */
  #lastPrune: number;
  /** The SPA drop counts the last summary reached. */
  #spaDropsLogged = { budget: 0, source: 0 };

  /** @param options the config, state, clock and where outcomes go. */
  constructor(options: IntakeOptions) {
    this.#options = options;
    const { config, spa } = options;
    [this.#doors, this.#engine, this.#sequences, this.#spa] = this.#build(
      config,
      spa.used,
      spa.maxTime,
    );
    this.#lastPrune = options.clock.now();
  }

  /** The parts that follow a config: the doors by name, the engine, its derivations, the gate. */
  #build(config: Config, spaUsed: readonly SpaDigest[], maxTime: number) {
    const engine = this.#newEngine(config);
    const gate = new SpaGate(
      spaDoors(config.doors),
      spaUsed,
      maxTime,
      this.#options.spa.refuseBefore,
      config,
    );
    const doors = new Map(config.doors.map((d) => [d.name, d]));
    return [doors, engine, new Sequences(engine), gate] as const;
  }

  /** From now on, what is heard is acted on (the firewall is in place). */
  arm(): void {
    this.#armed = true;
  }

  /** Sources tracked now. */
  get trackedSources(): number {
    return this.#engine.trackedSources;
  }

  /** The scanners banned at `now`. */
  bans(now: number): { source: string; evidence: string; until: number }[] {
    return this.#engine.bans(now);
  }

  /** Lifts a scanner's bans (`sesame unban`); returns how many it had. */
  unban(source: string): number {
    return this.#engine.unban(source);
  }

  /**
   * A new config (a reload): a new engine and new derivations; used codes and used SPA
   * packets carry over, so a reload never revives one. Progress in flight starts afresh.
   */
  replace(config: Config): void {
    const now = this.#options.clock.now();
    // Scanners stay banned across a reload (a reload must not be a way out of a ban).
    const bans = this.#engine.bans(now);
    [this.#doors, this.#engine, this.#sequences, this.#spa] = this.#build(
      config,
      this.#spa.usedDigests(),
      Math.max(this.#spa.maxTime, now),
    );
    this.#engine.restoreBans(bans);
    this.#sequences.refresh(now);
  }

  /**
   * Time passing (the daemon's tick): progress that timed out is reported, the window's
   * codes are derived, and once a minute old SPA digests are forgotten.
   */
  tick(now: number): void {
    const timeouts = this.#engine.sweep(now);
    if (timeouts.length > 0) this.#decide(timeouts);
    this.#sequences.refresh(now);
    if (now - this.#lastPrune >= 60_000 || now < this.#lastPrune) {
      this.#lastPrune = now;
      this.#summarizeSpaDrops();
      // SPA digests older than any packet still taken: forgotten, here and in the store.
      if (this.#spa.prune() > 0) {
        this.#options.store.commit({ pruneSpaBefore: this.#spa.horizon, now }).catch(() => {});
      }
    }
  }

  /** One knock: derive what it needs → the engine → an open, or a report. */
  knock(knock: HeardKnock): void {
    const { source, protocol, port, at } = knock;
    if (this.#debug) {
      knockLog.debug("knock from {source} on {port}/{protocol}", { source, port, protocol });
    }
    if (!this.#armed) return; // the firewall is not in place yet: a door could not open
    if ((source.charCodeAt(0) | 32) === 102 /* f or F */ && isLinkLocal(source)) {
      return this.#refuseLinkLocal(source);
    }
    try {
      this.#sequences.ensure(knock);
    } catch (e) {
      // A knock whose derivation failed cannot count: dropped, and said.
      log.error("cannot derive a sequence: {error}", { error: String(e) });
      return;
    }
    const decisions = this.#engine.handle(source, protocol, port, at);
    if (decisions.length > 0) this.#decide(decisions, at);
  }

  /**
   * One SPA packet: the gate (rate limit, HMAC, checks) → an open, or a failure line. An
   * authentic packet refused for another reason is used up in the store too.
   */
  packet({ source, port, payload, at }: HeardPacket): void {
    if (!this.#armed) return;
    if ((source.charCodeAt(0) | 32) === 102 && isLinkLocal(source)) {
      return this.#refuseLinkLocal(source);
    }
    const { counters, opener, reporter, store, clock } = this.#options;
    const d = this.#spa.handle(source, port, payload, at);
    if (d.kind === "open") {
      const door = this.#doors.get(d.door)!;
      opener.request({
        door,
        source: d.target,
        at,
        forMs: d.forMs,
        spa: { digest: d.digest, seen: d.seen },
      });
      return;
    }
    if (d.reason === "limited") {
      if (d.limit === "budget") counters.spaOverBudget++;
      else counters.spaOverSource++;
      return; // counted, and summed up in the log each minute (tick)
    }
    // A datagram's source can be forged: SPA refusals are never TCP evidence.
    reporter.report({
      kind: "refused",
      door: d.door ?? `spa-${port}`,
      source,
      reason: d.reason,
      evidence: "udp",
      detail: d.detail,
    });
    if (d.digest !== undefined && d.seen !== undefined) {
      store.commit({ spa: [{ digest: d.digest, seen: d.seen }], now: clock.now() }).catch(
        (e) => log.error("state not written ({error}): an SPA packet's use", { error: String(e) }),
      );
    }
  }

  /** The minute's SPA packets dropped by a limit, in one line (the metrics count each). */
  #summarizeSpaDrops(): void {
    const { counters } = this.#options;
    const budget = counters.spaOverBudget - this.#spaDropsLogged.budget;
    const source = counters.spaOverSource - this.#spaDropsLogged.source;
    this.#spaDropsLogged = { budget: counters.spaOverBudget, source: counters.spaOverSource };
    if (budget + source === 0) return;
    log.warning(
      "SPA: in the last minute {budget} packets were dropped unverified (more than {perSecond} a second in all: a flood?) and {source} authentic packets undecrypted (more than 5 a second from one source)",
      { budget, source, perSecond: PACKETS_PER_SECOND },
    );
  }

  #decide(decisions: readonly Decision[], at?: number): void {
    const { opener, reporter } = this.#options;
    for (const d of decisions) {
      if (d.kind === "open") {
        opener.request({
          door: this.#doors.get(d.door)!,
          source: d.source,
          code: d.code,
          user: d.user,
          at,
        });
      } else if (this.#forgeable && "evidence" in d && d.evidence !== "none") {
        // Captured knocks prove nothing about their source: their own token, never blamed.
        reporter.report({ ...d, evidence: "capture" } as typeof d);
      } else reporter.report(d);
    }
  }

  /**
   * A socket address carries no scope: an element for fe80::1 would open the door to
   * that address on every link. Refused, logged once per source (a bounded memory).
   */
  #refuseLinkLocal(source: string): void {
    this.#options.counters.ignored++;
    if (this.#linkLocalSeen.has(source)) return;
    if (this.#linkLocalSeen.size >= 1024) this.#linkLocalSeen.clear();
    this.#linkLocalSeen.add(source);
    this.#options.reporter.report({ kind: "link-local", source });
  }

  #newEngine(config: Config): KnockEngine {
    this.#forgeable = config.capture.kind === "nflog";
    return new KnockEngine(userDoors(config.doors).filter((d) => d.kind !== "spa"), {
      forgeable: this.#forgeable,
      maxSources: config.maxSources,
      reorderWindowMs: config.reorderWindowMs,
      scan: config.scan,
      allow: config.allow,
      deny: config.deny,
      used: this.#options.used,
      counters: this.#options.counters,
    });
  }
}

/** True for an IPv6 link-local address (fe80::/10), as sockets report it (no scope). */
function isLinkLocal(source: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(source);
}
