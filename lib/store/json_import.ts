/**
 * The JSON state file of earlier sesame versions, read once to import it into the SQLite
 * store. Version 1 files (from before secret fingerprints) are read too: their used codes
 * count for the door's current secret (fail closed).
 * @module
 */
import { addressText } from "../address.ts";
import { StateFileError } from "../errors.ts";
import type { FirewallGrant, OpenRecord, StoredCode, StoredState } from "./store.ts";

const VERSION = 2;

/**
 * Parses state file text (version 1 or 2); throws {@link StateFileError} on anything else
 * (truncated, edited, another program's file).
 *
 * @example
 * ```ts
 * import { parseState } from "./json_import.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const state = parseState('{"version":1,"used":[["ssh/5",1000]],"open":[]}');
 * assertEquals(state.used, [{ door: "ssh", counter: 5 }]);
 * ```
 */
export function parseState(text: string): StoredState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(`not valid JSON (truncated?): ${(e as Error).message}`, { cause: e });
  }
  const d = data as { version?: unknown; used?: unknown; open?: unknown };
  if (typeof d !== "object" || d === null || (d.version !== 1 && d.version !== VERSION)) {
    throw new StateFileError(`not a version 1 or ${VERSION} sesame state file`);
  }
  if (!Array.isArray(d.used) || !Array.isArray(d.open)) {
    throw new StateFileError(`"used" and "open" must be lists`);
  }
  const used = d.used.map((item) => d.version === 1 ? legacyCode(item) : storedCode(item));
  const open = (d.open as Record<string, unknown>[]).map(openRecord);
  return { used, open };
}

function storedCode(item: unknown): StoredCode {
  const c = item as Record<string, unknown>;
  if (
    typeof c !== "object" || c === null || typeof c.door !== "string" ||
    !Number.isSafeInteger(c.counter) || !(c.secret === undefined || typeof c.secret === "string") ||
    !(c.prefix === undefined || typeof c.prefix === "string")
  ) throw new StateFileError(`malformed used code ${JSON.stringify(item)}`);
  return {
    door: c.door,
    counter: c.counter as number,
    ...(c.secret === undefined ? {} : { secret: c.secret as string }),
    ...(c.prefix === undefined ? {} : { prefix: c.prefix as string }),
  };
}

/** Version 1 keys: `door/counter`, `door/counter/4:a.b.c.d/prefix` (bind_source), `door/<=counter`. */
function legacyCode(item: unknown): StoredCode {
  const bad = () => new StateFileError(`malformed used code ${JSON.stringify(item)}`);
  if (!Array.isArray(item) || typeof item[0] !== "string" || !Number.isFinite(item[1])) throw bad();
  const m = /^([A-Za-z0-9_-]+)\/(<=)?(-?\d+)(?:\/([46]):([\d.]+)\/(\d+))?$/.exec(item[0]);
  if (!m) throw bad();
  const code = { door: m[1], counter: Number(m[3]) };
  if (!Number.isSafeInteger(code.counter)) throw bad();
  if (!m[4]) return code;
  const bytes = m[5].split(".").map(Number);
  if (bytes.length !== (m[4] === "4" ? 4 : 16) || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw bad();
  }
  // The text the engine's used-code key has (compressed IPv6): a mark must match its code.
  return { ...code, prefix: `${addressText(bytes)}/${m[6]}` };
}

function openRecord(r: Record<string, unknown>): OpenRecord {
  const source = r?.source ?? r?.ip; // version 1 called it "ip"
  const ok = typeof r === "object" && r !== null && typeof r.door === "string" &&
    typeof source === "string" && Number.isFinite(r.until) &&
    (r.close === null || (Array.isArray(r.close) && r.close.every((a) => typeof a === "string")));
  if (!ok || !(r.firewall === undefined || isGrant(r.firewall))) {
    throw new StateFileError(`malformed open door ${JSON.stringify(r)}`);
  }
  return {
    door: r.door as string,
    source: source as string,
    until: r.until as number,
    close: r.close as string[] | null,
    ...(r.firewall ? { firewall: r.firewall as FirewallGrant } : {}),
  };
}

function isGrant(value: unknown): value is FirewallGrant {
  const g = value as FirewallGrant;
  return typeof g === "object" && g !== null && (g.kind === "nft" || g.kind === "iptables") &&
    (g.protocol === "tcp" || g.protocol === "udp") && Array.isArray(g.ports) &&
    g.ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535);
}
