/**
 * Secrets as text: base64url (RFC 4648 §5), padding optional. `sesame keygen` prints this form.
 * @module
 */

/** Fewest bytes a secret may have. */
export const MIN_SECRET_BYTES = 16;

/**
 * Decodes a base64url secret; `undefined` when the text is not base64url or too short.
 *
 * @example
 * ```ts
 * import { decodeSecret, encodeSecret } from "./secret.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(decodeSecret(encodeSecret(new Uint8Array(32)))?.length, 32);
 * ```
 */
export function decodeSecret(text: string): Uint8Array | undefined {
  const body = text.replace(/=+$/, "");
  if (!/^[A-Za-z0-9_-]+$/.test(body) || body.length % 4 === 1) return undefined;
  const binary = atob(body.replaceAll("-", "+").replaceAll("_", "/"));
  if (binary.length < MIN_SECRET_BYTES) return undefined;
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

/**
 * Encodes bytes as unpadded base64url.
 *
 * @example
 * ```ts
 * import { encodeSecret } from "./secret.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(encodeSecret(new Uint8Array([251, 255])), "-_8");
 * ```
 */
export function encodeSecret(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * A fresh random secret of `bytes` bytes (default 32), base64url.
 *
 * @example
 * ```ts
 * import { generateSecret } from "./secret.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(generateSecret().length, 43);
 * ```
 */
export function generateSecret(bytes = 32): string {
  return encodeSecret(crypto.getRandomValues(new Uint8Array(bytes)));
}
