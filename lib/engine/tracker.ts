/**
 * One source's progress through one sequence: the pure state machine at the heart of
 * the daemon. No clock, no I/O: `now` is a parameter, so tests drive it with a fake clock.
 * @module
 */
import type { Knock } from "../knock.ts";

/**
 * A knock as a small integer: `port * 2 + (udp ? 1 : 0)`. Comparing numbers keeps the
 * per-knock path free of allocation.
 */
export type KnockCode = number;

/** Encodes a knock as a {@link KnockCode}. */
export function knockCode(port: number, protocol: "tcp" | "udp"): KnockCode {
  return port * 2 + (protocol === "udp" ? 1 : 0);
}

/**
 * Encodes a sequence for {@link advance}.
 *
 * @example
 * ```ts
 * import { encodeSequence } from "./tracker.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const seq = encodeSequence([{ port: 7000, protocol: "tcp" }, { port: 8000, protocol: "udp" }]);
 * assertEquals([...seq], [14000, 16001]);
 * ```
 */
export function encodeSequence(knocks: readonly Knock[]): Int32Array {
  return Int32Array.from(knocks, (k) => knockCode(k.port, k.protocol));
}

/** Where a source stands in one sequence. {@link advance} never changes one: it returns a new one. */
export interface Progress {
  /** Knocks matched so far, in order. */
  readonly position: number;
  /** Time of the first knock, ms. */
  readonly firstAt: number;
  /** Bit j set: knock j arrived early and waits for the gap before it to fill. */
  readonly held: number;
  /** Time the earliest held knock arrived, ms. */
  readonly heldAt: number;
}

/** Timing rules for {@link advance}. */
export interface AdvanceOptions {
  /** Most ms from the first to the last knock. */
  readonly timeoutMs: number;
  /** Knocks may arrive out of order by at most this many ms. 0 disables reordering. */
  readonly reorderWindowMs: number;
}

/** What one knock did to one sequence. */
export type Step =
  | { readonly kind: "none" }
  | { readonly kind: "progress"; readonly progress: Progress }
  | { readonly kind: "reset"; readonly progress?: Progress }
  | { readonly kind: "complete" };

const NONE: Step = { kind: "none" };
const COMPLETE: Step = { kind: "complete" };
/** How far ahead of the expected knock an early one may be held. */
const MAX_AHEAD = 3;

/**
 * Feeds one knock (on a port of the door's pool) to a source's progress in `sequence`.
 *
 * - The expected knock advances; the last one completes.
 * - A knock due a little later (up to 3 places ahead) is held for `reorderWindowMs`, so
 *   knocks that overtook each other inside the program still count.
 * - Any other knock resets (to position 1 when it is the sequence's first knock).
 * - Progress older than `timeoutMs`, or a held knock whose gap did not fill within the
 *   window, is dropped before the knock is looked at.
 *
 * @example Three knocks in order complete a sequence
 * ```ts
 * import { advance, encodeSequence, type Progress } from "./tracker.ts";
 * const seq = encodeSequence([
 *   { port: 7000, protocol: "tcp" },
 *   { port: 8000, protocol: "tcp" },
 *   { port: 9000, protocol: "tcp" },
 * ]);
 * const opts = { timeoutMs: 5000, reorderWindowMs: 5 };
 * let p: Progress | undefined;
 * const kinds: string[] = [];
 * for (const [i, code] of seq.entries()) {
 *   const step = advance(p, seq, code, i * 100, opts);
 *   p = step.kind === "progress" ? step.progress : undefined;
 *   kinds.push(step.kind);
 * }
 * if (kinds.join() !== "progress,progress,complete") throw new Error(kinds.join());
 * ```
 */
export function advance(
  progress: Progress | undefined,
  sequence: Int32Array,
  knock: KnockCode,
  now: number,
  options: AdvanceOptions,
): Step {
  let p = progress;
  let expired = false;
  if (
    p &&
    (now - p.firstAt > options.timeoutMs ||
      (p.held !== 0 && now - p.heldAt > options.reorderWindowMs))
  ) {
    p = undefined;
    expired = true;
  }
  const position = p?.position ?? 0;
  const length = sequence.length;

  if (sequence[position] === knock) {
    let next = position + 1;
    let held = p?.held ?? 0;
    while (held & (1 << next)) {
      held &= ~(1 << next);
      next++;
    }
    if (next >= length) return COMPLETE;
    return {
      kind: "progress",
      progress: { position: next, firstAt: p?.firstAt ?? now, held, heldAt: held ? p!.heldAt : 0 },
    };
  }

  if (options.reorderWindowMs > 0) {
    const end = Math.min(length - 1, position + MAX_AHEAD);
    for (let j = position + 1; j <= end; j++) {
      if (sequence[j] !== knock) continue;
      const held = p?.held ?? 0;
      if (held & (1 << j)) break; // the same early knock twice: a wrong knock
      return {
        kind: "progress",
        progress: {
          position,
          firstAt: p?.firstAt ?? now,
          held: held | (1 << j),
          heldAt: held ? p!.heldAt : now,
        },
      };
    }
  }

  const restart: Progress | undefined = sequence[0] === knock
    ? { position: 1, firstAt: now, held: 0, heldAt: 0 }
    : undefined;
  if (p || expired) return { kind: "reset", progress: restart };
  return restart ? { kind: "progress", progress: restart } : NONE;
}
