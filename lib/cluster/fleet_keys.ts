/**
 * How sesame lays its state out in etcd, pure: the keys of used-code marks, used SPA
 * packets and shared door grants under the cluster's prefix, fixed-width counters (etcd
 * compares values byte by byte), and the grant records nodes read back. No secret goes
 * there: a code's owner is named by the secret's fingerprint.
 *
 * ```
 * PREFIX marks/DOOR/FINGERPRINT/SOURCE-PREFIX   00000000000058012345   (no lease: kept)
 * PREFIX spa/DIGEST                             ms of the packet       (leased)
 * PREFIX doors/GROUP/DOOR/SOURCE                a grant, JSON          (leased)
 * PREFIX doors/GROUP/DOOR/SOURCE/NODE           a node's confirmation  (leased)
 * ```
 * Every segment is URI-encoded, so none holds a "/".
 * @module
 */
import { parseAddress } from "../address.ts";
import type { CodeOwner } from "../engine/used_codes.ts";
import { DOOR_NAME } from "../config/schema.ts";

/** Digits of a counter in etcd: 2^64 − 1 has 20. */
export const COUNTER_WIDTH = 20;

/**
 * A counter as etcd keeps it: fixed width, so the byte order etcd compares in is the
 * numeric order.
 *
 * @example
 * ```ts
 * import { counterText } from "./fleet_keys.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(counterText(9) < counterText(10), true);
 * assertEquals(counterText(9), "00000000000000000009");
 * ```
 */
export function counterText(counter: number): string {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`bad counter ${counter}`);
  return String(counter).padStart(COUNTER_WIDTH, "0");
}

/** A counter read back from etcd, or `undefined` when it is not one sesame wrote. */
export function parseCounter(text: string): number | undefined {
  if (!/^\d{20}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

const seg = encodeURIComponent;

/** The key of a code owner's mark: door, secret fingerprint, source prefix (not the user). */
export function markKey(prefix: string, owner: CodeOwner): string {
  return `${prefix}marks/${seg(owner.door)}/${seg(owner.secret)}/${seg(owner.prefix ?? "-")}`;
}

/** The key of a used SPA packet. */
export function spaKey(prefix: string, digest: string): string {
  return `${prefix}spa/${seg(digest)}`;
}

/** Where every grant and confirmation lives (what nodes watch). */
export function doorsPrefix(prefix: string): string {
  return `${prefix}doors/`;
}

/** The key of a shared door's grant for one source. */
export function grantKey(prefix: string, group: string, door: string, source: string): string {
  return `${doorsPrefix(prefix)}${seg(group)}/${seg(door)}/${seg(source)}`;
}

/** A node's confirmation that it mirrored a grant. */
export function confirmKey(grant: string, node: string): string {
  return `${grant}/${seg(node)}`;
}

/** A shared door open for one source: what the deciding node writes. */
export interface Grant {
  /** The group whose nodes mirror it. */
  readonly group: string;
  /** The door's name (the same on every gateway of the group). */
  readonly door: string;
  /** The source it is open for (canonical address text). */
  readonly source: string;
  /** On a door with users: whose code opened it. */
  readonly user?: string;
  /** When it closes, ms since the epoch: every node closes it then, whatever the lease. */
  readonly until: number;
  /** The node that decided it. */
  readonly node: string;
  /** Revoked (by `revokedBy`): every node closes it now. */
  readonly revoked?: boolean;
  /** The node that revoked it. */
  readonly revokedBy?: string;
}

/** The value of a grant key. */
export function grantValue(grant: Grant): string {
  return JSON.stringify(grant);
}

/** What a key under {@link doorsPrefix} is: a grant, a confirmation, or neither. */
export type DoorsEntry =
  | { readonly kind: "grant"; readonly key: string; readonly grant?: Grant }
  | { readonly kind: "confirm"; readonly grantKey: string; readonly node: string }
  | { readonly kind: "other" };

/**
 * Reads a key (and value) under {@link doorsPrefix}. A grant whose value is not a
 * well-formed grant for the key's own group, door and source comes back without
 * `grant`: it is never honoured (a writer of the prefix gets no say beyond its fields).
 *
 * @example
 * ```ts
 * import { grantKey, grantValue, readDoorsEntry } from "./fleet_keys.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const grant = { group: "web", door: "ssh", source: "2001:db8::7", until: 5000, node: "a" };
 * const key = grantKey("/sesame/", "web", "ssh", "2001:db8::7");
 * const entry = readDoorsEntry("/sesame/", key, grantValue(grant));
 * assertEquals(entry.kind === "grant" && entry.grant?.until, 5000);
 * const forged = readDoorsEntry("/sesame/", key, grantValue({ ...grant, door: "db" }));
 * assertEquals(forged.kind === "grant" && forged.grant, undefined); // not its own key's door
 * ```
 */
export function readDoorsEntry(prefix: string, key: string, value: string): DoorsEntry {
  const base = doorsPrefix(prefix);
  if (!key.startsWith(base)) return { kind: "other" };
  let parts: string[];
  try {
    parts = key.slice(base.length).split("/").map(decodeURIComponent);
  } catch {
    return { kind: "other" }; // not a key sesame wrote
  }
  if (parts.length === 4) {
    return {
      kind: "confirm",
      grantKey: `${base}${parts.slice(0, 3).map(seg).join("/")}`,
      node: parts[3],
    };
  }
  if (parts.length !== 3) return { kind: "other" };
  const [group, door, source] = parts;
  return { kind: "grant", key, grant: checkGrant(value, group, door, source) };
}

function checkGrant(value: string, group: string, door: string, source: string): Grant | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const name = (v: unknown) => typeof v === "string" && DOOR_NAME.test(v);
  if (
    raw.group !== group || raw.door !== door || raw.source !== source || !name(door) ||
    !name(raw.node) || parseAddress(source)?.text !== source ||
    typeof raw.until !== "number" || !Number.isSafeInteger(raw.until) ||
    (raw.user !== undefined && !name(raw.user))
  ) return undefined;
  return {
    group,
    door,
    source,
    ...(raw.user === undefined ? {} : { user: raw.user as string }),
    until: raw.until,
    node: raw.node as string,
    ...(raw.revoked === true ? { revoked: true } : {}),
    ...(name(raw.revokedBy) ? { revokedBy: raw.revokedBy as string } : {}),
  };
}
