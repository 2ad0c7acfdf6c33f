/**
 * fwknop's single packet authorization format (libfko 2.6, symmetric keys), encode and
 * decode, pure. A packet is one line of base64: AES-256-CBC (key and IV from OpenSSL's
 * EVP_BytesToKey with MD5 over the raw key and an 8-byte salt) of
 * `rand:b64(user):timestamp:version:type:b64(message)[:client_timeout]:digest`, then an
 * HMAC over the base64 ciphertext, appended. The constant `U2FsdGVkX1` ("Salted__" in
 * base64) is left off the wire. The receiver checks the HMAC, in constant time, before
 * anything else. See docs/SPA.md.
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  randomInt,
  timingSafeEqual,
} from "node:crypto";
import { Buffer } from "node:buffer";

/** HMAC digests fwknop offers (the type is not on the wire: each door names its own). */
export type HmacDigest = "md5" | "sha1" | "sha256" | "sha384" | "sha512" | "sha3-256" | "sha3-512";

/** The HMAC digests, as config values. */
export const HMAC_DIGESTS: readonly HmacDigest[] = [
  "sha256",
  "sha512",
  "sha384",
  "sha1",
  "md5",
  "sha3-256",
  "sha3-512",
];

/** A door's keys: AES (raw bytes of KEY_BASE64) and HMAC (raw bytes of HMAC_KEY_BASE64). */
export interface SpaKeys {
  /** The AES key's raw bytes (KEY_BASE64 decoded). */
  readonly encryption: Uint8Array;
  /** The HMAC key's raw bytes (HMAC_KEY_BASE64 decoded). */
  readonly hmac: Uint8Array;
  /** The HMAC's digest. */
  readonly hmacDigest: HmacDigest;
}

/** The fields of a decoded packet. */
export interface SpaPacket {
  /** 16 random decimal digits. */
  readonly random: string;
  /** The client's user name (fwknop sends the local login; sesame does not check it). */
  readonly user: string;
  /** When the client made it, seconds since the epoch. */
  readonly timestamp: number;
  /** libfko's version, `3.0.0`. */
  readonly version: string;
  /** 1 access, 3 access with a client timeout; 0 command, 2/4/5/6 NAT kinds. */
  readonly type: number;
  /** For access: `ADDRESS,proto/port[,proto/port…]`. */
  readonly message: string;
  /** Seconds the client asks the access to last (type 3). */
  readonly clientTimeout?: number;
}

/** Why a packet did not decode. */
export type SpaDecodeError = "size" | "hmac" | "decrypt" | "format" | "digest";

/** Packets fwknopd accepts: at least 140 and at most 1500 bytes (400 and more are GnuPG). */
export const MIN_PACKET = 140;
/** Longest packet read. */
export const MAX_PACKET = 1500;
/** Symmetric packets are shorter than this; longer ones are fwknop's GnuPG mode. */
export const MAX_SYMMETRIC = 400;
/** "Salted__" in base64, left off the wire. */
const SALTED_B64 = "U2FsdGVkX1";
const B64 = /^[A-Za-z0-9+/]+$/;

const HMAC_B64_LENGTH: Record<HmacDigest, number> = {
  md5: 22,
  sha1: 27,
  sha256: 43,
  sha384: 64,
  sha512: 86,
  "sha3-256": 43,
  "sha3-512": 86,
};

/** Plaintext digests by base64 length; SHA-256 and SHA3-256 share a length (both tried). */
const DIGESTS_BY_LENGTH: Record<number, readonly string[]> = {
  22: ["md5"],
  27: ["sha1"],
  43: ["sha256", "sha3-256"],
  64: ["sha384"],
  86: ["sha512", "sha3-512"],
};

/** Base64 without the `=` padding, as fwknop writes it. */
export function b64(data: Uint8Array | string): string {
  return Buffer.from(data).toString("base64").replace(/=+$/, "");
}

function unb64(text: string): Buffer {
  return Buffer.from(text + "=".repeat((4 - text.length % 4) % 4), "base64");
}

/** OpenSSL's EVP_BytesToKey with MD5 and one round: AES-256 key and IV from key and salt. */
function keyAndIv(key: Uint8Array, salt: Uint8Array): { key: Buffer; iv: Buffer } {
  const all = Buffer.alloc(48);
  let last = Buffer.alloc(0);
  for (let at = 0; at < 48; at += 16) {
    last = Buffer.from(createHash("md5").update(last).update(key).update(salt).digest());
    last.copy(all, at);
  }
  return { key: all.subarray(0, 32), iv: all.subarray(32, 48) };
}

/**
 * Makes a packet as fwknop's client does.
 *
 * @example A packet decodes back to its fields
 * ```ts
 * import { decodeSpa, encodeSpa } from "./fko.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const keys = { encryption: new Uint8Array(32).fill(1), hmac: new Uint8Array(64).fill(2), hmacDigest: "sha256" as const };
 * const wire = encodeSpa({ user: "alice", timestamp: 1_800_000_000, type: 1, message: "0.0.0.0,tcp/22" }, keys);
 * const decoded = decodeSpa(wire, keys);
 * assertEquals(decoded.ok && decoded.packet.message, "0.0.0.0,tcp/22");
 * ```
 */
export function encodeSpa(
  fields: {
    user: string;
    timestamp: number;
    type: 1 | 3;
    message: string;
    clientTimeout?: number;
  },
  keys: SpaKeys,
): string {
  const random = String(randomInt(1, 10)) + String(randomInt(0, 1e7)).padStart(7, "0") +
    String(randomInt(0, 1e8)).padStart(8, "0");
  const parts = [
    random,
    b64(fields.user),
    String(Math.floor(fields.timestamp)),
    "3.0.0",
    String(fields.type),
    b64(fields.message),
  ];
  if (fields.type === 3) parts.push(String(fields.clientTimeout ?? 0));
  const encoded = parts.join(":");
  const plaintext = `${encoded}:${b64(createHash("sha256").update(encoded).digest())}`;
  const salt = randomBytes(8);
  const { key, iv } = keyAndIv(keys.encryption, salt);
  const cipher = createCipheriv("aes-256-cbc", key, iv);
  const body = Buffer.concat([
    Buffer.from("Salted__"),
    salt,
    cipher.update(plaintext, "utf8"),
    cipher.final(),
  ]);
  const data = b64(body);
  const mac = b64(createHmac(keys.hmacDigest, keys.hmac).update(data).digest());
  return data.slice(SALTED_B64.length) + mac;
}

/**
 * True when `wire` carries a valid HMAC under `keys` (constant-time comparison). The one
 * check made per door sharing a port; nothing else is looked at before it passes.
 */
export function verifySpaHmac(wire: string, keys: SpaKeys): boolean {
  const length = HMAC_B64_LENGTH[keys.hmacDigest];
  if (wire.length <= length) return false;
  const data = SALTED_B64 + wire.slice(0, wire.length - length);
  const expected = Buffer.from(b64(createHmac(keys.hmacDigest, keys.hmac).update(data).digest()));
  const given = Buffer.from(wire.slice(wire.length - length));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Decodes a packet: size and alphabet, HMAC (constant time), decryption, fields, digest.
 *
 * @example Another door's keys fail at the HMAC, before any decryption
 * ```ts
 * import { decodeSpa, encodeSpa } from "./fko.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const keys = { encryption: new Uint8Array(32).fill(1), hmac: new Uint8Array(64).fill(2), hmacDigest: "sha256" as const };
 * const wire = encodeSpa({ user: "a", timestamp: 1, type: 1, message: "0.0.0.0,tcp/22" }, keys);
 * assertEquals(decodeSpa(wire, { ...keys, hmac: new Uint8Array(64) }), { ok: false, error: "hmac" });
 * ```
 */
export function decodeSpa(
  wire: string,
  keys: SpaKeys,
): { ok: true; packet: SpaPacket } | { ok: false; error: SpaDecodeError } {
  if (wire.length < MIN_PACKET || wire.length >= MAX_SYMMETRIC || !B64.test(wire)) {
    return { ok: false, error: "size" };
  }
  if (!verifySpaHmac(wire, keys)) return { ok: false, error: "hmac" };
  const data = unb64(SALTED_B64 + wire.slice(0, wire.length - HMAC_B64_LENGTH[keys.hmacDigest]));
  if (data.length < 32 || data.subarray(0, 8).toString("latin1") !== "Salted__") {
    return { ok: false, error: "decrypt" };
  }
  let plaintext: string;
  try {
    const { key, iv } = keyAndIv(keys.encryption, data.subarray(8, 16));
    const decipher = createDecipheriv("aes-256-cbc", key, iv);
    plaintext = Buffer.concat([decipher.update(data.subarray(16)), decipher.final()]).toString(
      "latin1",
    );
  } catch {
    return { ok: false, error: "decrypt" };
  }
  const cut = plaintext.lastIndexOf(":");
  if (cut < 0) return { ok: false, error: "format" };
  const encoded = plaintext.slice(0, cut), digest = plaintext.slice(cut + 1);
  const algorithms = DIGESTS_BY_LENGTH[digest.length] ?? [];
  if (!algorithms.some((a) => b64(createHash(a).update(encoded).digest()) === digest)) {
    return { ok: false, error: "digest" };
  }
  const f = encoded.split(":");
  if (f.length < 6 || !/^\d{16}$/.test(f[0]) || !/^\d{1,20}$/.test(f[2]) || !/^\d$/.test(f[4])) {
    return { ok: false, error: "format" };
  }
  const type = Number(f[4]);
  // Access (1): nothing more, or a server_auth; client timeout (3): the timeout last.
  const rest = f.slice(6);
  let clientTimeout: number | undefined;
  if (type === 3) {
    const t = rest.at(-1);
    if (t === undefined || !/^\d{1,10}$/.test(t)) return { ok: false, error: "format" };
    clientTimeout = Number(t);
  }
  return {
    ok: true,
    packet: {
      random: f[0],
      user: unb64(f[1]).toString("utf8"),
      timestamp: Number(f[2]),
      version: f[3],
      type,
      message: unb64(f[5]).toString("utf8"),
      ...(clientTimeout === undefined ? {} : { clientTimeout }),
    },
  };
}
