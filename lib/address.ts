/**
 * IP addresses as sesame sees them: one canonical text per host (IPv4-mapped IPv6
 * addresses become plain IPv4), byte forms for prefixes, and CIDR matchers.
 * Parsing leans on ipaddr.js (the parser behind Express's proxy-addr) rather than a
 * hand-written IPv6 parser.
 * @module
 */
import ipaddr from "ipaddr.js";

/** A parsed address. `text` is canonical: what logs, state and `{ip}` show. */
export interface Address {
  /** 4 or 6. An IPv4-mapped IPv6 address is family 4. */
  readonly family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
  /** Canonical text, e.g. `192.0.2.7` or `2001:db8::1`. */
  readonly text: string;
}

/** An address prefix such as `10.0.0.0/8` or `2001:db8::/32`. */
export interface Cidr {
  /** The family of the prefix. */
  readonly family: 4 | 6;
  /** The network bytes, already masked. */
  readonly bytes: Uint8Array;
  /** Prefix length in bits. */
  readonly prefix: number;
}

const MAPPED = "::ffff:";

/**
 * Canonical text for a hostname a socket reported. Cheap: the knock path calls it.
 * A dual-stack `::` socket reports IPv4 peers as `::ffff:a.b.c.d`; this returns `a.b.c.d`.
 *
 * @example
 * ```ts
 * import { normalizeHost } from "./address.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(normalizeHost("::ffff:127.0.0.1"), "127.0.0.1");
 * assertEquals(normalizeHost("::1"), "::1");
 * ```
 */
export function normalizeHost(hostname: string): string {
  if (hostname.length > 7 && hostname.charCodeAt(0) === 58 /* : */) {
    const lower = hostname.toLowerCase();
    if (lower.startsWith(MAPPED) && lower.indexOf(".", MAPPED.length) > 0) {
      return lower.slice(MAPPED.length);
    }
  }
  return hostname;
}

/**
 * Parses an IPv4 or IPv6 address (no brackets, no zone); `undefined` when it is not one.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./address.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(parseAddress("::ffff:192.0.2.7")?.text, "192.0.2.7");
 * assertEquals(parseAddress("2001:DB8::1")?.text, "2001:db8::1");
 * ```
 */
export function parseAddress(text: string): Address | undefined {
  if (typeof text !== "string") return undefined;
  return parseCanonicalIPv4(text) ?? parseWithIpaddr(text);
}

/**
 * {@link parseAddress} through ipaddr.js alone, for every form: what the hand-written
 * IPv4 path must agree with (the tests compare them).
 *
 * @example
 * ```ts
 * import { parseWithIpaddr } from "./address.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(parseWithIpaddr("::ffff:192.0.2.7")?.text, "192.0.2.7"); // mapped: not the fast path's form
 * assertEquals(parseWithIpaddr("010.0.0.1"), undefined); // leading zeros: refused
 * ```
 */
export function parseWithIpaddr(text: string): Address | undefined {
  if (text.includes("%")) return undefined;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) parsed = ipaddr.IPv4.parse(text);
  else if (text.includes(":")) {
    const v6 = withHexTail(text);
    if (v6 === undefined || !ipaddr.IPv6.isValid(v6)) return undefined;
    parsed = ipaddr.IPv6.parse(v6);
  } else return undefined;
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  const family = parsed.kind() === "ipv4" ? 4 : 6;
  return { family, bytes: Uint8Array.from(parsed.toByteArray()), text: parsed.toString() };
}

/**
 * An IPv6 text with its embedded IPv4 tail (`::ffff:192.0.2.7`) written as two hex groups,
 * the tail read as strictly as a plain IPv4 address; undefined when the tail is not one.
 * ipaddr.js 2.5 reads such tails loosely: `::1.2.3.4` (IPv4-compatible) came back as the
 * mapped `::ffff:1.2.3.4`, and leading zeros passed. The page's parser reads them this way
 * too (tests/address_test.ts compares them).
 */
function withHexTail(text: string): string | undefined {
  if (!text.includes(".")) return text;
  const cut = text.lastIndexOf(":");
  const tail = text.slice(cut + 1);
  if (!ipaddr.IPv4.isValidFourPartDecimal(tail)) return undefined;
  const [a, b, c, d] = ipaddr.IPv4.parse(tail).octets;
  const hex = `${text.slice(0, cut + 1)}${((a << 8) | b).toString(16)}:${
    ((c << 8) | d).toString(16)
  }`;
  // `::1.2.3.4` (IPv4-compatible, deprecated since RFC 4291) reads as IPv4 to some and as
  // IPv6 to others (sesame once took it for 1.2.3.4 in deny lists): refused, so that no
  // list or flag means one thing to the admin and another to sesame.
  if (ipaddr.IPv6.isValid(hex) && ipaddr.IPv6.parse(hex).parts.slice(0, 6).every((p) => p === 0)) {
    return undefined;
  }
  return hex;
}

/**
 * The IPv4 address an IPv4-compatible text names (`::1.2.3.4`, `0::1.2.3.4`: 96 zero bits,
 * then a dotted tail), which {@link parseAddress} refuses; undefined for any other text.
 *
 * @example
 * ```ts
 * import { ipv4Compatible } from "./address.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(ipv4Compatible("0::1.2.3.4"), "1.2.3.4");
 * assertEquals(ipv4Compatible("::ffff:1.2.3.4"), undefined); // mapped: parseAddress reads it
 * ```
 */
export function ipv4Compatible(text: string): string | undefined {
  const cut = text.lastIndexOf(":");
  const tail = text.slice(cut + 1);
  if (cut < 1 || !ipaddr.IPv4.isValidFourPartDecimal(tail)) return undefined;
  const head = `${text.slice(0, cut + 1)}0:0`;
  if (!ipaddr.IPv6.isValid(head) || ipaddr.IPv6.parse(head).parts.some((p) => p !== 0)) {
    return undefined;
  }
  return ipaddr.IPv4.parse(tail).toString();
}

/**
 * The form sockets report IPv4 peers in (dotted decimal, no leading zeros), parsed by
 * hand: the knock path parses sources, and this takes ~40 ns where ipaddr.js takes
 * ~1 µs. Anything else (leading zeros, IPv6, garbage) is left to ipaddr.js.
 */
function parseCanonicalIPv4(text: string): Address | undefined {
  const n = text.length;
  if (n < 7 || n > 15) return undefined;
  const bytes = new Uint8Array(4);
  let part = 0, value = 0, digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 46; /* . */
    if (c === 46) {
      if (digits === 0 || part === 4) return undefined;
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return undefined; // a leading zero
      value = value * 10 + c - 48;
      if (++digits > 3 || value > 255) return undefined;
    } else return undefined;
  }
  return part === 4 ? { family: 4, bytes, text } : undefined;
}

/**
 * Returns a copy of `bytes` with all bits past `prefix` cleared.
 *
 * @example
 * ```ts
 * import { maskBytes } from "./address.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals([...maskBytes(new Uint8Array([192, 0, 2, 7]), 24)], [192, 0, 2, 0]);
 * ```
 */
export function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = prefix - i * 8;
    out[i] = bits >= 8 ? bytes[i] : bits <= 0 ? 0 : bytes[i] & (0xff << (8 - bits));
  }
  return out;
}

/**
 * The canonical text of an address given as its 4 or 16 bytes: the same text
 * {@link parseAddress} gives (`2001:db8::`, never `2001:db8:0:0:0:0:0:0`), so keys built
 * from bytes match keys built from text.
 *
 * @example
 * ```ts
 * import { addressText } from "./address.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(addressText(new Uint8Array([32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])), "2001:db8::1");
 * assertEquals(addressText(new Uint8Array([192, 0, 2, 0])), "192.0.2.0");
 * ```
 */
export function addressText(bytes: Uint8Array | readonly number[]): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length !== 16) {
    throw new RangeError(`an address has 4 or 16 bytes, received ${bytes.length}`);
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return parseWithIpaddr(groups.join(":"))!.text;
}

/**
 * Parses `a.b.c.d/n`, `x::/n` or a bare address (a host prefix); `undefined` when invalid.
 *
 * @example
 * ```ts
 * import { parseCidr } from "./address.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const cidr = parseCidr("10.1.2.3/8")!;
 * assertEquals([cidr.family, [...cidr.bytes], cidr.prefix], [4, [10, 0, 0, 0], 8]);
 * ```
 */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!address) return undefined;
  const max = address.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return undefined;
    prefix = Number(digits);
    // A mapped prefix (::ffff:10.0.0.0/104) counts as its IPv4 prefix.
    if (address.family === 4 && text.includes(":")) prefix -= 96;
    if (prefix < 0 || prefix > max) return undefined;
  }
  return { family: address.family, bytes: maskBytes(address.bytes, prefix), prefix };
}

/** True when `address` lies inside `cidr`. */
export function cidrContains(cidr: Cidr, address: Address): boolean {
  if (cidr.family !== address.family) return false;
  const masked = maskBytes(address.bytes, cidr.prefix);
  for (let i = 0; i < masked.length; i++) if (masked[i] !== cidr.bytes[i]) return false;
  return true;
}

/**
 * The allow/deny decision for a source: deny wins over allow; with an allow list,
 * only listed sources pass. Empty lists let everyone through.
 *
 * @example
 * ```ts
 * import { isPermitted, parseAddress, parseCidr } from "./address.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const allow = [parseCidr("192.0.2.0/24")!];
 * assertEquals(isPermitted(parseAddress("192.0.2.7")!, allow, []), true);
 * assertEquals(isPermitted(parseAddress("198.51.100.1")!, allow, []), false);
 * ```
 */
export function isPermitted(
  address: Address,
  allow: readonly Cidr[],
  deny: readonly Cidr[],
): boolean {
  for (const c of deny) if (cidrContains(c, address)) return false;
  if (allow.length === 0) return true;
  for (const c of allow) if (cidrContains(c, address)) return true;
  return false;
}
