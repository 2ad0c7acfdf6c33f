/**
 * The state file: used codes and open doors as one JSON document, rewritten whole on
 * every commit (temp file, fsync, rename), commits coalesced while one write runs.
 * Version 1 files (from before secret fingerprints) are read too: their used codes count
 * for the door's current secret (fail closed).
 * @module
 */
import { StateFileError } from "../errors.ts";
import {
  applyChanges,
  type FirewallGrant,
  type LoadResult,
  type OpenRecord,
  type Store,
  type StoreChanges,
  type StoredCode,
  type StoredState,
} from "./store.ts";

const VERSION = 2;

/**
 * Parses state file text (version 1 or 2); throws {@link StateFileError} on anything else
 * (truncated, edited, another program's file).
 *
 * @example
 * ```ts
 * import { parseState } from "./json_file.ts";
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
    throw new StateFileError(`not valid JSON (truncated?): ${(e as Error).message}`);
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
  if (!m[4]) return code;
  const bytes = m[5].split(".").map(Number);
  const text = m[4] === "4"
    ? bytes.join(".")
    : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16))
      .join(":");
  return { ...code, prefix: `${text}/${m[6]}` };
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

/** Serialises a state (version 2). */
export function formatState(state: StoredState): string {
  return JSON.stringify({ version: VERSION, used: state.used, open: state.open });
}

/**
 * The state file on disk.
 *
 * @example
 * ```ts
 * import { JsonFileStore } from "./json_file.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const path = `${await Deno.makeTempDir()}/state.json`;
 * const store = new JsonFileStore(path);
 * await store.commit({ used: [{ door: "ssh", secret: "f1", counter: 7 }] });
 * const loaded = await new JsonFileStore(path).load();
 * assertEquals(loaded.kind === "ok" && loaded.state.used[0].counter, 7);
 * await Deno.remove(path);
 * ```
 */
export class JsonFileStore implements Store {
  /** The file. */
  readonly path: string;
  readonly #used = new Map<string, StoredCode>();
  readonly #open = new Map<string, OpenRecord>();
  #writing: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  /** Opens nothing yet: {@link load} reads the file. @param path the file. */
  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<LoadResult> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
      throw new StateFileError(`cannot read state file ${this.path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    let state: StoredState;
    try {
      state = parseState(text);
    } catch (e) {
      const keptAs = `${this.path}.corrupt-${Date.now()}`;
      await Deno.rename(this.path, keptAs);
      return { kind: "corrupt", error: e as StateFileError, keptAs };
    }
    applyChanges(this.#used, this.#open, { used: state.used, opened: state.open });
    return { kind: "ok", state };
  }

  commit(changes: StoreChanges): Promise<void> {
    applyChanges(this.#used, this.#open, changes);
    return this.#save();
  }

  close(): void {}

  /** Writes the current state; resolves once a write that started after this call has finished. */
  #save(): Promise<void> {
    if (!this.#writing) {
      this.#writing = this.#write().finally(() => this.#writing = undefined);
      return this.#writing;
    }
    // A write is under way with older data: queue exactly one more behind it.
    this.#queued ??= this.#writing.catch(() => {}).then(() => {
      this.#queued = undefined;
      return this.#save();
    });
    return this.#queued;
  }

  async #write(): Promise<void> {
    const text = formatState({ used: [...this.#used.values()], open: [...this.#open.values()] });
    const temp = `${this.path}.tmp`;
    const file = await Deno.open(temp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(text);
      for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(temp, this.path);
  }
}
