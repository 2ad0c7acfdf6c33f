/**
 * The capture intake's parser: a pcap stream (what `tcpdump -i nflog:N -w -` writes) of
 * NFLOG records, read as it arrives, into the knocks it holds: source, protocol,
 * destination port, time, and a UDP datagram's payload (for SPA doors). Binary records,
 * bounds-checked at every step: a record that does not parse is counted and skipped,
 * never a crash. Pure: bytes in, packets out.
 * @module
 */
import { addressText } from "../address.ts";
import type { Protocol } from "../knock.ts";

/** One captured packet: the first packet of a knock. */
export interface CapturedPacket {
  /** Source address, canonical text. */
  readonly source: string;
  /** TCP (a SYN) or UDP. */
  readonly protocol: Protocol;
  /** Destination port. */
  readonly port: number;
  /** When the kernel logged it (ms since the epoch). */
  readonly at: number;
  /** A UDP datagram's payload (empty for TCP). */
  readonly payload: Uint8Array;
}

/** pcap's link type for NFLOG records. */
export const LINKTYPE_NFLOG = 239;
/** NFLOG attribute holding the packet from its network header on. */
const NFULA_PAYLOAD = 9;
/** Largest record accepted (tcpdump's default snap length is 262 144). */
const MAX_RECORD = 262_144;

/** A parser error that ends the stream: it is not a pcap stream of NFLOG records. */
export class PcapFormatError extends Error {
  /** @param message what is wrong with the stream. */
  constructor(message: string) {
    super(message);
    this.name = "PcapFormatError";
  }
}

/**
 * Reads a pcap stream chunk by chunk.
 *
 * @example A record made by hand: an IPv4 SYN from 192.0.2.7 to port 7000
 * ```ts
 * import { PcapParser } from "./pcap.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const header = new Uint8Array(24);
 * const h = new DataView(header.buffer);
 * h.setUint32(0, 0xa1b2c3d4, true); h.setUint16(4, 2, true); h.setUint16(6, 4, true);
 * h.setUint32(16, 65535, true); h.setUint32(20, 239, true);
 * const ip = new Uint8Array(40);
 * ip.set([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 7, 192, 0, 2, 1]);
 * ip.set([0x9c, 0x40, 0x1b, 0x58], 20); ip[33] = 0x02; // ports 40000 → 7000, flags SYN
 * const tlv = new Uint8Array(4 + 4 + ip.length);
 * const t = new DataView(tlv.buffer);
 * tlv.set([2, 0, 0, 5]); t.setUint16(4, 4 + ip.length, true); t.setUint16(6, 9, true);
 * tlv.set(ip, 8);
 * const record = new Uint8Array(16 + tlv.length);
 * const r = new DataView(record.buffer);
 * r.setUint32(0, 1_800_000_000, true); r.setUint32(4, 250_000, true);
 * r.setUint32(8, tlv.length, true); r.setUint32(12, tlv.length, true);
 * record.set(tlv, 16);
 * const parser = new PcapParser();
 * assertEquals(parser.push(header), []);
 * const [packet] = parser.push(record);
 * assertEquals([packet.source, packet.protocol, packet.port, packet.at], ["192.0.2.7", "tcp", 7000, 1_800_000_000_250]);
 * ```
 */
export class PcapParser {
  #buffer: Uint8Array = new Uint8Array(0);
  #little = true;
  #nanos = false;
  #started = false;
  /** Records that held no knock this parser understands (counted, skipped). */
  skipped = 0;

  /**
   * Takes the next chunk of the stream; returns the packets completed by it.
   * @throws {PcapFormatError} when the stream is not pcap of NFLOG records.
   */
  push(chunk: Uint8Array): CapturedPacket[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : concat(this.#buffer, chunk);
    const out: CapturedPacket[] = [];
    let offset = 0;
    const view = new DataView(
      this.#buffer.buffer,
      this.#buffer.byteOffset,
      this.#buffer.byteLength,
    );
    if (!this.#started) {
      if (this.#buffer.length < 24) return out;
      this.#header(view);
      this.#started = true;
      offset = 24;
    }
    while (this.#buffer.length - offset >= 16) {
      const sec = view.getUint32(offset, this.#little);
      const frac = view.getUint32(offset + 4, this.#little);
      const length = view.getUint32(offset + 8, this.#little);
      if (length > MAX_RECORD) throw new PcapFormatError(`a record of ${length} bytes`);
      if (this.#buffer.length - offset - 16 < length) break;
      const at = sec * 1000 + Math.floor(this.#nanos ? frac / 1e6 : frac / 1e3);
      const packet = nflog(this.#buffer.subarray(offset + 16, offset + 16 + length), at);
      if (packet) out.push(packet);
      else this.skipped++;
      offset += 16 + length;
    }
    this.#buffer = this.#buffer.slice(offset);
    return out;
  }

  #header(view: DataView): void {
    const magic = view.getUint32(0, true);
    if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.#little = true;
    else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.#little = false;
    else throw new PcapFormatError(`not a pcap stream (magic ${magic.toString(16)})`);
    this.#nanos = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
    const link = view.getUint32(20, this.#little) & 0x0fffffff;
    if (link !== LINKTYPE_NFLOG) {
      throw new PcapFormatError(`link type ${link}, not NFLOG (${LINKTYPE_NFLOG})`);
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * One NFLOG record: a 4-byte header (family, version, group), then attributes, each
 * length (2 bytes) and type (2 bytes) in host order (little-endian here), padded to 4.
 */
function nflog(record: Uint8Array, at: number): CapturedPacket | undefined {
  if (record.length < 4) return undefined;
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  let offset = 4;
  while (offset + 4 <= record.length) {
    const length = view.getUint16(offset, true);
    const type = view.getUint16(offset + 2, true) & 0x7fff;
    if (length < 4 || offset + length > record.length) return undefined;
    if (type === NFULA_PAYLOAD) return ip(record.subarray(offset + 4, offset + length), at);
    offset += (length + 3) & ~3;
  }
  return undefined;
}

/** An IPv4 or IPv6 packet: a TCP SYN without ACK, or a UDP datagram; else undefined. */
function ip(packet: Uint8Array, at: number): CapturedPacket | undefined {
  if (packet.length < 1) return undefined;
  const version = packet[0] >> 4;
  let source: string;
  let next: number;
  let transport: number;
  if (version === 4) {
    const headerLength = (packet[0] & 0x0f) * 4;
    if (headerLength < 20 || packet.length < headerLength) return undefined;
    // A fragment past the first holds no transport header.
    if (((packet[6] & 0x1f) << 8 | packet[7]) !== 0) return undefined;
    source = addressText(packet.subarray(12, 16));
    next = packet[9];
    transport = headerLength;
  } else if (version === 6) {
    if (packet.length < 40) return undefined;
    source = addressText(packet.subarray(8, 24));
    next = packet[6];
    transport = 40; // extension headers: not a knock's
  } else return undefined;
  const rest = packet.subarray(transport);
  const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  if (next === 6) {
    if (rest.length < 14) return undefined;
    const flags = rest[13];
    if ((flags & 0x02) === 0 || (flags & 0x10) !== 0) return undefined; // SYN, not ACK
    return { source, protocol: "tcp", port: view.getUint16(2), at, payload: new Uint8Array(0) };
  }
  if (next === 17) {
    if (rest.length < 8) return undefined;
    const length = Math.min(view.getUint16(4), rest.length);
    if (length < 8) return undefined;
    return {
      source,
      protocol: "udp",
      port: view.getUint16(2),
      at,
      payload: rest.slice(8, length),
    };
  }
  return undefined;
}
