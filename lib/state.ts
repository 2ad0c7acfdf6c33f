/**
 * The state file: used codes and open doors, kept across restarts so a code is never
 * accepted twice and a door opened by a command is closed even if the daemon died.
 * Writes are atomic (temp file, fsync, rename) and coalesced: while one write runs,
 * later requests share the next one.
 * @module
 */
import { StateFileError } from "./errors.ts";

/** An open door, as recorded before its open action runs. */
export interface OpenRecord {
  /** Door name. */
  readonly door: string;
  /** The source it was opened for. */
  readonly ip: string;
  /** When it must close, ms since the epoch. */
  until: number;
  /** The close command's argv, substituted at open time; `null` when nothing needs running. */
  readonly close: readonly string[] | null;
  /** The firewall that lets the source through, with the ports it opened. */
  readonly firewall?: FirewallGrant;
}

/** What a firewall backend opened for a record: enough to undo it without the config. */
export interface FirewallGrant {
  /** The backend. */
  readonly kind: "nft" | "iptables";
  /** The protected ports opened. */
  readonly ports: readonly number[];
  /** Their protocol. */
  readonly protocol: "tcp" | "udp";
}

/** What the state file holds. */
export interface State {
  /** Used codes: key → ms until which it must stay used. */
  readonly used: [string, number][];
  /** Doors open now. */
  readonly open: OpenRecord[];
}

const VERSION = 1;

/** An empty state: nothing used, nothing open. */
export function emptyState(): State {
  return { used: [], open: [] };
}

/**
 * Parses state file text; throws {@link StateFileError} on anything that is not exactly
 * a version-1 state (truncated, edited, another program's file).
 *
 * @example
 * ```ts
 * import { parseState } from "./state.ts";
 * parseState('{"version":1,"used":[["ssh/5",1000]],"open":[]}').used; // [["ssh/5", 1000]]
 * ```
 */
export function parseState(text: string): State {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(`not valid JSON (truncated?): ${(e as Error).message}`);
  }
  const d = data as { version?: unknown; used?: unknown; open?: unknown };
  if (typeof d !== "object" || d === null || d.version !== VERSION) {
    throw new StateFileError(`not a version ${VERSION} sesame state file`);
  }
  if (!Array.isArray(d.used) || !Array.isArray(d.open)) {
    throw new StateFileError(`"used" and "open" must be lists`);
  }
  const used: [string, number][] = [];
  for (const item of d.used) {
    if (!Array.isArray(item) || typeof item[0] !== "string" || !Number.isFinite(item[1])) {
      throw new StateFileError(`malformed used code ${JSON.stringify(item)}`);
    }
    used.push([item[0], item[1]]);
  }
  const open: OpenRecord[] = [];
  for (const r of d.open as Record<string, unknown>[]) {
    const ok = typeof r === "object" && r !== null && typeof r.door === "string" &&
      typeof r.ip === "string" &&
      Number.isFinite(r.until) &&
      (r.close === null || (Array.isArray(r.close) && r.close.every((a) => typeof a === "string")));
    if (!ok || !(r.firewall === undefined || isGrant(r.firewall))) {
      throw new StateFileError(`malformed open door ${JSON.stringify(r)}`);
    }
    open.push({
      door: r.door as string,
      ip: r.ip as string,
      until: r.until as number,
      close: r.close as string[] | null,
      ...(r.firewall ? { firewall: r.firewall as FirewallGrant } : {}),
    });
  }
  return { used, open };
}

function isGrant(value: unknown): value is FirewallGrant {
  const g = value as FirewallGrant;
  return typeof g === "object" && g !== null && (g.kind === "nft" || g.kind === "iptables") &&
    (g.protocol === "tcp" || g.protocol === "udp") && Array.isArray(g.ports) &&
    g.ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535);
}

/** Serialises a state. */
export function formatState(state: State): string {
  return JSON.stringify({ version: VERSION, used: state.used, open: state.open });
}

/** How loading went. */
export type LoadResult =
  | { readonly kind: "ok"; readonly state: State }
  | { readonly kind: "missing" }
  | { readonly kind: "corrupt"; readonly error: StateFileError; readonly keptAs: string };

/**
 * The state file on disk.
 *
 * @example
 * ```ts ignore
 * import { StateFile } from "./state.ts";
 * const file = new StateFile("/var/lib/sesame/state.json", () => ({ used: [], open: [] }));
 * await file.save();
 * ```
 */
export class StateFile {
  readonly path: string;
  readonly #snapshot: () => State;
  #writing: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  /**
   * @param path the file.
   * @param snapshot returns the state to write, read at write time (so coalesced requests see the latest).
   */
  constructor(path: string, snapshot: () => State) {
    this.path = path;
    this.#snapshot = snapshot;
  }

  /**
   * Reads the file. A corrupt one is moved aside (nothing is lost) and reported; the
   * caller must then fail closed.
   */
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
    try {
      return { kind: "ok", state: parseState(text) };
    } catch (e) {
      const keptAs = `${this.path}.corrupt-${Date.now()}`;
      await Deno.rename(this.path, keptAs);
      return { kind: "corrupt", error: e as StateFileError, keptAs };
    }
  }

  /** Writes the current state; resolves once a write that started after this call has finished. */
  save(): Promise<void> {
    if (!this.#writing) {
      this.#writing = this.#write().finally(() => this.#writing = undefined);
      return this.#writing;
    }
    // A write is under way with older data: queue exactly one more behind it.
    this.#queued ??= this.#writing.catch(() => {}).then(() => {
      this.#queued = undefined;
      return this.save();
    });
    return this.#queued;
  }

  async #write(): Promise<void> {
    const text = formatState(this.#snapshot());
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
