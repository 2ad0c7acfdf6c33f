/**
 * The daemon's counters, in one place: every part that counts something increments a
 * field here, and the start-up summary, the stop line and metrics read them.
 * @module
 */

/**
 * Counters since start. Plain fields: incrementing one costs what `x++` costs.
 *
 * @example
 * ```ts
 * import { Counters } from "./counters.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const counters = new Counters();
 * counters.knocks++;
 * assertEquals(counters.knocks, 1);
 * ```
 */
export class Counters {
  /** Knocks delivered by the listeners. */
  knocks = 0;
  /** Of those, UDP datagrams. */
  udpKnocks = 0;
  /** SPA packets received. */
  spaPackets = 0;
  /** SPA packets dropped unverified: more a second than the verification budget. */
  spaOverBudget = 0;
  /** Authentic SPA packets dropped undecrypted: their source sent more than 5 a second. */
  spaOverSource = 0;
  /** Accept and receive calls that failed (reset probes of a connect scan, fd exhaustion). */
  acceptErrors = 0;
  /** Connections to the metrics endpoint closed unserved: over its cap, or a failed accept. */
  metricsRefused = 0;
  /** Knocks ignored: allow/deny lists, a scanner's cool-down. */
  ignored = 0;
  /** Knocks heard twice (a retransmitted SYN, a browser's second connection): ignored. */
  duplicates = 0;
  /** Capture intake: packets the reader parsed from the NFLOG group. */
  captured = 0;
  /** Capture intake: packets the kernel's capture rules logged (read every 5 s). */
  captureLogged = 0;
  /** Capture intake: records the reader could not read as a knock (skipped). */
  captureSkipped = 0;
  /** Capture intake: times the reader was started again after it stopped. */
  captureRestarts = 0;
  /** Sources found scanning. */
  scanners = 0;
  /** Sources evicted from the full source table. */
  evictedSources = 0;
  /** Bans dropped early because the ban table was full. */
  evictedBans = 0;
  /** Completed codes refused as already used. */
  replays = 0;
  /** Completed codes of counters outside the window (clock skew). */
  skews = 0;
  /** Opens the engine decided (each completed code or packet that asked the opener). */
  openDecisions = 0;
  /** Doors opened (fresh openings, not extensions). */
  opens = 0;
  /** Open actions that failed. */
  openFailures = 0;
  /** Doors closed. */
  closes = 0;
  /** Close actions that failed (each is retried). */
  closeFailures = 0;
  /** Store commits that failed: their doors did not open. */
  commitFailures = 0;
  /** Per door: opens, closes and refusals by reason (the metrics' labelled series). */
  readonly doors: Map<string, DoorCounts> = new Map();
  /** Last knock → door open (committed and acted on), seconds. */
  readonly openLatency: Histogram = new Histogram(LATENCY_BUCKETS_S);
  /**
   * How long a knock that arrived early (out of order) waited for the knocks before it,
   * seconds: the disorder the daemon's delivery put into sequences, what `reorder_window`
   * must cover.
   */
  readonly reorderWait: Histogram = new Histogram(LATENCY_BUCKETS_S);
  /** sesame's rules put back after another program removed or changed them. */
  firewallRepairs = 0;
  /** How long each repair took, from its check to the rules standing again, seconds. */
  readonly repairTime: Histogram = new Histogram(LATENCY_BUCKETS_S);

  /** The counts of `door`, made on first use. */
  door(door: string): DoorCounts {
    let counts = this.doors.get(door);
    if (!counts) {
      this.doors.set(
        door,
        counts = { opens: 0, closes: 0, refusals: new Map(), userOpens: new Map() },
      );
    }
    return counts;
  }

  /** Counts one refusal of `door` for `reason`. */
  refused(door: string, reason: string): void {
    const refusals = this.door(door).refusals;
    refusals.set(reason, (refusals.get(reason) ?? 0) + 1);
  }
}

/** One door's counts. */
export interface DoorCounts {
  /** Doors opened (fresh). */
  opens: number;
  /** Doors closed. */
  closes: number;
  /** Refusals by reason token. */
  readonly refusals: Map<string, number>;
  /** On a door with users: opens by user. */
  readonly userOpens: Map<string, number>;
}

/** Upper bounds of the open-latency buckets, seconds: 0.5 ms … 5 s. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  5,
];

/**
 * A cumulative histogram, as Prometheus keeps one: counts per upper bound, a sum and a count.
 *
 * @example
 * ```ts
 * import { Histogram } from "./counters.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const h = new Histogram([0.001, 0.01]);
 * h.observe(0.0005);
 * h.observe(0.005);
 * h.observe(2);
 * assertEquals([...h.counts], [1, 1, 1]); // per bucket, the last one +Inf
 * assertEquals(h.count, 3);
 * ```
 */
export class Histogram {
  /** Upper bounds, ascending. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last is above every bound. */
  readonly counts: Float64Array;
  /** Sum of the observations. */
  sum = 0;
  /** Observations. */
  count = 0;

  /**
   * Creates an empty histogram.
   * @param bounds the buckets' upper bounds, ascending.
   */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Adds one observation. */
  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}
