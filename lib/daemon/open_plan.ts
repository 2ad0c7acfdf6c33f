/**
 * The opener's first step, pure: what a batch of open requests comes to, against the doors
 * open now. No store, no firewall, no clock but the `now` it is given.
 * @module
 */
import type { Door } from "../config/types.ts";
import { substitute } from "../actions/command.ts";
import type { CommandResult } from "../actions/runner.ts";
import { openKey, type OpenRecord } from "../store/store.ts";
import type { OpenRequest } from "./opener.ts";

/** One planned opening. */
export interface Plan {
  readonly door: Door;
  readonly record: OpenRecord;
  readonly fresh: boolean;
  readonly timeoutMs: number;
  /** The earliest last knock among its requests, ms. */
  readonly at?: number;
}

/**
 * Plans a batch of requests against the doors open now: one record per (door, source); a
 * door already open (or asked twice in the batch) is extended, not opened again.
 *
 * @example
 * ```ts
 * import { planOpens } from "./open_plan.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000], open: { for: "5s" } } } });
 * const plans = planOpens([
 *   { door: doors[0], source: "192.0.2.7" },
 *   { door: doors[0], source: "192.0.2.7" },
 * ], () => undefined, 1000);
 * assertEquals(plans.map((p) => [p.record.source, p.record.until, p.fresh]), [["192.0.2.7", 6000, true]]);
 * ```
 */
export function planOpens(
  requests: readonly OpenRequest[],
  openNow: (key: string) => OpenRecord | undefined,
  now: number,
): Plan[] {
  const plans = new Map<string, Plan>();
  for (const { door, source, user, at, forMs, until: decided } of requests) {
    const open = door.open!;
    const key = openKey({ door: door.name, source });
    const until = decided ?? now + (forMs ?? open.forMs);
    const known = plans.get(key)?.record ?? openNow(key);
    if (known) {
      plans.set(key, {
        door,
        // The record follows the user who knocked last (log, status, revoke --user).
        record: {
          ...known,
          ...(user === undefined ? {} : { user }),
          until: Math.max(known.until, until),
        },
        fresh: plans.get(key)?.fresh ?? false,
        timeoutMs: open.commandTimeoutMs,
        at: plans.get(key)?.at ?? at,
      });
      continue;
    }
    const spec = open.nft ?? open.iptables;
    const record: OpenRecord = {
      door: door.name,
      source,
      ...(user === undefined ? {} : { user }),
      until,
      close: open.closeCommand ? substitute(open.closeCommand, { source, door: door.name }) : null,
      ...(spec
        ? {
          firewall: {
            kind: open.nft ? "nft" as const : "iptables" as const,
            ports: spec.ports,
            protocol: spec.protocol,
            ...(spec.sets ? { sets: spec.sets } : {}),
          },
        }
        : {}),
      // Until it is known to have run: a start after a crash runs it (the code is used up).
      ...(open.command ? { pending: substitute(open.command, { source, door: door.name }) } : {}),
    };
    plans.set(key, { door, record, fresh: true, timeoutMs: open.commandTimeoutMs, at });
  }
  return [...plans.values()];
}

/** What a failed command's result says, for a log line. */
export function describeFailure(result: CommandResult): string {
  if (result.timedOut) return "killed after its time limit";
  return `exit code ${result.code}${result.error ? `: ${result.error}` : ""}`;
}

/** The fields of a record that its door events carry. */
export function brief(record: OpenRecord) {
  return {
    door: record.door,
    source: record.source,
    ...(record.user === undefined ? {} : { user: record.user }),
    until: record.until,
  };
}

/**
 * Who hears how a batch went ({@link OpenRequest.acted}): those of `batch` refused (not in
 * `admitted`) are told now; the others are returned by door and source, to be told when
 * their plan has acted.
 */
export function whoWaits(
  batch: readonly OpenRequest[],
  admitted: readonly OpenRequest[],
): Map<string, (opened: boolean) => void> {
  const waiting = new Map<string, (opened: boolean) => void>();
  const passed = new Set(admitted.map((r) => r.acted));
  for (const { door, source, acted: listener } of batch) {
    if (!listener) continue;
    // A listener's error is its own: it must not fail the batch.
    const acted = (opened: boolean) => {
      try {
        listener(opened);
      } catch { /* ignored */ }
    };
    if (!passed.has(listener)) {
      acted(false);
      continue;
    }
    const key = openKey({ door: door.name, source });
    const before = waiting.get(key);
    waiting.set(key, before ? (opened) => (before(opened), acted(opened)) : acted);
  }
  return waiting;
}
