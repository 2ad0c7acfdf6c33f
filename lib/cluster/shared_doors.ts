/**
 * Doors shared by a group of nodes: every node watches the grants under the cluster's
 * prefix and mirrors each one of its groups into its own firewall until the grant's
 * `until` (never past it, whatever etcd's leases do), confirms it, and closes it when a
 * node revokes it. After a lost connection: back-off, read everything again, watch from
 * that revision on.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Door } from "../config/types.ts";
import { logger } from "../log.ts";
import {
  type EtcdClient,
  EtcdRefused,
  EtcdUnavailable,
  type KeyValue,
  WatchCompacted,
} from "./etcd.ts";
import {
  confirmKey,
  doorsPrefix,
  type Grant,
  grantKey,
  grantValue,
  readDoorsEntry,
} from "./fleet_keys.ts";
import { leaseLost, type LeasePool } from "./leases.ts";

const log = logger("fleet");

/** A grant as `sesame status` shows it. */
export interface FleetGrant extends Grant {
  /** The deciding node and the nodes that mirrored it. */
  readonly confirmed: readonly string[];
}

/** Options for {@link SharedDoors}. */
export interface SharedDoorsOptions {
  readonly client: Pick<EtcdClient, "range" | "watch" | "txn">;
  readonly leases: LeasePool;
  readonly clock: Clock;
  readonly prefix: string;
  readonly node: string;
  /** This node's groups: grants of these are mirrored. */
  readonly groups: readonly string[];
  /** The door of this name in the running config. */
  readonly door: (name: string) => Door | undefined;
  /** Opens `door` for `source` for `forMs` here; resolves true once it is open. */
  readonly open: (door: Door, grant: Grant, forMs: number) => Promise<boolean>;
  /**
   * True when this gateway wrote a grant for `key` after `revision`: a revoke read now but
   * written before that grant does not close the door this gateway just opened.
   */
  readonly ownNewer?: (key: string, revision: string) => boolean;
  /** Each read of the whole prefix, with etcd's revision then (a lower one: etcd was restored). */
  readonly reread?: (revision: bigint) => void;
  /** Closes `door` for `source` here (a revoke elsewhere). */
  readonly close: (grant: Grant) => Promise<void>;
  /** The connection to etcd came or went. */
  readonly onConnection?: (up: boolean) => void;
}

const FIRST_BACKOFF_MS = 250, MAX_BACKOFF_MS = 8_000;
const LEASE_MARGIN_S = 60;

/** Watches, mirrors, confirms and revokes shared doors. */
export class SharedDoors {
  readonly #o: SharedDoorsOptions;
  readonly #grants = new Map<string, { grant: Grant; revision: string; confirmed: Set<string> }>();
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #connected = false;

  /** @param options the client, leases, clock, prefix, this node, its groups and what to do. */
  constructor(options: SharedDoorsOptions) {
    this.#o = options;
  }

  /** Whether the watch is up now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Starts watching (in the background, until {@link stop}). */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  /** The fleet's live grants, as last read. */
  grants(): FleetGrant[] {
    const now = this.#o.clock.now();
    return [...this.#grants.values()]
      .filter(({ grant }) => grant.until > now && !grant.revoked)
      .map(({ grant, confirmed }) => ({
        ...grant,
        confirmed: [...new Set([grant.node, ...confirmed])].sort(),
      }));
  }

  /**
   * Revokes, on every node, the live grants of `door` (one source's, one user's, or all):
   * each is written back as revoked, and each node closes it when it reads that. Returns
   * how many; throws {@link EtcdUnavailable} when etcd could not be told.
   */
  async revoke(door: string, source?: string, user?: string): Promise<number> {
    const now = this.#o.clock.now();
    const group = this.#o.door(door)?.share;
    // Whatever its until: a gateway that mirrored an earlier, longer grant of the same
    // source still holds it open. Only this door's group: another group's door of the
    // same name is not this one.
    const matching = [...this.#grants.entries()].filter(([, { grant }]) =>
      grant.door === door && grant.group === group && !grant.revoked &&
      (source === undefined || grant.source === source) &&
      (user === undefined || grant.user === user)
    );
    if (matching.length === 0) return 0;
    // The revoked value outlives every grant it ends: a gateway cut off meanwhile still
    // reads it when it comes back.
    const keep = Math.max(...matching.map(([, { grant }]) => grant.until - now), 0) / 1000;
    // etcd takes at most 128 operations a transaction (--max-txn-ops).
    for (let i = 0; i < matching.length; i += 100) {
      await this.#leased((lease) =>
        this.#o.client.txn({
          compare: [],
          success: matching.slice(i, i + 100).map(([key, { grant }]) => ({
            put: {
              key,
              value: grantValue({ ...grant, until: now, revoked: true, revokedBy: this.#o.node }),
              lease,
            },
          })),
          failure: [],
        }), keep + LEASE_MARGIN_S);
    }
    return matching.length;
  }

  /**
   * Takes back a grant this gateway wrote for a door it could not open after all (its own
   * store refused the commit): the other gateways close it too.
   */
  async withdraw(group: string, door: string, source: string): Promise<void> {
    const now = this.#o.clock.now();
    const grant = { group, door, source, until: now, node: this.#o.node, revoked: true };
    await this.#leased((lease) =>
      this.#o.client.txn({
        compare: [],
        success: [{
          put: {
            key: grantKey(this.#o.prefix, group, door, source),
            value: grantValue({ ...grant, revokedBy: this.#o.node }),
            lease,
          },
        }],
        failure: [],
      }), LEASE_MARGIN_S);
  }

  /** A lease; when etcd no longer knows the pool's, the write is tried once with a new one. */
  async #leased(write: (lease: string) => Promise<unknown>, seconds: number): Promise<void> {
    try {
      await write(await this.#o.leases.lease(seconds));
    } catch (e) {
      if (!leaseLost(e)) throw e;
      this.#o.leases.invalidate();
      await write(await this.#o.leases.lease(seconds));
    }
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let backoff = FIRST_BACKOFF_MS;
    while (!signal.aborted) {
      try {
        const prefix = doorsPrefix(this.#o.prefix);
        const { kvs, revision } = await this.#o.client.range(prefix);
        // Read again after a reconnect: grants unchanged since are not mirrored twice; those
        // gone meanwhile (their lease ended) leave the view.
        const present = new Set(kvs.map((kv) => kv.key));
        for (const [key, { grant }] of this.#grants) {
          if (present.has(key)) continue;
          this.#grants.delete(key);
          // A live grant gone before its time was revoked (or deleted) while this gateway
          // could not see it: closed here too (fail closed).
          if (!grant.revoked && grant.until > this.#o.clock.now()) this.#vanished(grant);
        }
        this.#o.reread?.(BigInt(revision));
        for (const kv of kvs) this.#apply(kv, "PUT");
        this.#up(true);
        backoff = FIRST_BACKOFF_MS;
        const next = String(BigInt(revision) + 1n);
        for await (const events of this.#o.client.watch(prefix, next, signal)) {
          for (const event of events) this.#apply(event.kv, event.type);
        }
        if (signal.aborted) return;
        throw new EtcdUnavailable("the watch ended");
      } catch (e) {
        if (signal.aborted) return;
        this.#up(false);
        if (!(e instanceof WatchCompacted)) {
          const message =
            "etcd: {error}; shared doors are not mirrored here meanwhile; trying again in {ms} ms";
          const properties = { error: (e as Error).message, ms: backoff };
          // A refusal of this gateway's credentials needs the admin; an outage passes.
          if (e instanceof EtcdRefused) log.error(message, properties);
          else log.warn(message, properties);
          await sleep(backoff, signal);
          backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
        }
      }
    }
  }

  #up(up: boolean): void {
    if (this.#connected === up) return;
    this.#connected = up;
    if (up) log.info("etcd: watching the fleet's doors");
    this.#o.onConnection?.(up);
  }

  /** Closes a grant of this gateway's groups that left etcd before its time. */
  #vanished(grant: Grant): void {
    if (!this.#o.groups.includes(grant.group) || this.#o.door(grant.door)?.share !== grant.group) {
      return;
    }
    log.info("fleet: door {door} for {source}: its grant left etcd before its time: closed", {
      door: grant.door,
      source: grant.source,
    });
    void this.#o.close(grant).catch(() => {});
  }

  /** One key read or watched; a key that breaks the reading is skipped, never the watch. */
  #apply(kv: KeyValue, type: "PUT" | "DELETE"): void {
    try {
      this.#applyOne(kv, type);
    } catch (e) {
      log.error("etcd: {key} could not be read: {error}", {
        key: kv.key.slice(0, 200),
        error: String(e),
      });
    }
  }

  /** One key read or watched. DELETEs are a lease's clean-up: they close nothing. */
  #applyOne(kv: KeyValue, type: "PUT" | "DELETE"): void {
    const entry = readDoorsEntry(this.#o.prefix, kv.key, kv.value);
    if (entry.kind === "confirm") {
      const held = this.#grants.get(entry.grantKey);
      if (held && type === "PUT") held.confirmed.add(entry.node);
      return;
    }
    if (entry.kind !== "grant") return;
    if (type === "DELETE") {
      this.#grants.delete(entry.key);
      return;
    }
    const grant = entry.grant;
    if (!grant) {
      log.error("etcd: {key} is not a grant sesame wrote: ignored", { key: kv.key.slice(0, 200) });
      return;
    }
    const held = this.#grants.get(entry.key);
    if (held?.revision === kv.modRevision) return; // read again after a reconnect
    const confirmed = held && held.grant.until <= grant.until ? held.confirmed : new Set<string>();
    this.#grants.set(entry.key, { grant, revision: kv.modRevision, confirmed });
    if (!this.#o.groups.includes(grant.group)) return;
    const door = this.#o.door(grant.door);
    // Only a door this node shares with that group: a grant reaches no other door.
    if (grant.revoked) {
      if (this.#o.ownNewer?.(entry.key, kv.modRevision)) return; // a stale revoke
      // Read once per revision (above); closing twice is harmless. Not "unless already
      // revoked": after a reconnect the view may hold an older revoke of this source.
      if (door?.share === grant.group) {
        log.info("fleet: door {door} for {source} revoked by gateway {by}", {
          door: grant.door,
          source: grant.source,
          by: grant.revokedBy ?? grant.node,
        });
        void this.#o.close(grant).catch(() => {});
      }
      return;
    }
    const left = grant.until - this.#o.clock.now();
    if (left <= 0) return; // never honoured past its time
    if (!door?.open || door.share !== grant.group) {
      log.warn(
        "etcd: a grant of door {door} for group {group} from node {node}, but this node has no such shared door: not mirrored",
        { door: grant.door, group: grant.group, node: grant.node },
      );
      return;
    }
    // Never longer than this node's own `for` for the door: a writer of the prefix cannot
    // open it for longer than a knock here could.
    const forMs = Math.min(left, door.open.forMs);
    void this.#mirror(door, grant, forMs, entry.key);
  }

  async #mirror(door: Door, grant: Grant, forMs: number, key: string): Promise<void> {
    // The deciding gateway opened it when it decided: it writes no confirmation (one etcd
    // write less per open; status counts the decider as confirmed).
    if (grant.node === this.#o.node) return;
    log.info("fleet: door {door} for {source}: gateway {node} opened it for group {group}", {
      door: grant.door,
      source: grant.source,
      node: grant.node,
      group: grant.group,
    });
    if (!(await this.#o.open(door, grant, forMs))) return;
    try {
      await this.#leased((lease) =>
        this.#o.client.txn({
          compare: [],
          success: [{
            put: { key: confirmKey(key, this.#o.node), value: String(grant.until), lease },
          }],
          failure: [],
        }), forMs / 1000 + LEASE_MARGIN_S);
    } catch {
      // Unconfirmed in status; the door is open here all the same.
    }
  }
}

/** The grant key of a door for a source (for status and tests). */
export { grantKey };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
