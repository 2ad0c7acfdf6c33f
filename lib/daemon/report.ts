/**
 * From what happened to what is said: every decision and door event becomes one log line
 * (message and properties, from one table) and one {@link DaemonEvent} for tests and the
 * demo. The messages and property names are frozen by tests/golden_test.ts: status,
 * metrics and log filters depend on them.
 * @module
 */
import type { LogLevel } from "@logtape/logtape";
import type { Door } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import type { Decision } from "../engine/engine.ts";
import type { BindFailure } from "../net/listeners.ts";

/** Something that happened to a door. */
export type DoorEvent =
  | {
    readonly kind: "opened" | "extended" | "closed";
    /** The door's name. */
    readonly door: string;
    readonly source: string;
    /** On a door with `users`: whose code opened it. */
    readonly user?: string;
    /** When the door closes (closes), ms. */
    readonly until: number;
    /** A close asked for by `sesame revoke` (or a user removed from the config). */
    readonly revoked?: true;
    /** An open whose command a start ran: sesame had stopped before it was known to have run. */
    readonly recovered?: true;
  }
  | {
    readonly kind: "open-failed" | "close-failed";
    readonly door: string;
    readonly source: string;
    readonly until: number;
    /** What failed. */
    readonly error: string;
  }
  | {
    /**
     * The fleet refused an open (etcd: the code was used on a node, or no quorum answered).
     * Not a failure line: fail2ban never reads it (an outage, or a race of two gateways,
     * is not the knocker's doing).
     */
    readonly kind: "fleet-refused";
    readonly door: string;
    readonly source: string;
    readonly user?: string;
    readonly reason: "used-elsewhere" | "unavailable";
    readonly detail: string;
  }
  | {
    /** The store refused a batch: none of its doors opened. */
    readonly kind: "commit-failed";
    /** The doors and sources refused, as `door source`. */
    readonly refused: readonly string[];
    readonly error: string;
  };

/** Everything the daemon reports besides plain log lines: what tests and the demo watch. */
export type DaemonEvent =
  | DoorEvent
  | Exclude<Decision, { kind: "open" }>
  | {
    readonly kind: "ready";
    /** Sockets bound. */
    readonly endpoints: number;
    readonly failures: readonly BindFailure[];
  }
  | {
    /** A knock from an IPv6 link-local address: refused (an address without its link). */
    readonly kind: "link-local";
    readonly source: string;
  }
  | {
    /** Another tool removed or changed sesame's rules; they were put back. */
    readonly kind: "firewall-restored";
    readonly backend: "nft" | "iptables";
  }
  | { readonly kind: "reloaded" }
  | { readonly kind: "reload-failed"; readonly error: string };

/** One log line: its level, message template and properties. */
export interface LogLine {
  readonly level: LogLevel;
  readonly message: string;
  readonly properties: Record<string, unknown>;
}

/** The events that are failure lines (limited per source and door; fail2ban's input). */
export type RefusalEvent = Extract<DaemonEvent, { kind: "refused" | "replay" | "skew" }>;

/** True for a failure line's event. */
export function isRefusal(event: DaemonEvent): event is RefusalEvent {
  return event.kind === "refused" || event.kind === "replay" || event.kind === "skew";
}

/**
 * The fixed head of every failure line, which deploy/fail2ban's filter matches: the
 * source, the door, the reason token and the evidence (`tcp` only when every knock of the
 * attempt and its cause were completed handshakes).
 */
const FAILED = "knock failed from {source} on door {door}: reason={reason} evidence={evidence}";

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The log line of an event, or `undefined` for events that are not logged here (ready,
 * reloaded: the daemon writes richer lines for those).
 *
 * @example
 * ```ts
 * import { logLine } from "./report.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const line = logLine({ kind: "closed", door: "ssh", source: "192.0.2.7", until: 0 }, () => undefined);
 * assertEquals(line?.message, "door {door} closed for {source}");
 * ```
 */
export function logLine(
  event: DaemonEvent,
  doorNamed: (name: string) => Door | undefined,
): LogLine | undefined {
  switch (event.kind) {
    case "opened":
      return info(
        `door {door} opened for {source}{by} until {until}${
          event.recovered
            ? " (its open command had not been seen to run before sesame stopped)"
            : ""
        }`,
        event,
        { until: iso(event.until) },
      );
    case "extended":
      return info("door {door} already open for {source}{by}: extended until {until}", event, {
        until: iso(event.until),
      });
    case "closed":
      return info(
        `door {door} closed for {source}{by}${event.revoked ? ": revoked" : ""}`,
        event,
        {},
      );
    case "refused":
      return event.detail === undefined
        ? failed(event, "", {})
        : failed(event, " ({detail})", { detail: event.detail });
    case "open-failed":
      return error("door {door}: opening for {source} failed: {error}", event);
    case "close-failed":
      return error("door {door}: closing for {source} failed ({error}); retrying", event);
    case "fleet-refused":
      return {
        level: event.reason === "unavailable" ? "error" : "warning",
        message:
          (event.reason === "unavailable"
            ? "fleet: not opening door {door} for {source}{by}: no etcd quorum answered ({detail}); doors already open stay until their time"
            : "fleet: not opening door {door} for {source}{by}: its code was used already in the fleet ({detail})")
            .replace("{by}", event.user === undefined ? "" : " (user {user})"),
        properties: {
          door: event.door,
          source: event.source,
          ...(event.user === undefined ? {} : { user: event.user }),
          detail: event.detail,
        },
      };
    case "commit-failed":
      return {
        level: "error",
        message: "state not written ({error}): not opening {refused}",
        properties: { error: event.error, refused: event.refused.join(", ") },
      };
    case "scan":
      return {
        level: "warning",
        message: "{source} looks like a scanner ({reason}): ignored until {until}",
        properties: {
          source: event.source,
          reason: event.reason === "decoy"
            ? "knocked a decoy port"
            : "too many distinct knock ports",
          until: iso(event.until),
        },
      };
    case "replay":
      return failed(event, " ({by}an already used code, counter {counter}: a replay?)", {
        counter: event.counter,
      });
    case "skew": {
      const door = doorNamed(event.door);
      const periodMs = door?.kind === "rotating" ? door.periodMs : 0;
      return failed(
        event,
        " ({by}the code of {periods} period(s) {direction}: the clocks disagree by about {drift}; only ±{skew} period(s) are accepted)",
        {
          periods: Math.abs(event.periods),
          direction: event.periods > 0 ? "ahead" : "behind",
          drift: formatDuration(Math.abs(event.periods) * periodMs),
          skew: door?.kind === "rotating" ? door.skew : 0,
        },
      );
    }
    case "link-local":
      return {
        level: "warning",
        message:
          "knocks from {source} are refused: a link-local address names no link, so a door opened for it would open on every link",
        properties: { source: event.source },
      };
    case "reload-failed":
      return {
        level: "error",
        message: "reload refused, the running config stays:\n{error}",
        properties: { error: event.error },
      };
    default:
      return undefined;
  }
}

function info(
  message: string,
  event: { door: string; source: string; user?: string },
  extra: Record<string, unknown>,
): LogLine {
  return {
    level: "info",
    message: message.replace("{by}", event.user === undefined ? "" : " (user {user})"),
    properties: {
      door: event.door,
      source: event.source,
      ...(event.user === undefined ? {} : { user: event.user }),
      ...extra,
    },
  };
}

/** A failure line: the fixed head, then what is particular to the reason. */
function failed(event: RefusalEvent, tail: string, extra: Record<string, unknown>): LogLine {
  const user = "user" in event && event.user !== undefined ? event.user : undefined;
  return {
    level: "info",
    message: FAILED + tail.replace("{by}", user === undefined ? "" : "user {user}: "),
    // The order is part of the format: deploy/fail2ban's filter reads JSON lines by it.
    properties: {
      source: event.source,
      door: event.door,
      reason: event.kind === "refused" ? event.reason : event.kind,
      evidence: event.evidence,
      ...(user === undefined ? {} : { user }),
      ...extra,
    },
  };
}

function error(message: string, event: { door: string; source: string; error: string }): LogLine {
  return {
    level: "error",
    message,
    properties: { door: event.door, source: event.source, error: event.error },
  };
}
