/**
 * Validation of one door: a rotating door (a secret, a pool, a rotation period, its users)
 * or a static, knockd-style one (a fixed sequence with decoys). Its `open` action is
 * checked in open_action.ts, an SPA door in spa_door.ts.
 * @module
 */
import { createHmac } from "node:crypto";
import { type Knock, parseKnock, type ProtocolMode } from "../knock.ts";
import { describe, parsePortList } from "../ports.ts";
import { decoysOf, rotatingPool, staticPool } from "../pool.ts";
import { decodeSecret } from "../secret.ts";
import { type Checker, isMapping, type KeyPath } from "./checker.ts";
import { DEFAULTS, DOOR_KEYS, DOOR_NAME, ROTATING_KEYS } from "./schema.ts";
import type { Door, DoorUser } from "./types.ts";
import { checkOpen } from "./open_action.ts";
import { checkSpaDoor } from "./spa_door.ts";

/**
 * Validates one door: a rotating door (secret and pool) or a static one (sequence).
 * Returns `undefined` when it is too broken to use; its issues are in `c`.
 */
export function validateDoor(
  c: Checker,
  name: string,
  raw: unknown,
  maxPool: number = DEFAULTS.maxPool,
): Door | undefined {
  const path = ["doors", name];
  if (!DOOR_NAME.test(name)) {
    c.fail(
      path,
      `door name must be 1–32 letters, digits, "_" or "-", starting with a letter or digit`,
      true,
    );
  }
  const d = c.map(raw, path, DOOR_KEYS);
  if (!d) return undefined;
  const at = (key: string) => [...path, key];
  const common = {
    name,
    sequenceTimeoutMs: c.duration(
      d.sequence_timeout,
      at("sequence_timeout"),
      DEFAULTS.sequenceTimeoutMs,
      1,
      3_600_000,
    ),
    open: d.open === undefined ? undefined : checkOpen(c, d.open, at("open")),
    allow: c.cidrs(d.allow, at("allow")),
    deny: c.cidrs(d.deny, at("deny")),
  };
  if (d.spa !== undefined) return checkSpaDoor(c, d, path, common);
  if (d.sequence !== undefined) {
    for (const key of ROTATING_KEYS) {
      if (d[key] !== undefined) {
        c.fail(at(key), `a static door (one with "sequence") takes no "${key}"`, true);
      }
    }
    const sequence = checkStaticSequence(c, d.sequence, at("sequence"));
    const decoys = c.int(d.decoys, at("decoys"), DEFAULTS.decoys, 0, 10);
    if (!sequence) return undefined;
    const decoyPorts = decoysOf(sequence, decoys);
    return {
      ...common,
      kind: "static",
      sequence,
      decoys: decoyPorts,
      pool: staticPool(sequence, decoyPorts),
    };
  }
  if (d.decoys !== undefined) c.fail(at("decoys"), `only a static door takes "decoys"`, true);

  const users = d.users === undefined ? undefined : checkUsers(c, d, path);
  const secret = d.users === undefined ? checkSecret(c, d, path) : users?.[0]?.secret;
  const candidates = checkCandidates(c, d, path, maxPool);
  const protocol = checkProtocolMode(c, d.protocol, at("protocol"));
  const length = c.int(d.length, at("length"), DEFAULTS.length, 1, 16);
  if (candidates && length > candidates.length) {
    c.fail(
      at("length"),
      `must be at most the ${candidates.length} ports of the pool, received ${length}`,
    );
  }
  const prefix = d.source_prefix === undefined
    ? {}
    : c.map(d.source_prefix, at("source_prefix"), ["ipv4", "ipv6"]) ?? {};
  if (!secret || !candidates) return undefined;
  const bindSource = c.bool(d.bind_source, at("bind_source"), false);
  return {
    ...common,
    kind: "rotating",
    secret,
    fingerprint: secretFingerprint(secret),
    secretFile: users
      ? users[0].secretFile
      : typeof d.secret_file === "string"
      ? d.secret_file
      : undefined,
    ...(users ? { users } : {}),
    candidates,
    length,
    protocol,
    periodMs: c.duration(d.period, at("period"), DEFAULTS.periodMs, 1000, 366 * 86_400_000),
    skew: c.int(d.skew, at("skew"), DEFAULTS.skew, 0, 10),
    bindSource,
    sourcePrefix: {
      ipv4: c.int(
        prefix.ipv4,
        [...at("source_prefix"), "ipv4"],
        DEFAULTS.sourcePrefix.ipv4,
        0,
        32,
      ),
      ipv6: c.int(
        prefix.ipv6,
        [...at("source_prefix"), "ipv6"],
        DEFAULTS.sourcePrefix.ipv6,
        0,
        128,
      ),
    },
    pool: rotatingPool(candidates, protocol),
  };
}

/**
 * `users: { alice: { secret_file: ... }, bob: { secret: ... } }`: one door, a secret per
 * user. Names follow the door-name rules; two users with one secret are refused (their
 * codes could not be told apart).
 */
function checkUsers(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
): DoorUser[] | undefined {
  const at = [...path, "users"];
  for (const key of ["secret", "secret_file"]) {
    if (d[key] !== undefined) {
      c.fail(
        [...path, key],
        `a door with "users" takes no "${key}": each user has their own`,
        true,
      );
    }
  }
  const raw = isMapping(d.users) ? d.users : undefined;
  if (!raw || Object.keys(raw).length === 0) {
    return c.fail(
      at,
      `must map user names to their secrets, such as { alice: { secret_file: /etc/sesame/alice.key } }, received ${
        describe(d.users)
      }`,
    );
  }
  const users: DoorUser[] = [];
  const byFingerprint = new Map<string, string>();
  for (const [name, value] of Object.entries(raw)) {
    const userPath = [...at, name];
    if (!DOOR_NAME.test(name)) {
      c.fail(
        userPath,
        `user name must be 1–32 letters, digits, "_" or "-", starting with a letter or digit`,
        true,
      );
      continue;
    }
    const u = c.map(value, userPath, ["secret", "secret_file"]);
    if (!u) continue;
    const secret = checkSecret(c, u, userPath, "a user");
    if (!secret) continue;
    const fingerprint = secretFingerprint(secret);
    const twin = byFingerprint.get(fingerprint);
    if (twin !== undefined) {
      c.fail(
        userPath,
        `has the same secret as user "${twin}": every user needs a secret of their own (sesame keygen)`,
        true,
      );
      continue;
    }
    byFingerprint.set(fingerprint, name);
    users.push({
      name,
      secret,
      fingerprint,
      ...(typeof u.secret_file === "string" ? { secretFile: u.secret_file } : {}),
    });
  }
  return users.length === Object.keys(raw).length ? users : undefined;
}

function checkSecret(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
  who = "a rotating door",
): Uint8Array | undefined {
  const hasInline = d.secret !== undefined;
  const hasFile = d.secret_file !== undefined;
  if (hasInline === hasFile) {
    return c.fail(
      path,
      who === "a rotating door"
        ? `a rotating door needs exactly one of "secret", "secret_file" or "users" (or "sequence" for a static door)`
        : `${who} needs exactly one of "secret" or "secret_file"`,
      true,
    );
  }
  let text: unknown = d.secret;
  const key = hasInline ? "secret" : "secret_file";
  if (hasFile) {
    if (typeof d.secret_file !== "string" || d.secret_file === "") {
      return c.fail(
        [...path, key],
        `must be a file path, received ${describe(d.secret_file)}`,
      );
    }
    if (!c.options.readSecretFile) {
      return c.fail([...path, key], "secret files cannot be read here");
    }
    try {
      text = c.options.readSecretFile(d.secret_file).trim();
    } catch (e) {
      return c.fail(
        [...path, key],
        `cannot read ${JSON.stringify(d.secret_file)}: ${(e as Error).message}`,
      );
    }
  }
  // Never echo the value: it is a secret, even when malformed.
  const bytes = typeof text === "string" ? decodeSecret(text) : undefined;
  if (!bytes) {
    return c.fail(
      [...path, key],
      "must be base64url text (as `sesame keygen` prints) of at least 16 bytes",
    );
  }
  return bytes;
}

function checkCandidates(
  c: Checker,
  d: Record<string, unknown>,
  path: KeyPath,
  maxPool: number,
): number[] | undefined {
  if (d.ports === undefined) {
    return c.fail(
      path,
      `a rotating door needs "ports", its pool, such as "20000-20999"`,
      true,
    );
  }
  const ports = parsePortList(d.ports);
  if (!ports.ok) return c.fail([...path, "ports"], ports.error);
  let excluded: number[] = [];
  if (d.exclude !== undefined) {
    const ex = parsePortList(d.exclude);
    if (!ex.ok) return c.fail([...path, "exclude"], ex.error);
    excluded = ex.ports;
  }
  const skip = new Set(excluded);
  const candidates = ports.ports.filter((p) => !skip.has(p));
  if (candidates.length > maxPool) {
    // Every pool port listens, so that a scan never narrows the code down: the pool must bind.
    return c.fail(
      [...path, "ports"],
      `must be at most ${maxPool} ports (every pool port listens, and ${maxPool} TCP and ${maxPool} UDP sockets bind in under a second on 2 cores; listen.capture: nflog binds none and takes larger pools), received ${candidates.length}`,
    );
  }
  if (candidates.length < 2) {
    return c.fail(
      [...path, "ports"],
      `must leave at least 2 ports after "exclude", received ${candidates.length}`,
    );
  }
  return candidates;
}

function checkProtocolMode(c: Checker, value: unknown, path: KeyPath): ProtocolMode {
  if (value === undefined) return DEFAULTS.protocol;
  if (value === "tcp" || value === "udp" || value === "mixed") return value;
  return c.fail(path, `must be tcp, udp or mixed, received ${describe(value)}`) ??
    DEFAULTS.protocol;
}

function checkStaticSequence(c: Checker, value: unknown, path: KeyPath): Knock[] | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.length > 32) {
    return c.fail(
      path,
      `must be a list of 1–32 knocks such as [7000, "8000/udp", 9000], received ${describe(value)}`,
    );
  }
  const knocks: Knock[] = [];
  value.forEach((item, i) => {
    const knock = parseKnock(item);
    if (knock) knocks.push(knock);
    else {c.fail(
        [...path, i],
        `must be a port with an optional protocol ("8000", "8000/udp", "8000:tcp"), received ${
          describe(item)
        }`,
      );}
  });
  return knocks.length === value.length ? knocks : undefined;
}

/**
 * The fingerprint of a secret: names it (in used codes, logs, status) without revealing
 * it. The first 12 bytes of HMAC-SHA256(secret, "sesame/fingerprint/v1"), base64url.
 *
 * @example
 * ```ts
 * import { secretFingerprint } from "./door.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(secretFingerprint(new Uint8Array(32)).length, 16);
 * ```
 */
export function secretFingerprint(secret: Uint8Array): string {
  return createHmac("sha256", secret).update("sesame/fingerprint/v1").digest().subarray(0, 12)
    .toString("base64url");
}
