/**
 * Prometheus metrics: the daemon's counters in the text exposition format (version
 * 0.0.4), served at `/metrics` on `listen.metrics`. No client library: the npm ones are
 * built around Node's http and a global registry, and the format is a few lines. Labels
 * take bounded values only (doors and users from the config, fixed reason tokens), never
 * a source address.
 * @module
 */
import type { Counters, Histogram } from "../counters.ts";
import type { RefusalReason } from "../engine/engine.ts";

/** Every refusal reason, so each door's series exist from the start (at 0). */
export const REASONS: readonly RefusalReason[] = [
  "wrong",
  "timeout",
  "order",
  "replay",
  "skew",
  "banned",
  "denied",
];

/** What the exposition reads besides the counters. */
export interface MetricsView {
  /** The daemon's counters. */
  readonly counters: Counters;
  /** Door names in config order (each gets its series, even at 0). */
  readonly doors: readonly string[];
  /** Open doors now, per door. */
  readonly openNow: ReadonlyMap<string, number>;
  /** Sources tracked now. */
  readonly trackedSources: number;
  /** Scanners banned now. */
  readonly bannedNow: number;
  /** The process's memory now (Deno.memoryUsage()), when known. */
  readonly memory?: { readonly rss: number; readonly heapUsed: number };
  /** With a cluster: whether this gateway watches etcd now. */
  readonly fleet?: { readonly connected: boolean };
}

/**
 * The text exposition of `view`.
 *
 * @example
 * ```ts
 * import { renderMetrics } from "./metrics.ts";
 * import { Counters } from "../counters.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const counters = new Counters();
 * counters.door("ssh").opens++;
 * const text = renderMetrics({ counters, doors: ["ssh"], openNow: new Map(), trackedSources: 0, bannedNow: 0 });
 * assertEquals(text.includes('sesame_opens_total{door="ssh"} 1'), true);
 * ```
 */
export function renderMetrics(view: MetricsView): string {
  const { counters: c } = view;
  const out: string[] = [];
  const family = (name: string, type: string, help: string, samples: string[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples);
  };
  const doors = [...new Set([...view.doors, ...c.doors.keys()])];
  family("sesame_knocks_total", "counter", "Knocks heard on the knock ports, by protocol.", [
    `sesame_knocks_total{protocol="tcp"} ${c.knocks - c.udpKnocks}`,
    `sesame_knocks_total{protocol="udp"} ${c.udpKnocks}`,
  ]);
  family(
    "sesame_opens_total",
    "counter",
    "Doors opened (fresh openings, not extensions), by door and, on doors with users, user.",
    doors.flatMap((d) => {
      const counts = c.doors.get(d);
      const byUser = counts?.userOpens;
      if (byUser && byUser.size > 0) {
        return [...byUser].map(([user, n]) =>
          `sesame_opens_total{door=${q(d)},user=${q(user)}} ${n}`
        );
      }
      return [`sesame_opens_total{door=${q(d)}} ${counts?.opens ?? 0}`];
    }),
  );
  family(
    "sesame_open_decisions_total",
    "counter",
    "Opens decided (completed codes and SPA packets that asked for a door): each becomes an open, an extension, or a counted failure.",
    [`sesame_open_decisions_total ${c.openDecisions}`],
  );
  family(
    "sesame_closes_total",
    "counter",
    "Doors closed (at their time or revoked), by door.",
    doors.map((d) => `sesame_closes_total{door=${q(d)}} ${c.doors.get(d)?.closes ?? 0}`),
  );
  family(
    "sesame_refusals_total",
    "counter",
    "Failed knocks and attempts, by door and reason (wrong, timeout, order, replay, skew, banned, denied).",
    doors.flatMap((d) =>
      REASONS.map((r) =>
        `sesame_refusals_total{door=${q(d)},reason=${q(r)}} ${c.doors.get(d)?.refusals.get(r) ?? 0}`
      )
    ),
  );
  family("sesame_open_doors", "gauge", "Doors open now, by door.", [
    ...doors.map((d) => `sesame_open_doors{door=${q(d)}} ${view.openNow.get(d) ?? 0}`),
  ]);
  family(
    "sesame_spa_dropped_total",
    "counter",
    "SPA packets dropped by a limit: budget (more than 20 000 a second in all, dropped unverified), source (authentic, more than 5 a second from one source).",
    [
      `sesame_spa_dropped_total{limit="budget"} ${c.spaOverBudget}`,
      `sesame_spa_dropped_total{limit="source"} ${c.spaOverSource}`,
    ],
  );
  family(
    "sesame_metrics_refused_total",
    "counter",
    "Connections to this endpoint closed unserved: more than 32 at once, or a failed accept.",
    [`sesame_metrics_refused_total ${c.metricsRefused}`],
  );
  family("sesame_scanners_banned_total", "counter", "Sources found scanning and banned.", [
    `sesame_scanners_banned_total ${c.scanners}`,
  ]);
  family("sesame_banned_sources", "gauge", "Scanners banned now.", [
    `sesame_banned_sources ${view.bannedNow}`,
  ]);
  family(
    "sesame_tracked_sources",
    "gauge",
    "Sources with state now: part way through a sequence, or seen within the sequence timeout.",
    [
      `sesame_tracked_sources ${view.trackedSources}`,
    ],
  );
  family(
    "sesame_capture_packets_total",
    "counter",
    "Capture intake (listen.capture: nflog): knocks the reader parsed from the NFLOG group.",
    [`sesame_capture_packets_total ${c.captured}`],
  );
  family(
    "sesame_capture_logged_total",
    "counter",
    "Capture intake: packets the kernel's capture rules handed to the NFLOG group (read every 5 s); minus sesame_capture_packets_total, what the reader lost.",
    [`sesame_capture_logged_total ${c.captureLogged}`],
  );
  family(
    "sesame_capture_skipped_total",
    "counter",
    "Capture intake: records the reader could not read as a knock.",
    [`sesame_capture_skipped_total ${c.captureSkipped}`],
  );
  family(
    "sesame_capture_restarts_total",
    "counter",
    "Capture intake: times the reader (tcpdump) was started again after it stopped.",
    [`sesame_capture_restarts_total ${c.captureRestarts}`],
  );
  family(
    "sesame_duplicate_knocks_total",
    "counter",
    "Knocks heard twice within 10 s (a retransmitted SYN, a browser's second connection): ignored.",
    [`sesame_duplicate_knocks_total ${c.duplicates}`],
  );
  family("sesame_accept_errors_total", "counter", "Accept and receive calls that failed.", [
    `sesame_accept_errors_total ${c.acceptErrors}`,
  ]);
  family(
    "sesame_action_failures_total",
    "counter",
    "Failures of what opens and closes doors: open actions, close actions (retried), state commits (the door stayed shut).",
    [
      `sesame_action_failures_total{action="open"} ${c.openFailures}`,
      `sesame_action_failures_total{action="close"} ${c.closeFailures}`,
      `sesame_action_failures_total{action="commit"} ${c.commitFailures}`,
    ],
  );
  if (view.memory) {
    family(
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory of the daemon (RSS).",
      [`process_resident_memory_bytes ${view.memory.rss}`],
    );
    family(
      "sesame_heap_used_bytes",
      "gauge",
      "JavaScript heap in use now (garbage not yet collected included).",
      [
        `sesame_heap_used_bytes ${view.memory.heapUsed}`,
      ],
    );
  }
  const histogram = (name: string, help: string, h: Histogram) => {
    let cumulative = 0;
    const buckets = h.bounds.map((bound, i) => {
      cumulative += h.counts[i];
      return `${name}_bucket{le=${q(String(bound))}} ${cumulative}`;
    });
    family(name, "histogram", help, [
      ...buckets,
      `${name}_bucket{le="+Inf"} ${h.count}`,
      `${name}_sum ${h.sum}`,
      `${name}_count ${h.count}`,
    ]);
  };
  histogram(
    "sesame_open_latency_seconds",
    "From a sequence's last knock to its door open (state committed, firewall and command done).",
    c.openLatency,
  );
  family(
    "sesame_firewall_repairs_total",
    "counter",
    "Times sesame's rules were put back after another program removed or changed them.",
    [`sesame_firewall_repairs_total ${c.firewallRepairs}`],
  );
  histogram(
    "sesame_firewall_repair_seconds",
    "How long a repair took, from its check to sesame's rules standing again (the watch adds up to 10 ms of gathering before it).",
    c.repairTime,
  );
  histogram(
    "sesame_knock_reorder_seconds",
    "How long a knock that reached the daemon before the knocks ahead of it in its sequence waited for them (the disorder reorder_window must cover).",
    c.reorderWait,
  );
  if (view.fleet) {
    family(
      "sesame_fleet_connected",
      "gauge",
      "1 while this gateway watches the fleet's shared doors in etcd, 0 while it cannot reach it.",
      [`sesame_fleet_connected ${view.fleet.connected ? 1 : 0}`],
    );
    family(
      "sesame_fleet_refusals_total",
      "counter",
      "Opens the fleet refused, by door and reason (used-elsewhere: the code was used on a gateway; unavailable: no etcd quorum answered).",
      doors.flatMap((d) =>
        ["used-elsewhere", "unavailable"].map((r) =>
          `sesame_fleet_refusals_total{door=${q(d)},reason=${q(r)}} ${
            c.doors.get(d)?.refusals.get(`fleet-${r}`) ?? 0
          }`
        )
      ),
    );
  }
  return out.join("\n") + "\n";
}

/** A label value, quoted and escaped. */
function q(value: string): string {
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
}
