/**
 * What the engine decides after a knock, as data: an open, a refusal with its reason and
 * evidence, a scanner's ban, a code from a skewed clock, a replay. The daemon acts on
 * these and reports them; nothing here does I/O.
 * @module
 */
import type { RotatingDoor } from "../config/types.ts";
import type { Counters } from "../counters.ts";
import type { Evidence } from "./scan_detector.ts";
import { codeOwner, type UsedCode, type UsedCodes } from "./used_codes.ts";

/**
 * Why a source's knocking on a door did not open it (the log's and the metrics' tokens).
 * The client's doing: `wrong` (a knock that fits no code), `replay`, `banned` (a scanner
 * still knocking), `denied` (not on the allow list), `skew` (its clock). Not proven to be:
 * `timeout` (an attempt left unfinished: the client gave up, or knocks were lost on the
 * way) and `order` (an early knock whose gap did not fill within `reorder_window`: how the
 * knocks were delivered). See {@link blamesClient}.
 */
export type RefusalReason =
  | "wrong"
  | "timeout"
  | "order"
  | "replay"
  | "skew"
  | "banned"
  | "denied";

/**
 * What a failure line rests on: `tcp` when every knock of the attempt and its cause were
 * completed TCP handshakes (the source is real), `udp` when a datagram (forgeable) was
 * among them, `none` when the loss was of the daemon's or the delivery's making (nothing
 * the client did).
 */
export type RefusalEvidence = Evidence | "none" | "capture";

/**
 * The one rule for which failures count against a client (what deploy/fail2ban matches):
 * a wrong code, a replay, or a banned scanner's knock, resting on TCP evidence. Everything
 * else (forgeable UDP, a timeout, the delivery's order, a skewed clock, the allow list) is
 * logged and counted but never blames the source.
 *
 * @example
 * ```ts
 * import { blamesClient } from "./decision.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(blamesClient("wrong", "tcp"), true);
 * assertEquals(blamesClient("wrong", "udp"), false); // a datagram's source can be forged
 * assertEquals(blamesClient("order", "none"), false); // the daemon delivered it late
 * assertEquals(blamesClient("timeout", "tcp"), false); // knocks may have been lost on the way
 * ```
 */
export function blamesClient(reason: RefusalReason, evidence: RefusalEvidence): boolean {
  return evidence === "tcp" && BLAMING.has(reason);
}

/** The reasons that are the client's own doing and worth a ban. */
const BLAMING: ReadonlySet<RefusalReason> = new Set(["wrong", "replay", "banned"]);

/** What the daemon must do after a knock. */
export type Decision =
  | {
    /** Open `door` for `source`. */
    readonly kind: "open";
    /** The door's name. */
    readonly door: string;
    readonly source: string;
    /** The user whose code it was, on a door with `users`. */
    readonly user?: string;
    /** The code used up (rotating doors): the store keeps it before the door opens. */
    readonly code?: UsedCode;
  }
  | {
    /**
     * `source` knocked on `door`'s pool and it did not open: a knock that fits no code
     * (`wrong`), progress that ran out of time (`timeout`), a banned or a denied source.
     */
    readonly kind: "refused";
    readonly door: string;
    readonly source: string;
    readonly reason: RefusalReason;
    /** `tcp` only when every knock of the attempt and its cause were completed TCP handshakes. */
    readonly evidence: RefusalEvidence;
    /** What was wrong, when there is more to say (an SPA packet's refusal). */
    readonly detail?: string;
  }
  | {
    /** `source` behaves like a scanner (hit a decoy, or too many distinct pool ports): ignored for a while. */
    readonly kind: "scan";
    readonly source: string;
    readonly reason: "decoy" | "ports";
    /** `tcp`: ignored on every door; `udp` (forgeable): only on the doors that take UDP knocks. */
    readonly evidence: Evidence;
    /** When the ban ends, ms. */
    readonly until: number;
  }
  | {
    /** `source` completed the code of a counter outside the window: the clocks disagree. Nothing opens. */
    readonly kind: "skew";
    readonly door: string;
    readonly source: string;
    readonly user?: string;
    readonly counter: number;
    /** Of the attempt's knocks: `tcp` when every one was a completed handshake. */
    readonly evidence: Evidence;
    /** How many periods ahead (+) or behind (−) the knocker's clock is. */
    readonly periods: number;
  }
  | {
    /** `source` completed a code that was already used: a replay. Nothing opens. */
    readonly kind: "replay";
    readonly door: string;
    readonly source: string;
    readonly user?: string;
    readonly counter: number;
    /** Of the attempt's knocks: `tcp` when every one was a completed handshake. */
    readonly evidence: Evidence;
  };

/** A counter a `bind_source` door needs derived for a source before its knock can count. */
export interface MissingSequence {
  /** The door's index in the engine's door list. */
  readonly doorIndex: number;
  /** The counter. */
  readonly counter: number;
}

/**
 * Adds a refusal unless `decisions` has one for that door and source (a door's users
 * share its pool). Only `decisions[from..]` can hold that source's: a sweep of thousands
 * of sources looks at each source's own few, not at every refusal before it.
 */
export function refuse(
  decisions: Decision[] | undefined,
  door: string,
  source: string,
  reason: "wrong" | "timeout" | "order" | "banned" | "denied",
  evidence: RefusalEvidence,
  from = 0,
): Decision[] {
  for (let i = from; i < (decisions?.length ?? 0); i++) {
    const d = decisions![i];
    if (d.kind === "refused" && d.door === door && d.source === source) {
      // A knock that fits nothing says more than the attempt it ended: `wrong` wins over
      // `order`, so a scanner cannot pass its misses off as the daemon's.
      if (d.reason === "order" && reason !== "order") {
        decisions![i] = { kind: "refused", door, source, reason, evidence };
      }
      return decisions!;
    }
  }
  const refusal: Decision = { kind: "refused", door, source, reason, evidence };
  if (!decisions) return [refusal];
  decisions.push(refusal);
  return decisions;
}

/**
 * The decision on a rotating door's completed code: a `skew` outside the window (`lo` to
 * `hi`, `current` the knocker's period), a `replay` of a used code, or an `open` that
 * marks the code used. Counts skews and replays.
 */
export function completed(
  door: RotatingDoor,
  source: string,
  counter: number,
  window: { readonly current: number; readonly lo: number; readonly hi: number },
  evidence: Evidence,
  used: UsedCodes,
  counters: Counters,
): Decision {
  const user = door.user === undefined ? {} : { user: door.user };
  if (counter < window.lo || counter > window.hi) {
    counters.skews++;
    const periods = counter - window.current;
    return { kind: "skew", door: door.name, source, ...user, counter, periods, evidence };
  }
  const owner = codeOwner(door, source);
  if (used.isUsed(owner, counter)) {
    counters.replays++;
    return { kind: "replay", door: door.name, source, ...user, counter, evidence };
  }
  const code = { ...owner, counter };
  used.use(code);
  return { kind: "open", door: door.name, source, ...user, code };
}
