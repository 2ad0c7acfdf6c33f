/**
 * The ports a door listens on: its pool, per protocol. A rotating door's pool is its
 * candidates on the door's protocols; a static door's is its knocks plus decoys, the
 * ports around each knock that a sweep in port order reaches first.
 * @module
 */
import type { Knock, Protocol, ProtocolMode } from "./knock.ts";

/** Ports per protocol: ascending, de-duplicated. */
export interface DoorPool {
  /** TCP ports. */
  readonly tcp: readonly number[];
  /** UDP ports. */
  readonly udp: readonly number[];
}

/**
 * The pool of a rotating door: every candidate on each protocol its knocks may use.
 *
 * @example
 * ```ts
 * import { rotatingPool } from "./pool.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(rotatingPool([7000, 7001], "mixed"), { tcp: [7000, 7001], udp: [7000, 7001] });
 * assertEquals(rotatingPool([7000, 7001], "udp"), { tcp: [], udp: [7000, 7001] });
 * ```
 */
export function rotatingPool(candidates: readonly number[], protocol: ProtocolMode): DoorPool {
  return {
    tcp: protocol === "udp" ? [] : candidates,
    udp: protocol === "tcp" ? [] : candidates,
  };
}

/**
 * Decoy ports of a static door: the `n` ports on each side of every knock's port (same
 * protocol) that are not themselves knocks. A knock on a decoy marks a scanner.
 *
 * @example
 * ```ts
 * import { decoysOf } from "./pool.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const decoys = decoysOf([{ port: 7000, protocol: "tcp" }, { port: 7001, protocol: "tcp" }], 1);
 * assertEquals(decoys, { tcp: [6999, 7002], udp: [] });
 * ```
 */
export function decoysOf(sequence: readonly Knock[], n: number): DoorPool {
  const side = (protocol: Protocol): number[] => {
    const own = new Set(sequence.filter((k) => k.protocol === protocol).map((k) => k.port));
    const decoys = new Set<number>();
    for (const port of own) {
      for (let d = 1; d <= n; d++) {
        for (const p of [port - d, port + d]) {
          if (p >= 1 && p <= 65535 && !own.has(p)) decoys.add(p);
        }
      }
    }
    return [...decoys].sort((a, b) => a - b);
  };
  return { tcp: side("tcp"), udp: side("udp") };
}

/**
 * The pool of a static door: its knocks and its decoys.
 *
 * @example
 * ```ts
 * import { staticPool } from "./pool.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const pool = staticPool([{ port: 7000, protocol: "udp" }], { tcp: [], udp: [6999, 7001] });
 * assertEquals(pool, { tcp: [], udp: [6999, 7000, 7001] });
 * ```
 */
export function staticPool(sequence: readonly Knock[], decoys: DoorPool): DoorPool {
  const sorted = (p: Protocol) =>
    [...new Set([...sequence.filter((k) => k.protocol === p).map((k) => k.port), ...decoys[p]])]
      .sort((a, b) => a - b);
  return { tcp: sorted("tcp"), udp: sorted("udp") };
}
