/**
 * The SPA gate: one UDP packet in, a decision out, pure (time is a parameter). Per source
 * a small rate limit comes first (a flood costs one HMAC per door sharing the port per
 * packet, so that is bounded before any is computed); then the HMAC of each door on the
 * port, in constant time; then decryption and the checks, stricter than fwknopd's
 * defaults: a timestamp within `max_age` of the server's clock and not older than the
 * highest server time ever seen minus `max_age` (no clock step revives a packet), a
 * digest never seen before (kept in the store; an authentic packet refused for another
 * reason is used up too), an address that is the packet's source or `0.0.0.0` unless the
 * door allows others, ports within the door's, access messages only.
 * @module
 */
import { createHash } from "node:crypto";
import { type Cidr, isPermitted, parseAddress } from "../address.ts";
import type { SpaDoor } from "../config/types.ts";
import {
  decodeSpa,
  MAX_PACKET,
  MAX_SYMMETRIC,
  MIN_PACKET,
  type SpaPacket,
  verifySpaHmac,
} from "./fko.ts";

/** What a packet comes to. */
export type SpaDecision =
  | {
    /** Authentic and acceptable: open `door` for `target` for `forMs`. */
    readonly kind: "open";
    readonly door: string;
    /** The packet's source. */
    readonly source: string;
    /** Whom to open for: the source, or the address in the packet (allow_other_address). */
    readonly target: string;
    readonly forMs: number;
    /** The packet's digest and timestamp (ms): the store keeps it so it never opens twice. */
    readonly digest: string;
    readonly seen: number;
  }
  | {
    /** Refused. `door` when the HMAC told whose it was; `digest` when it is used up anyway. */
    readonly kind: "refused";
    readonly door?: string;
    readonly source: string;
    readonly reason: "wrong" | "replay" | "skew" | "denied" | "limited";
    /** For `limited`: which limit dropped it (the source's, or the global budget). */
    readonly limit?: "source" | "budget";
    /** What was wrong, for the log (never a key or the packet's content beyond its fields). */
    readonly detail: string;
    readonly digest?: string;
    readonly seen?: number;
  };

/**
 * Authentic packets a source may send per second before the rest are dropped undecrypted.
 * Only authentic packets count: forged ones (which anyone can send "from" a victim's
 * address) cannot spend a victim's allowance.
 */
const PER_SOURCE_PER_SECOND = 5;
/**
 * Packets verified per second in all, whatever the sources and however many doors share
 * the port (each packet is tried on each: fwknop's packets carry no key id in the clear).
 * Beyond it, packets are dropped unverified: a forged flood costs at most this many
 * packets' HMACs a second.
 */
export const PACKETS_PER_SECOND = 20_000;
const BASE64 = /^[A-Za-z0-9+/]+$/;
/** The longest `max_age` a door may have: digests older than the highest time minus this go. */
export const MAX_MAX_AGE_MS = 3_600_000;
/** Sources the rate limit remembers; beyond, the oldest are forgotten. */
const MAX_LIMITED = 100_000;

/**
 * Decides on SPA packets for the SPA doors of a config.
 *
 * @example A packet from the real client's format opens its door for its source
 * ```ts
 * import { SpaGate } from "./gate.ts";
 * import { encodeSpa } from "./fko.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const key = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
 * const hmac = btoa(String.fromCharCode(...new Uint8Array(64).fill(9)));
 * const { doors } = validateConfig({ doors: { ssh: {
 *   spa: { port: 62201, key_base64: key, hmac_key_base64: hmac, access: ["tcp/22"] },
 *   open: { nft: { port: 22 } },
 * } } });
 * const gate = new SpaGate(doors as never);
 * const now = 1_800_000_000_000;
 * const wire = encodeSpa({ user: "a", timestamp: now / 1000, type: 1, message: "0.0.0.0,tcp/22" },
 *   (doors[0] as never as { spa: { keys: never } }).spa.keys);
 * assertEquals(gate.handle("192.0.2.7", 62201, wire, now).kind, "open");
 * ```
 */
export class SpaGate {
  readonly #byPort = new Map<number, SpaDoor[]>();
  /** Digest → packet timestamp (ms): used packets, pruned below the horizon. */
  readonly #used = new Map<string, number>();
  /** Highest server time seen, ms: packets older than it minus max_age never count. */
  #maxTime = 0;
  /** Per source: the second and the packets in it. */
  readonly #rate = new Map<string, { second: number; count: number }>();

  /** Packets made before this (ms) are refused: a lost or damaged store forgot which were used. */
  readonly #refuseBefore: number;
  /** The config's global allow and deny lists. */
  readonly #allow: readonly Cidr[];
  readonly #deny: readonly Cidr[];
  /** Packets verified in the current second. */
  #second = 0;
  #verified = 0;

  /** The highest server time seen, ms (a reload hands it on: no clock step revives a packet). */
  get maxTime(): number {
    return this.#maxTime;
  }

  /**
   * Creates a gate for `doors`.
   * @param doors the SPA doors.
   * @param used digests already used (from the store).
   * @param maxTime the highest server time the store kept.
   * @param refuseBefore refuse packets made before this time, ms (after a lost state).
   */
  constructor(
    doors: readonly SpaDoor[],
    used: Iterable<{ digest: string; seen: number }> = [],
    maxTime = 0,
    refuseBefore = 0,
    lists: { allow?: readonly Cidr[]; deny?: readonly Cidr[] } = {},
  ) {
    this.#refuseBefore = refuseBefore;
    this.#allow = lists.allow ?? [];
    this.#deny = lists.deny ?? [];
    for (const door of doors) {
      const list = this.#byPort.get(door.spa.port) ?? [];
      list.push(door);
      this.#byPort.set(door.spa.port, list);
    }
    for (const u of used) this.#used.set(u.digest, u.seen);
    this.#maxTime = maxTime;
  }

  /** The UDP ports SPA packets come to. */
  get ports(): number[] {
    return [...this.#byPort.keys()];
  }

  /** Marks a digest used (a commit of another gate, or a reload carrying them over). */
  markUsed(digest: string, seen: number): void {
    this.#used.set(digest, seen);
  }

  /** The used digests (a reload hands them to the next gate). */
  usedDigests(): { digest: string; seen: number }[] {
    return [...this.#used].map(([digest, seen]) => ({ digest, seen }));
  }

  /** Decides on one packet `payload` from `source` to `port` at `now` (ms). */
  handle(source: string, port: number, payload: string, now: number): SpaDecision {
    if (now > this.#maxTime) this.#maxTime = now;
    const doors = this.#byPort.get(port);
    if (!doors) return refused(source, "wrong", "no SPA door on this port");
    // The cheap checks first, before any accounting: size and alphabet of a symmetric packet.
    if (payload.length > MAX_PACKET) return refused(source, "wrong", "oversized packet");
    if (payload.length < MIN_PACKET || payload.length >= MAX_SYMMETRIC || !BASE64.test(payload)) {
      return refused(source, "wrong", "not a symmetric fwknop packet (size or characters)");
    }
    const address = parseAddress(source);
    if (!address || !isPermitted(address, this.#allow, this.#deny)) {
      return refused(source, "denied", "the source is not allowed (allow/deny)");
    }
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#verified = 0;
    }
    // One packet counts once, whichever doors it is tried on.
    if (++this.#verified > PACKETS_PER_SECOND) {
      return {
        ...refused(source, "limited", "more packets a second than the verification budget"),
        limit: "budget",
      };
    }
    const door = doors.find((d) => verifySpaHmac(payload, d.spa.keys));
    if (!door) return refused(source, "wrong", "no door's HMAC key made this packet");
    if (!isPermitted(address, door.allow, door.deny)) {
      return refused(source, "denied", "the source is not allowed on this door", door.name);
    }
    // A used packet is refused before it is decrypted, and spends nobody's allowance: a
    // captured packet resent "from" a victim's address must not keep the victim out.
    const digest = createHash("sha256").update(payload).digest("base64");
    if (this.#used.has(digest)) {
      return refused(source, "replay", "a packet already used", door.name);
    }
    const decoded = decodeSpa(payload, door.spa.keys);
    if (!decoded.ok) return refused(source, "wrong", `undecodable (${decoded.error})`, door.name);
    const packet = decoded.packet;
    const seen = packet.timestamp * 1000;
    const used = { digest, seen };
    const maxAge = door.spa.maxAgeMs;
    // Within its time, never used: only such a packet counts against its source's
    // allowance (forgers cannot make one), and it is not used up when the allowance is spent.
    const timely = seen >= this.#refuseBefore && seen >= this.#maxTime - maxAge &&
      Math.abs(seen - now) <= maxAge;
    if (timely && !this.#admit(source, now)) {
      return {
        ...refused(source, "limited", "more than 5 new packets a second", door.name),
        limit: "source",
      };
    }
    // Authentic: used up from here on, whatever follows.
    this.#used.set(digest, seen);
    if (seen < this.#refuseBefore) {
      return {
        ...refused(
          source,
          "replay",
          "made before the state was lost: it may have been used",
          door.name,
        ),
        ...used,
      };
    }
    if (seen < this.#maxTime - maxAge && Math.abs(seen - now) <= maxAge) {
      return {
        ...refused(
          source,
          "skew",
          `it is ${
            Math.round((this.#maxTime - seen) / 1000)
          } s older than the latest time this server has seen (${
            new Date(this.#maxTime).toISOString()
          }): its clock was stepped back, and no packet older than that minus max_age is taken`,
          door.name,
        ),
        ...used,
      };
    }
    if (Math.abs(seen - now) > maxAge) {
      return {
        ...refused(
          source,
          "skew",
          `its timestamp is ${Math.round((seen - now) / 1000)} s off this clock (at most ${
            maxAge / 1000
          } s)`,
          door.name,
        ),
        ...used,
      };
    }
    const checked = this.#check(door, source, packet);
    if (typeof checked === "string") {
      return { ...refused(source, "denied", checked, door.name), ...used };
    }
    return {
      kind: "open",
      door: door.name,
      source,
      target: checked.target,
      forMs: checked.forMs,
      ...used,
    };
  }

  /**
   * Forgets digests no packet can match any more: older than the highest time seen minus
   * the longest `max_age` a door may have (an hour), so a door removed and added back, or
   * a `max_age` raised, revives none.
   */
  prune(): number {
    let dropped = 0;
    for (const [digest, seen] of this.#used) {
      if (seen < this.horizon) {
        this.#used.delete(digest);
        dropped++;
      }
    }
    return dropped;
  }

  /** The time below which used digests may be forgotten (here and in the store), ms. */
  get horizon(): number {
    return this.#maxTime - MAX_MAX_AGE_MS;
  }

  /** What the packet asks, against the door: whom to open for and how long, or why not. */
  #check(
    door: SpaDoor,
    source: string,
    packet: SpaPacket,
  ): { target: string; forMs: number } | string {
    if (packet.type !== 1 && packet.type !== 3) {
      return `message type ${packet.type} (command and NAT messages are not taken)`;
    }
    const [addressText, ...requests] = packet.message.split(",");
    const address = parseAddress(addressText);
    if (!address || requests.length === 0) return "a malformed access message";
    let target = source;
    if (address.text === "0.0.0.0" && door.spa.requireSourceAddress) {
      return "it asks for 0.0.0.0, and this door requires the packet's own address (require_source_address)";
    }
    if (address.text !== "0.0.0.0" && address.text !== source) {
      if (!door.spa.allowOtherAddress) {
        return `it asks for ${address.text}, not its source (allow_other_address is off)`;
      }
      // The message holds IPv4; never a special address (an element for it would open for
      // nobody, or for everyone on a link).
      if (address.family !== 4 || /^(0|127|22[4-9]|2[3-5]\d)\./.test(address.text)) {
        return `it asks for ${address.text}, which no door opens for`;
      }
      target = address.text;
    }
    const spec = door.open?.nft ?? door.open?.iptables;
    for (const request of requests) {
      const m = /^(tcp|udp)\/(\d{1,5})$/.exec(request);
      if (!m) return `it asks for ${JSON.stringify(request)}, which this door does not open`;
      const inDoor = spec?.gateway
        ? spec.gateway.kind === "dnat"
          ? spec.ports.includes(Number(m[2]))
          : spec.gateway.toPorts.includes(Number(m[2]))
        : spec?.ports.includes(Number(m[2])) ?? false;
      if (spec && (spec.protocol !== m[1] || !inDoor) && !spec.sets) {
        return `it asks for ${request}, outside the door's ports`;
      }
    }
    const forMs = door.open?.forMs ?? 30_000;
    const asked = packet.clientTimeout;
    return { target, forMs: asked && asked > 0 ? Math.min(forMs, asked * 1000) : forMs };
  }

  #admit(source: string, now: number): boolean {
    const second = Math.floor(now / 1000);
    const entry = this.#rate.get(source);
    if (entry && entry.second === second) return ++entry.count <= PER_SOURCE_PER_SECOND;
    if (this.#rate.size >= MAX_LIMITED) this.#rate.clear();
    this.#rate.set(source, { second, count: 1 });
    return true;
  }
}

function refused(
  source: string,
  reason: "wrong" | "replay" | "skew" | "denied" | "limited",
  detail: string,
  door?: string,
): SpaDecision & { kind: "refused" } {
  return { kind: "refused", ...(door === undefined ? {} : { door }), source, reason, detail };
}
