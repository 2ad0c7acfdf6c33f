/**
 * Validation of an SPA door: one opened by a single fwknop-compatible packet (its port, its
 * keys inline or in files, the HMAC digest, the packet's age, the access it may ask).
 * @module
 */
import { describe } from "../ports.ts";
import { HMAC_DIGESTS, type HmacDigest } from "../spa/fko.ts";
import { MAX_MAX_AGE_MS } from "../spa/gate.ts";
import type { Checker, KeyPath } from "./checker.ts";
import { ROTATING_KEYS, SPA_KEYS } from "./schema.ts";
import type { SpaDoor } from "./types.ts";

/**
 * `spa: { port, key_base64 | key_file, hmac_key_base64 | hmac_key_file, hmac_digest,
 * max_age, allow_other_address, access }`: a door opened by one fwknop packet. Keys are
 * fwknop's KEY_BASE64 and HMAC_KEY_BASE64 (standard base64), never echoed.
 */
export function checkSpaDoor(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
  common: Omit<SpaDoor, "kind" | "spa" | "pool">,
): SpaDoor | undefined {
  for (const key of [...ROTATING_KEYS, "sequence", "decoys"]) {
    if (d[key] !== undefined) {
      c.fail([...path, key], `an SPA door (one with "spa") takes no "${key}"`, true);
    }
  }
  const at = [...path, "spa"];
  const s = c.map(d.spa, at, SPA_KEYS);
  if (!s) return undefined;
  const port = c.int(s.port, [...at, "port"], 62201, 1, 65535);
  const key = spaKey(c, s, at, "key", 16);
  const hmac = spaKey(c, s, at, "hmac_key", 16);
  const digest = s.hmac_digest ?? "sha256";
  if (!HMAC_DIGESTS.includes(digest as HmacDigest)) {
    c.fail(
      [...at, "hmac_digest"],
      `must be one of ${HMAC_DIGESTS.join(", ")}, received ${describe(digest)}`,
    );
  }
  const access: { protocol: "tcp" | "udp"; port: number }[] = [];
  const rawAccess = s.access === undefined ? [] : s.access;
  if (!Array.isArray(rawAccess)) {
    c.fail([...at, "access"], `must be a list such as ["tcp/22"], received ${describe(rawAccess)}`);
  } else {
    rawAccess.forEach((a, i) => {
      const m = typeof a === "string" ? /^(tcp|udp)\/(\d{1,5})$/.exec(a) : null;
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        c.fail([...at, "access", i], `must be "tcp/PORT" or "udp/PORT", received ${describe(a)}`);
      } else access.push({ protocol: m[1] as "tcp" | "udp", port: Number(m[2]) });
    });
  }
  const spec = common.open?.nft ?? common.open?.iptables;
  const within = (a: { protocol: string; port: number }) =>
    !spec || spec.sets !== undefined ||
    (spec.protocol === a.protocol &&
      (spec.gateway?.kind === "forward" ? spec.gateway.toPorts : spec.ports).includes(a.port));
  const outside = access.find((a) => !within(a));
  if (outside) {
    c.fail(
      [...at, "access"],
      `${outside.protocol}/${outside.port} is not among the ports this door opens: clients asking for it would be refused`,
    );
  }
  const maxAgeMs = c.duration(s.max_age, [...at, "max_age"], 120_000, 1000, MAX_MAX_AGE_MS);
  const allowOtherAddress = c.bool(s.allow_other_address, [...at, "allow_other_address"], false);
  const requireSourceAddress = c.bool(
    s.require_source_address,
    [...at, "require_source_address"],
    false,
  );
  if (!key || !hmac) return undefined;
  return {
    ...common,
    kind: "spa",
    spa: {
      port,
      keys: { encryption: key.bytes, hmac: hmac.bytes, hmacDigest: digest as HmacDigest },
      keyFiles: [key.file, hmac.file].filter((f): f is string => f !== undefined),
      maxAgeMs,
      allowOtherAddress,
      requireSourceAddress,
      access,
    },
    pool: { tcp: [], udp: [] },
  };
}

/** One SPA key: `NAME_base64` inline or `NAME_file` holding it; at least `min` bytes. */
function spaKey(
  c: Checker,
  s: Record<string, unknown>,
  at: KeyPath,
  name: "key" | "hmac_key",
  min: number,
): { bytes: Uint8Array; file?: string } | undefined {
  const inline = s[`${name}_base64`], file = s[`${name}_file`];
  if ((inline === undefined) === (file === undefined)) {
    return c.fail(
      at,
      `needs exactly one of "${name}_base64" or "${name}_file" (fwknop's ${name.toUpperCase()}_BASE64; sesame keygen --spa makes them)`,
      true,
    );
  }
  const where = [...at, inline === undefined ? `${name}_file` : `${name}_base64`];
  let text = inline;
  if (typeof file === "string") {
    if (!c.options.readSecretFile) return c.fail(where, "key files cannot be read here");
    try {
      text = c.options.readSecretFile(file).trim();
    } catch (e) {
      return c.fail(where, `cannot read ${JSON.stringify(file)}: ${(e as Error).message}`);
    }
    // fwknop --key-gen's (and sesame keygen --spa's) format: "KEY_BASE64: …" and
    // "HMAC_KEY_BASE64: …" lines, so one file may hold both keys.
    const label = name === "key" ? "KEY_BASE64" : "HMAC_KEY_BASE64";
    const line = (text as string).split("\n").map((l) => l.trim()).find((l) =>
      l.startsWith(`${label}:`) || l.startsWith(`${label} `)
    );
    if (line) text = line.slice(label.length).replace(/^[:\s]+/, "").trim();
  }
  // Never echo the value: it is a key, even when malformed.
  const bytes = typeof text === "string" && /^[A-Za-z0-9+/]+={0,2}$/.test(text)
    ? Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0))
    : undefined;
  if (!bytes || bytes.length < min) {
    return c.fail(where, `must be base64 (as fwknop --key-gen prints) of at least ${min} bytes`);
  }
  return { bytes, ...(typeof file === "string" ? { file } : {}) };
}
