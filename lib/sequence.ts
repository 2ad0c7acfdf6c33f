/**
 * Sequence v1: the knock sequence of a door for a counter, derived from the door's
 * secret with HMAC-SHA256 (WebCrypto, or node:crypto for the synchronous form). Pure: no
 * clock, no I/O. The exact algorithm is specified in docs/SEQUENCE.md so that other
 * implementations interoperate.
 * @module
 */
import { createHmac } from "node:crypto";
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

const LABEL = new TextEncoder().encode("sesame/v1");
const TWO_32 = 2 ** 32;

/**
 * Imports secret bytes as an HMAC-SHA256 key. Import once per door and reuse the key.
 *
 * @example
 * ```ts
 * import { importSecret } from "./sequence.ts";
 * const key = await importSecret(crypto.getRandomValues(new Uint8Array(32)));
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
 * counterAt(1_700_000_000_000, 30_000); // 56666666
 * ```
 */
export function counterAt(unixMs: number, periodMs: number): number {
  return Math.floor(unixMs / periodMs);
}

/** Builds the fixed HMAC message prefix: label ‖ 0 ‖ door ‖ 0 ‖ u64be(T) ‖ S. */
function messagePrefix(door: string, counter: bigint, source?: BoundSource): Uint8Array {
  const name = new TextEncoder().encode(door);
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
 * const key = await importSecret(new Uint8Array(32));
 * const knocks = await deriveSequence(key, counterAt(Date.now(), 30_000), {
 *   door: "ssh",
 *   candidates: [20000, 20001, 20002, 20003, 20004],
 *   length: 3,
 *   protocol: "tcp",
 * });
 * ```
 */
export async function deriveSequence(
  key: CryptoKey,
  counter: number | bigint,
  spec: SequenceSpec,
  source?: BoundSource,
): Promise<Knock[]> {
  const steps = select(counter, spec, source);
  for (let step = steps.next();;) {
    if (step.done) return step.value;
    const mac = await crypto.subtle.sign("HMAC", key, step.value as Uint8Array<ArrayBuffer>);
    step = steps.next(new Uint8Array(mac));
  }
}

/**
 * Derives the same sequence as {@link deriveSequence}, synchronously, from the secret's
 * bytes (node:crypto's HMAC-SHA256 on this thread: ~10 µs a block here, against ~25–57 µs
 * for a WebCrypto sign and its promise). The daemon derives each new `bind_source`
 * source's codes with it, at the knock.
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
  const steps = select(counter, spec, source);
  for (let step = steps.next();;) {
    if (step.done) return step.value;
    step = steps.next(createHmac("sha256", secret).update(step.value).digest());
  }
}

/**
 * The selection of sequence v1, independent of how the HMAC is computed: yields each
 * message to authenticate (block index set) and takes its 32-byte MAC back.
 */
function* select(
  counter: number | bigint,
  spec: SequenceSpec,
  source: BoundSource | undefined,
): Generator<Uint8Array, Knock[], Uint8Array> {
  const { candidates, length, protocol } = spec;
  const n = candidates.length;
  if (n < 2) throw new RangeError(`a sequence needs at least 2 candidate ports, received ${n}`);
  if (!Number.isInteger(length) || length < 1 || length > 16 || length > n) {
    throw new RangeError(`length must be 1–16 and at most ${n}, received ${length}`);
  }
  const t = BigInt(counter);
  if (t < 0n || t >= 1n << 64n) throw new RangeError(`counter must fit in u64, received ${t}`);
  const message = messagePrefix(spec.door, t, source);
  const indexAt = message.length - 4;
  const view = new DataView(message.buffer);
  const limit = TWO_32 - (TWO_32 % n);

  let mac: DataView = new DataView(new ArrayBuffer(0));
  let next = 8;
  let block = 0;
  function* word(): Generator<Uint8Array, number, Uint8Array> {
    if (next === 8) {
      view.setUint32(indexAt, block++);
      const bytes = yield message;
      mac = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      next = 0;
    }
    return mac.getUint32(4 * next++);
  }

  const knocks: Knock[] = [];
  const chosen = new Set<number>();
  while (knocks.length < length) {
    const w = yield* word();
    if (w >= limit) continue;
    const port = candidates[w % n];
    if (chosen.has(port)) continue;
    chosen.add(port);
    const p: Protocol = protocol === "mixed" ? ((yield* word()) & 1 ? "udp" : "tcp") : protocol;
    knocks.push({ port, protocol: p });
  }
  return knocks;
}
