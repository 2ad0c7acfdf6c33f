/**
 * Sequence v1: the knock sequence of a door for a counter, derived from the door's
 * secret with HMAC-SHA256 (WebCrypto, or @noble/hashes for the synchronous form). Pure: no
 * clock, no I/O. The exact algorithm is specified in docs/SEQUENCE.md so that other
 * implementations interoperate.
 * @module
 */
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha2";
import type { Address } from "./address.ts";
import { maskBytes } from "./address.ts";
import type { Knock, Protocol, ProtocolMode } from "./knock.ts";

/** What a sequence is derived from, besides the secret and counter. */
export interface SequenceSpec {
  /** The door's name (UTF-8), mixed into the HMAC so doors sharing a secret differ. */
  readonly door: string;
  /** Candidate ports: de-duplicated, ascending, at least 2. */
  readonly candidates: readonly number[];
  /** Knocks in the sequence, 1–16 and at most the number of candidates. */
  readonly length: number;
  /** Protocol mode. */
  readonly protocol: ProtocolMode;
}

/** The knocking source a `bind_source` door's sequence depends on. */
export interface BoundSource {
  /** The knocking address (IPv4-mapped addresses already count as IPv4). */
  readonly address: Address;
  /** Bits of the address that count: the door's `source_prefix` for that family. */
  readonly prefix: number;
}

const ENCODER = new TextEncoder();
const LABEL = ENCODER.encode("sesame/v1");
const TWO_32 = 2 ** 32;

/**
 * Imports secret bytes as an HMAC-SHA256 key. Import once per door and reuse the key.
 *
 * @example
 * ```ts
 * import { importSecret } from "./sequence.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const key = await importSecret(crypto.getRandomValues(new Uint8Array(32)));
 * assertEquals([key.algorithm.name, key.usages], ["HMAC", ["sign"]]);
 * ```
 */
export function importSecret(secret: Uint8Array): Promise<CryptoKey> {
  if (secret.length < 16) {
    throw new RangeError(`secret must be at least 16 bytes, received ${secret.length}`);
  }
  return crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

/**
 * The counter in force at a time: `floor(unix_seconds / period_seconds)`.
 *
 * @example
 * ```ts
 * import { counterAt } from "./sequence.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(counterAt(1_700_000_000_000, 30_000), 56666666);
 * ```
 */
export function counterAt(unixMs: number, periodMs: number): number {
  return Math.floor(unixMs / periodMs);
}

/** Builds the fixed HMAC message prefix: label ‖ 0 ‖ door ‖ 0 ‖ u64be(T) ‖ S. */
function messagePrefix(door: string, counter: bigint, source?: BoundSource): Uint8Array {
  const name = ENCODER.encode(door);
  let s = new Uint8Array(0);
  if (source) {
    const { address, prefix } = source;
    s = new Uint8Array(2 + address.bytes.length);
    s[0] = address.family === 4 ? 0x04 : 0x06;
    s[1] = prefix;
    s.set(maskBytes(address.bytes, prefix), 2);
  }
  const out = new Uint8Array(LABEL.length + 1 + name.length + 1 + 8 + s.length + 4);
  let at = 0;
  out.set(LABEL, at);
  at += LABEL.length + 1;
  out.set(name, at);
  at += name.length + 1;
  new DataView(out.buffer).setBigUint64(at, counter);
  out.set(s, at + 8);
  return out;
}

/**
 * Derives the knock sequence of a door for a counter (sequence v1).
 *
 * @example Derive the current sequence of a door
 * ```ts
 * import { counterAt, deriveSequence, importSecret } from "./sequence.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const key = await importSecret(new Uint8Array(32));
 * const knocks = await deriveSequence(key, counterAt(Date.now(), 30_000), {
 *   door: "ssh",
 *   candidates: [20000, 20001, 20002, 20003, 20004],
 *   length: 3,
 *   protocol: "tcp",
 * });
 * assertEquals(knocks.length, 3);
 * assertEquals(new Set(knocks.map((k) => k.port)).size, 3); // a rotating code never repeats a port
 * ```
 */
export async function deriveSequence(
  key: CryptoKey,
  counter: number | bigint,
  spec: SequenceSpec,
  source?: BoundSource,
): Promise<Knock[]> {
  const message = prepare(counter, spec, source);
  const blocks: Uint8Array[] = [];
  // The selection asks for MAC blocks in order; each missing one is signed, then it runs again.
  for (;;) {
    const knocks = select(spec, (block) => blocks[block]);
    if (knocks) return knocks;
    setBlock(message, blocks.length);
    blocks.push(
      new Uint8Array(
        await crypto.subtle.sign("HMAC", key, message as Uint8Array<ArrayBuffer>),
      ),
    );
  }
}

/**
 * Derives the same sequence as {@link deriveSequence}, synchronously, from the secret's
 * bytes: HMAC-SHA256 from @noble/hashes on this thread, its keyed state computed once per
 * secret and cloned per message (~4 µs a block here, against ~9 µs for node:crypto's
 * createHmac and 25–57 µs for a WebCrypto sign and its promise). The daemon derives each
 * new `bind_source` source's codes with it, at the knock.
 *
 * @example
 * ```ts
 * import { deriveSequence, deriveSequenceSync, importSecret } from "./sequence.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const secret = new Uint8Array(32).fill(7);
 * const spec = { door: "ssh", candidates: [1, 2, 3, 4, 5], length: 3, protocol: "mixed" as const };
 * assertEquals(deriveSequenceSync(secret, 42, spec), await deriveSequence(await importSecret(secret), 42, spec));
 * ```
 */
export function deriveSequenceSync(
  secret: Uint8Array,
  counter: number | bigint,
  spec: SequenceSpec,
  source?: BoundSource,
): Knock[] {
  if (secret.length < 16) {
    throw new RangeError(`secret must be at least 16 bytes, received ${secret.length}`);
  }
  let keyed = keyedHmacs.get(secret);
  if (!keyed) keyedHmacs.set(secret, keyed = hmac.create(sha256, secret));
  const message = prepare(counter, spec, source);
  return select(spec, (block) => {
    setBlock(message, block);
    return keyed.clone().update(message).digest();
  })!;
}

/** The keyed HMAC state of each secret, computed once and cloned per message. */
const keyedHmacs = new WeakMap<Uint8Array, ReturnType<typeof hmac.create>>();

/** Checks the spec and builds the HMAC message (its block index still 0). */
function prepare(
  counter: number | bigint,
  spec: SequenceSpec,
  source: BoundSource | undefined,
): Uint8Array {
  const n = spec.candidates.length, length = spec.length;
  if (n < 2) throw new RangeError(`a sequence needs at least 2 candidate ports, received ${n}`);
  if (!Number.isInteger(length) || length < 1 || length > 16 || length > n) {
    throw new RangeError(`length must be 1–16 and at most ${n}, received ${length}`);
  }
  const t = BigInt(counter);
  if (t < 0n || t >= 1n << 64n) throw new RangeError(`counter must fit in u64, received ${t}`);
  return messagePrefix(spec.door, t, source);
}

/** Sets the message's block index (its last 4 bytes, big-endian). */
function setBlock(message: Uint8Array, block: number): void {
  const at = message.length - 4;
  message[at] = block >>> 24;
  message[at + 1] = (block >>> 16) & 255;
  message[at + 2] = (block >>> 8) & 255;
  message[at + 3] = block & 255;
}

/**
 * The selection of sequence v1, independent of how the HMAC is computed: `mac(block)`
 * gives the MAC of the message with that block index, in order from 0; when it gives
 * undefined (not computed yet), the selection stops and returns undefined.
 */
function select(
  spec: SequenceSpec,
  mac: (block: number) => Uint8Array | undefined,
): Knock[] | undefined {
  const { candidates, length, protocol } = spec;
  const n = candidates.length;
  const limit = TWO_32 - (TWO_32 % n);
  let bytes: Uint8Array | undefined;
  let next = 8, block = 0;
  const word = (): number | undefined => {
    if (next === 8) {
      bytes = mac(block++);
      if (!bytes) return undefined;
      next = 0;
    }
    const at = 4 * next++;
    return ((bytes![at] << 24) | (bytes![at + 1] << 16) | (bytes![at + 2] << 8) |
      bytes![at + 3]) >>>
      0;
  };
  const knocks: Knock[] = [];
  const chosen = new Set<number>();
  while (knocks.length < length) {
    const w = word();
    if (w === undefined) return undefined;
    if (w >= limit) continue;
    const port = candidates[w % n];
    if (chosen.has(port)) continue;
    chosen.add(port);
    let p: Protocol = protocol === "mixed" ? "tcp" : protocol;
    if (protocol === "mixed") {
      const bit = word();
      if (bit === undefined) return undefined;
      p = bit & 1 ? "udp" : "tcp";
    }
    knocks.push({ port, protocol: p });
  }
  return knocks;
}
