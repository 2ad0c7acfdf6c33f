/**
 * A knock: one connection attempt or datagram on one port, as written in configs and on
 * the command line (`7000`, `"8000/udp"`, `"8000:tcp"`).
 * @module
 */

/** A transport protocol a knock travels on. */
export type Protocol = "tcp" | "udp";
/** The protocols a rotating door's knocks use: all TCP, all UDP, or chosen per knock. */
export type ProtocolMode = Protocol | "mixed";

/** One knock: a port and the protocol it arrives on. */
export interface Knock {
  /** Port, 1–65535. */
  readonly port: number;
  /** Transport protocol. */
  readonly protocol: Protocol;
}

const KNOCK = /^(\d{1,5})(?:[/:](tcp|udp))?$/i;

/**
 * Parses one knock as written in a static sequence or on the command line:
 * `7000`, `"7000"`, `"7000/udp"`, `"7000:tcp"`; `undefined` when it is not one.
 *
 * @example
 * ```ts
 * import { parseKnock } from "./knock.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(parseKnock("8000/udp"), { port: 8000, protocol: "udp" });
 * assertEquals(parseKnock(7000), { port: 7000, protocol: "tcp" });
 * assertEquals(parseKnock("70000"), undefined);
 * ```
 */
export function parseKnock(value: unknown, protocol: Protocol = "tcp"): Knock | undefined {
  const text = typeof value === "number"
    ? String(value)
    : typeof value === "string"
    ? value.trim()
    : "";
  const m = KNOCK.exec(text);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, protocol: (m[2]?.toLowerCase() as Protocol | undefined) ?? protocol };
}

/**
 * Formats a knock as `port/protocol`, the form logs and `--json` outputs use.
 *
 * @example
 * ```ts
 * import { formatKnock } from "./knock.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(formatKnock({ port: 8000, protocol: "udp" }), "8000/udp");
 * ```
 */
export function formatKnock(knock: Knock): string {
  return `${knock.port}/${knock.protocol}`;
}

/**
 * How a knock was heard, which says what it proves about its source: a completed TCP
 * `handshake` proves the source can receive at its address; a `datagram` proves nothing
 * (UDP sources are forgeable); a `capture`d packet (the kernel's NFLOG: a SYN or a
 * datagram, answered as a closed port) proves nothing either.
 */
export type Proof = "handshake" | "datagram" | "capture";

/** One knock as an intake heard it: the record every intake hands to the daemon. */
export interface HeardKnock {
  /** The knocking address, normalised (`192.0.2.7`, not `::ffff:192.0.2.7`). */
  readonly source: string;
  /** Its transport protocol. */
  readonly protocol: Protocol;
  /** The port knocked. */
  readonly port: number;
  /** When it was heard, ms since the epoch. */
  readonly at: number;
  /** How it was heard. */
  readonly proof: Proof;
}

/** One single-packet-authorization datagram as heard. */
export interface HeardPacket {
  /** The sending address, normalised. */
  readonly source: string;
  /** The UDP port it arrived on. */
  readonly port: number;
  /** Its payload as latin1 text (at most 1500 bytes, and one more to tell an oversized one). */
  readonly payload: string;
  /** When it was heard, ms since the epoch. */
  readonly at: number;
}
