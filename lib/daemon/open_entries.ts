/**
 * The opener's table of open doors: one entry per door and source, its record as the
 * store keeps it, who has a part in it, and its close's deadline (one timer for all).
 * @module
 */
import type { Clock } from "../clock.ts";
import { openKey, type OpenRecord } from "../store/store.ts";
import { Deadlines } from "./deadlines.ts";
import type { RevokeMatch } from "./open_request.ts";

/** One open door (or one still to be closed). */
export interface Entry {
  record: OpenRecord;
  timeoutMs: number;
  /** Failed close attempts so far (for the backoff). */
  failures: number;
  /** Closing before its time (a revoke): retries revoke too. */
  revoked?: boolean;
  /**
   * Every user whose code opened or extended it while sesame ran (the record names the
   * last): `revoke --user` closes a door any of them has a part in.
   */
  users?: Set<string>;
  /** Whether its last fresh open worked, once known (extensions wait for it). */
  opened?: Promise<boolean>;
  /** Its last fresh open failed: the next request opens it afresh (command again). */
  failed?: boolean;
  /**
   * Its close, while it runs (true when it closed): a request meanwhile opens it afresh,
   * once the close is over, rather than extend a door that is closing.
   */
  closing?: Promise<boolean>;
  /** The version of the grant that close is for. */
  closingVersion?: number;
  /**
   * Counts the requests that opened or extended it (a grant's identity for its close: the
   * record object also changes when its open command is known to have run).
   */
  version: number;
}

/** The open doors, by door and source, with their deadlines. */
export class OpenEntries {
  readonly #entries = new Map<string, Entry>();
  /** When each open door closes (and failed closes retry). */
  readonly deadlines: Deadlines<Entry>;
  readonly #now: () => number;

  /**
   * @param due called when an entry's deadline comes.
   * @param clock monotonic time and timers for the deadlines, wall time for `until`.
   */
  constructor(due: (entry: Entry) => void, clock: Clock) {
    this.deadlines = new Deadlines<Entry>(due, clock);
    this.#now = clock.now;
  }

  /** The entry of `key` ({@link openKey}). */
  get(key: string): Entry | undefined {
    return this.#entries.get(key);
  }

  /** True when `entry` is the one held for its door and source (not closed, not replaced). */
  holds(entry: Entry): boolean {
    return this.#entries.get(openKey(entry.record)) === entry;
  }

  /** Adds a record taken over from the store. */
  adopt(record: OpenRecord, timeoutMs: number): Entry {
    const entry = { record, timeoutMs, failures: 0, version: 1 };
    this.#entries.set(openKey(record), entry);
    return entry;
  }

  /**
   * The entry for a committed `record`: the one open already takes it (extended; a user
   * who extends another's door gets a part in it), or a new one.
   */
  take(record: OpenRecord, timeoutMs: number): Entry {
    const key = openKey(record);
    const entry: Entry = this.#entries.get(key) ?? { record, timeoutMs, failures: 0, version: 0 };
    entry.version++;
    const previous = entry.record.user;
    if (previous !== undefined && record.user !== undefined && previous !== record.user) {
      // Another user extended it: both have a part in it (revoke --user closes it for either).
      (entry.users ??= new Set()).add(previous).add(record.user);
    } else if (record.user !== undefined) entry.users?.add(record.user);
    entry.record = record;
    this.#entries.set(key, entry);
    return entry;
  }

  /** Drops `entry` (closed). */
  drop(entry: Entry): void {
    if (this.holds(entry)) this.#entries.delete(openKey(entry.record));
  }

  /** Every entry. */
  values(): IterableIterator<Entry> {
    return this.#entries.values();
  }

  /** The entries `match` names: a door's, for a source, a user (any with a part), or all. */
  matching(match: RevokeMatch): Entry[] {
    return [...this.#entries.values()].filter(({ record, users }) =>
      record.door === match.door &&
      (match.source === undefined || record.source === match.source) &&
      (match.user === undefined || record.user === match.user || users?.has(match.user) === true)
    );
  }

  /** The doors open now (and those still to be closed), as the store keeps them. */
  records(): OpenRecord[] {
    const now = this.#now();
    return [...this.#entries.values()].map((entry) => {
      const { record } = entry;
      // The close's deadline runs on the monotonic clock: after the wall clock stepped
      // back, `until` lies in the future by the step. What is handed on (to a firewall
      // that rewrites its rules, to status) ends no later than the deadline.
      const left = this.deadlines.remaining(entry);
      return left !== undefined && now + left < record.until
        ? { ...record, until: now + Math.ceil(left) }
        : record;
    });
  }
}
