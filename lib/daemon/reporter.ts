/**
 * Where every decision and door event ends: counted in the metrics, written as one log
 * line (failure lines through their limiter), and handed to the `onEvent` watcher (tests,
 * the demo). Once a minute it says how many failure lines the limiter dropped.
 * @module
 */
import type { Door } from "../config/types.ts";
import type { Counters } from "../counters.ts";
import { logger } from "../log.ts";
import { type DaemonEvent, isRefusal, logLine } from "./report.ts";
import { RefusalLog } from "./refusal_log.ts";
import { blamesClient } from "../engine/decision.ts";

const log = logger("daemon");
/** Failure lines (what fail2ban reads): limited by {@link RefusalLog}, not by LogTape. */
const refusalLog = logger("refusal");

/** Options for {@link Reporter}. */
export interface ReporterOptions {
  /** Where refusals are counted. */
  readonly counters: Counters;
  /** The wall clock (the failure lines' budgets). */
  readonly now: () => number;
  /** The door of a name, in the config in force (`open.log`, the skew line's period). */
  readonly doorNamed: (name: string) => Door | undefined;
  /** Called for every event. @default nothing */
  readonly onEvent?: (event: DaemonEvent) => void;
}

/**
 * Reports what happened.
 *
 * @example A refusal is counted and handed on
 * ```ts
 * import { Reporter } from "./reporter.ts";
 * import { Counters } from "../counters.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const counters = new Counters();
 * const seen: string[] = [];
 * const reporter = new Reporter({
 *   counters,
 *   now: () => 0,
 *   doorNamed: () => undefined,
 *   onEvent: (e) => seen.push(e.kind),
 * });
 * reporter.report({ kind: "refused", door: "ssh", source: "192.0.2.7", reason: "wrong", evidence: "tcp" });
 * assertEquals(seen, ["refused"]);
 * assertEquals(counters.door("ssh").refusals.get("wrong"), 1);
 * ```
 */
export class Reporter {
  readonly #options: ReporterOptions;
  /** Which failure lines are written. */
  readonly #refusals = new RefusalLog();
  /** When the last summary of dropped failure lines was made, ms. */
  #lastSummary: number;

  /** @param options the counters, the clock, the doors and the watcher. */
  constructor(options: ReporterOptions) {
    this.#options = options;
    this.#lastSummary = options.now();
  }

  /** Counts, logs and hands on one event. */
  report(event: DaemonEvent): void {
    const { counters, doorNamed, now } = this.#options;
    if (isRefusal(event)) {
      counters.refused(event.door, event.kind === "refused" ? event.reason : event.kind);
      // Failure lines: one per source and door a minute, 100 a second in all.
      const reason = event.kind === "refused" ? event.reason : event.kind;
      const blames = blamesClient(reason, event.evidence);
      if (this.#refusals.admit(event.door, event.source, now(), event.evidence, blames)) {
        const line = logLine(event, doorNamed)!;
        refusalLog.info(line.message, line.properties);
      }
      return this.#emit(event);
    }
    if (event.kind === "fleet-refused") counters.refused(event.door, `fleet-${event.reason}`);
    const line = logLine(event, doorNamed);
    // `open.log: false` silences a door's routine lines (opened, extended, closed), not its failures.
    const quiet = line?.level === "info" && "door" in event &&
      doorNamed(event.door)?.open?.log === false;
    if (line && !quiet) {
      log[line.level === "warning" ? "warn" : line.level](line.message, line.properties);
    }
    this.#emit(event);
  }

  /** Once a minute (called from the daemon's tick): how many failure lines were dropped. */
  summarize(): void {
    const now = this.#options.now();
    if (now - this.#lastSummary < 60_000 && now >= this.#lastSummary) return;
    this.#lastSummary = now;
    const dropped = this.#refusals.takeDropped();
    if (dropped > 0) {
      refusalLog.warn(
        "{dropped} failure lines were not written in the last minute (more than 100 a second); the metrics count every failure",
        { dropped },
      );
    }
  }

  #emit(event: DaemonEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (e) {
      log.error("event handler failed: {error}", { error: String(e) });
    }
  }
}
