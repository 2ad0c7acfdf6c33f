/**
 * A door's code at a time: its sequence, counter and validity, for `sesame code`, the
 * knock client and the daemon alike.
 * @module
 */
import type { Address } from "./address.ts";
import type { Door, RotatingDoor } from "./config/types.ts";
import type { Knock } from "./knock.ts";
import { type BoundSource, counterAt, deriveSequenceSync } from "./sequence.ts";

/** A door's code for one counter. */
export interface DoorCode {
  /** The door's name. */
  readonly door: string;
  /** The counter; `null` for a static door. */
  readonly counter: number | null;
  /** Start of the counter's period, ms since the epoch; `null` for a static door. */
  readonly validFrom: number | null;
  /** End of the counter's period (exclusive), ms; `null` for a static door. */
  readonly validUntil: number | null;
  /** The knocks, in order. */
  readonly knocks: readonly Knock[];
}

/** The bound source for a `bind_source` door and a knocking address. */
export function boundSource(
  door: RotatingDoor,
  address: Address | undefined,
): BoundSource | undefined {
  if (!door.bindSource) return undefined;
  if (!address) {
    throw new TypeError(`door ${door.name} binds codes to the knocking address: give one`);
  }
  return {
    address,
    prefix: address.family === 4 ? door.sourcePrefix.ipv4 : door.sourcePrefix.ipv6,
  };
}

/**
 * The code of `door` for `counter` (rotating) or its fixed sequence (static).
 *
 * @example
 * ```ts
 * import { codeForCounter } from "./code.ts";
 * import { validateConfig } from "./config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const { doors } = validateConfig({ doors: { ssh: { secret, ports: "20000-20099", length: 3 } } });
 * const code = await codeForCounter(doors[0], 56666666);
 * assertEquals(code.knocks.length, 3);
 * assertEquals(code.validFrom, 56666666 * 30_000);
 * ```
 */
export function codeForCounter(door: Door, counter: number, from?: Address): Promise<DoorCode> {
  try {
    return Promise.resolve(codeForCounterSync(door, counter, from));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * {@link codeForCounter}, synchronously: what the daemon uses on the knock path, where a
 * new `bind_source` source's codes are derived before its knock counts.
 *
 * @example
 * ```ts
 * import { codeForCounterSync } from "./code.ts";
 * import { parseAddress } from "./address.ts";
 * import { validateConfig } from "./config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const { doors } = validateConfig({
 *   doors: { near: { secret, ports: "20000-20099", bind_source: true } },
 * });
 * const code = codeForCounterSync(doors[0], 56666666, parseAddress("192.0.2.7"));
 * assertEquals(code.counter, 56666666);
 * ```
 */
export function codeForCounterSync(door: Door, counter: number, from?: Address): DoorCode {
  if (door.kind === "spa") {
    throw new TypeError(
      `door ${door.name} is a single-packet (SPA) door: it has no knock sequence`,
    );
  }
  if (door.kind === "static") {
    return {
      door: door.name,
      counter: null,
      validFrom: null,
      validUntil: null,
      knocks: door.sequence,
    };
  }
  const knocks = deriveSequenceSync(door.secret, counter, {
    door: door.name,
    candidates: door.candidates,
    length: door.length,
    protocol: door.protocol,
  }, boundSource(door, from));
  return {
    door: door.name,
    counter,
    validFrom: counter * door.periodMs,
    validUntil: (counter + 1) * door.periodMs,
    knocks,
  };
}

/**
 * The code of `door` in force at `atMs`.
 *
 * @example
 * ```ts
 * import { codeAt } from "./code.ts";
 * import { validateConfig } from "./config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000, 8000] } } });
 * const { knocks, counter } = await codeAt(doors[0], Date.now());
 * assertEquals(knocks.length, 2);
 * assertEquals(counter, null); // a static door does not rotate
 * ```
 */
export function codeAt(door: Door, atMs: number, from?: Address): Promise<DoorCode> {
  const counter = door.kind === "rotating" ? counterAt(atMs, door.periodMs) : 0;
  return codeForCounter(door, counter, from);
}
