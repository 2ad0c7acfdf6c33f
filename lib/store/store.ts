/**
 * The durable state behind one interface: used codes (as high-water marks) and open
 * doors. The opener commits a turn's opens in one call and acts only once it resolved;
 * the daemon loads it at start. Implementations: {@link MemoryStore} here (tests, and a
 * daemon without `state_file`), SQLite (sqlite.ts) for the `state_file`.
 * @module
 */
import type { UsedCode } from "../engine/used_codes.ts";

/** What a firewall backend opened for a record: enough to undo it without the config. */
export interface FirewallGrant {
  /** The backend. */
  readonly kind: "nft" | "iptables";
  /** The protected ports opened. */
  readonly ports: readonly number[];
  /** Their protocol. */
  readonly protocol: "tcp" | "udp";
  /** nft: the admin's own sets the source went into (`family table set`), when not sesame's. */
  readonly sets?: { readonly v4?: string; readonly v6?: string };
}

/** An open door, as committed before its open action runs. */
export interface OpenRecord {
  /** The door's name. */
  readonly door: string;
  /** The source it is open for (canonical address text). */
  readonly source: string;
  /** On a door with `users`: whose code opened it. */
  readonly user?: string;
  /** When it must close, ms since the epoch. */
  readonly until: number;
  /** The close command's argv, substituted at open time; `null` when nothing needs running. */
  readonly close: readonly string[] | null;
  /** The firewall that lets the source through, with the ports it opened. */
  readonly firewall?: FirewallGrant;
  /**
   * The open command's argv while it is not known to have run: committed with the open,
   * cleared once the command succeeded. A start that finds it runs the command (sesame
   * stopped in between: the door was promised, its code is used up).
   */
  readonly pending?: readonly string[];
}

/** A used code as loaded: the secret's fingerprint is absent in records from before fingerprints. */
export type StoredCode = Omit<UsedCode, "secret"> & { readonly secret?: string };

/** What a store holds. */
export interface StoredState {
  /** Used codes: the highest counter per owner. */
  readonly used: readonly StoredCode[];
  /** Doors open (or still to be closed). */
  readonly open: readonly OpenRecord[];
  /** SPA packets used (digest, and the packet's timestamp in ms), never to open again. */
  readonly spa?: readonly SpaDigest[];
  /**
   * SPA packets made before this time (ms) are refused: set when the state was found
   * lost (which packets were used lately is unknown), and kept across restarts until it
   * has passed, so a second start does not forget it.
   */
  readonly spaRefuseBefore?: number;
}

/** A used SPA packet: its digest and its timestamp, ms. */
export interface SpaDigest {
  /** SHA-256 of the packet as received, base64. */
  readonly digest: string;
  /** The packet's timestamp, ms. */
  readonly seen: number;
}

/** How loading went. After any of them the store takes commits. */
export type LoadResult =
  | {
    readonly kind: "ok";
    readonly state: StoredState & { readonly maxTime?: number };
    /** Where an older JSON state file was moved after its import. */
    readonly imported?: string;
  }
  /** Nothing sesame keeps was there: a new state. */
  | { readonly kind: "first" }
  /**
   * The store is gone, or behind what sesame committed, as `evidence` shows: the codes
   * used lately are unknown. `state` is what could still be read.
   */
  | { readonly kind: "lost"; readonly evidence: string; readonly state?: StoredState }
  /** The store could not be trusted and was moved to `keptAs`; `salvaged` is what could be read of its open doors. */
  | {
    readonly kind: "corrupt";
    readonly error: Error;
    readonly keptAs: string;
    readonly salvaged: readonly OpenRecord[];
  };

/** One durable change: codes used, doors opened or extended (by door and source), doors closed. */
export interface StoreChanges {
  /** Codes used up. */
  readonly used?: readonly UsedCode[];
  /** Open records to write (a record replaces the one of the same door and source). */
  readonly opened?: readonly OpenRecord[];
  /** Doors closed: their records go. */
  readonly closed?: readonly { readonly door: string; readonly source: string }[];
  /** The server's time at the commit: the store keeps the highest ever seen. */
  readonly now?: number;
  /** SPA packets used up. */
  readonly spa?: readonly SpaDigest[];
  /** Forget SPA digests of packets older than this (ms): no packet that old is taken. */
  readonly pruneSpaBefore?: number;
  /** Refuse SPA packets made before this (ms), from now on and after restarts (the highest kept). */
  readonly refuseSpaBefore?: number;
  /**
   * `full` (the default): durable when the commit returns, even if the machine stops.
   * `normal`: durable against a crash of sesame; a crash of the machine may lose it, and
   * the next start then knows and fails closed. For what the kernel forgets with the
   * machine anyway (firewall doors), never for what would outlive it (a command door's
   * record, a close before its time).
   */
  readonly sync?: "full" | "normal";
}

/** Durable state. */
export interface Store {
  /** Reads the state; a corrupt store is moved aside and reported, and the caller fails closed. */
  load(): Promise<LoadResult>;
  /** Writes `changes` as one transaction; resolves once they are durable, rejects when they are not. */
  commit(changes: StoreChanges): Promise<void>;
  /** Releases the store. */
  close(): void;
}

/** The key of an open record: door and source. */
export function openKey(record: { readonly door: string; readonly source: string }): string {
  return `${record.door}\0${record.source}`;
}

/**
 * A store that keeps everything in memory: tests, and a daemon without `state_file`
 * (replay protection then ends at restart).
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./store.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const store = new MemoryStore();
 * await store.commit({ opened: [{ door: "ssh", source: "192.0.2.7", until: 1000, close: null }] });
 * const loaded = await store.load();
 * assertEquals(loaded.kind === "ok" && loaded.state.open.length, 1);
 * ```
 */
export class MemoryStore implements Store {
  readonly #used = new Map<string, StoredCode>();
  readonly #open = new Map<string, OpenRecord>();
  readonly #spa = new Map<string, number>();
  #spaRefuseBefore = 0;
  #maxTime = 0;
  /** Set to make every commit fail (tests of the fail-closed path). */
  failWith: Error | undefined;

  load(): Promise<LoadResult> {
    return Promise.resolve({ kind: "ok", state: { ...this.snapshot(), maxTime: this.#maxTime } });
  }

  commit(changes: StoreChanges): Promise<void> {
    if (this.failWith) return Promise.reject(this.failWith);
    applyChanges(this.#used, this.#open, changes);
    for (const s of changes.spa ?? []) this.#spa.set(s.digest, s.seen);
    this.#spaRefuseBefore = Math.max(this.#spaRefuseBefore, changes.refuseSpaBefore ?? 0);
    this.#maxTime = Math.max(this.#maxTime, changes.now ?? 0);
    if (changes.pruneSpaBefore !== undefined) {
      for (const [digest, seen] of this.#spa) {
        if (seen < changes.pruneSpaBefore) this.#spa.delete(digest);
      }
    }
    return Promise.resolve();
  }

  /** The state now. */
  snapshot(): StoredState {
    return {
      used: [...this.#used.values()],
      open: [...this.#open.values()],
      spa: [...this.#spa].map(([digest, seen]) => ({ digest, seen })),
      ...(this.#spaRefuseBefore > 0 ? { spaRefuseBefore: this.#spaRefuseBefore } : {}),
    };
  }

  close(): void {}
}

/** Applies `changes` to in-memory maps of marks and records (shared by the stores). */
export function applyChanges(
  used: Map<string, StoredCode>,
  open: Map<string, OpenRecord>,
  changes: Omit<StoreChanges, "used"> & { readonly used?: readonly StoredCode[] },
): void {
  for (const code of changes.used ?? []) {
    const key = `${code.door}\0${code.secret ?? ""}\0${code.prefix ?? ""}`;
    const old = used.get(key);
    if (!old || old.counter < code.counter) used.set(key, code);
  }
  for (const record of changes.opened ?? []) open.set(openKey(record), record);
  for (const closed of changes.closed ?? []) open.delete(openKey(closed));
}
