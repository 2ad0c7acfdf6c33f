/**
 * One-time across the fleet: before a door opens, the code (or SPA packet) it used is
 * committed in etcd by a transaction that moves the same high-water mark the local store
 * keeps, and a shared door's grant is written in that same transaction. etcd is the
 * arbiter: a code used on one node is refused on every other, and of two nodes that take
 * the same code at the same moment one wins.
 * @module
 */
import type { Clock } from "../clock.ts";
import { logger } from "../log.ts";
import { counterAt } from "../sequence.ts";
import type { OpenRequest } from "../daemon/open_request.ts";
import type { EtcdClient, KeyValue, Op, TxnResult } from "./etcd.ts";
import { counterText, grantKey, grantValue, markKey, parseCounter, spaKey } from "./fleet_keys.ts";
import { leaseLost, type LeasePool } from "./leases.ts";
import { TxnBatcher } from "./txn_batcher.ts";

const log = logger("fleet");

/** What the fleet says of one open request. */
export type Verdict =
  | {
    readonly ok: true;
    /** Fell back to this node's store (`fleet: local`). */
    readonly local?: true;
    /** A shared door: when its grant says it closes (the door here closes then too). */
    readonly until?: number;
    /** A shared door: etcd's revision of the grant's write, when known. */
    readonly revision?: string;
  }
  | {
    readonly ok: false;
    /** `used-elsewhere`: another node (or this one) used the code; `unavailable`: no quorum answered. */
    readonly reason: "used-elsewhere" | "unavailable";
    readonly detail: string;
  };

/** Options for {@link FleetClaims}. */
export interface ClaimsOptions {
  readonly client: Pick<EtcdClient, "txn">;
  readonly leases: LeasePool;
  readonly clock: Clock;
  /** The cluster's key prefix. */
  readonly prefix: string;
  /** This node's name. */
  readonly node: string;
}

const OK: Verdict = { ok: true };
/** Extra lease time past a key's last use, s. */
const LEASE_MARGIN_S = 60;

/** Commits uses and grants in etcd before doors open. */
export class FleetClaims {
  readonly #o: ClaimsOptions;
  readonly #batcher: TxnBatcher;

  /** @param options the etcd client, the leases, the clock, the prefix and this node's name. */
  constructor(options: ClaimsOptions) {
    this.#o = options;
    this.#batcher = new TxnBatcher(options.client);
  }

  /**
   * Commits what `request` uses (its code, its SPA packet) and, for a shared door, its
   * grant, in one transaction. A grant mirrored from another node needs nothing.
   */
  async claim(request: OpenRequest, retried = false): Promise<Verdict> {
    const { door } = request;
    if (request.mirror || !door.fleet) return OK;
    if (!request.code && !request.spa && !door.share) return OK;
    try {
      // One `until` for the grant and the door here (computed once, before the claim).
      const until = this.#o.clock.now() + (request.forMs ?? door.open!.forMs);
      const ops = door.share ? [await this.#grantOp(request, until)] : [];
      const ok: Verdict = door.share ? { ok: true, until } : OK;
      if (request.code) return await this.#claimCode(request, ops, ok);
      if (request.spa) return await this.#claimSpa(request, ops, ok);
      const result = await this.#o.client.txn({ compare: [], success: ops, failure: [] });
      return written(ok, result.revision);
    } catch (e) {
      if (leaseLost(e) && !retried) {
        // etcd forgot the lease this claim used (it lost its data): a new one, once.
        this.#o.leases.invalidate();
        return this.claim(request, true);
      }
      const detail = (e as Error).message;
      if (door.fleet === "local") {
        log.warn(
          "etcd unreachable ({error}): door {door} falls back to this node's own store (fleet: local) for {source}",
          { error: detail, door: door.name, source: request.source },
        );
        return { ok: true, local: true };
      }
      return { ok: false, reason: "unavailable", detail };
    }
  }

  async #grantOp(request: OpenRequest, until: number): Promise<Op> {
    const { door, source, user } = request;
    const lease = await this.#o.leases.lease((until - this.#o.clock.now()) / 1000 + LEASE_MARGIN_S);
    const group = door.share!;
    const grant = {
      group,
      door: door.name,
      source,
      ...(user === undefined ? {} : { user }),
      until,
      node: this.#o.node,
    };
    return {
      put: {
        key: grantKey(this.#o.prefix, group, door.name, source),
        value: grantValue(grant),
        lease,
      },
    };
  }

  /**
   * Moves the owner's mark to the code's counter if it is below it (or absent): one round
   * trip, the absent case and the lower case as a transaction nested in the other's failure.
   * The claim leaves a receipt of its own: a transaction the client sent again (its first
   * answer lost) finds it and knows the mark is its own.
   */
  async #claimCode(request: OpenRequest, ops: Op[], ok: Verdict, again = false): Promise<Verdict> {
    const code = request.code!;
    const key = markKey(this.#o.prefix, code);
    const value = counterText(code.counter);
    const receipt = await this.#receipt();
    const put: Op = { put: { key, value } };
    // With the other claims of this turn, in one transaction (txn_batcher.ts).
    const result = await this.#batcher.run({
      compare: [{ key, target: "CREATE", createRevision: "0" }],
      success: [put, receipt, ...ops],
      failure: [{
        txn: {
          compare: [{ key, target: "VALUE", result: "LESS", value }],
          success: [put, receipt, ...ops],
          failure: [{ range: { key } }, { range: { key: putKey(receipt) } }],
        },
      }],
    }, [key, putKey(receipt), ...ops.map(putKey)]);
    if (result.succeeded) return written(ok, result.revision);
    const inner = result.responses[0] as TxnResult;
    if (inner.succeeded) return written(ok, result.revision);
    if ((inner.responses[1] as KeyValue[]).length > 0) return ok; // this claim, sent twice
    const held = (inner.responses[0] as KeyValue[])[0];
    if (held === undefined) {
      // Removed meanwhile (by hand, or by a writer of the prefix): once more, then refuse.
      if (!again) return this.#claimCode(request, ops, ok, true);
      return { ok: false, reason: "used-elsewhere", detail: `counter ${code.counter}: raced` };
    }
    const mark = parseCounter(held.value);
    const door = request.door;
    const current = door.kind === "rotating" ? counterAt(this.#o.clock.now(), door.periodMs) : 0;
    const limit = door.kind === "rotating" ? current + door.skew + 1 : Infinity;
    if (mark !== undefined && mark <= limit) {
      return {
        ok: false,
        reason: "used-elsewhere",
        detail: `counter ${code.counter}, the fleet's mark is ${mark}`,
      };
    }
    // A mark no clock of the fleet could have set: whoever wrote it can write the prefix.
    // Not honoured (it would burn every code until then), and said loudly.
    log.error(
      "the fleet's mark for door {door} is {mark} ({ahead}): not honoured; someone who can write etcd's prefix set it, or this gateway's clock is far behind (check NTP)",
      {
        door: door.name,
        mark: held.value.slice(0, 40),
        ahead: mark === undefined
          ? "not a counter"
          : `${mark - current} periods ahead of this node's clock`,
      },
    );
    const retry = await this.#o.client.txn({
      compare: [{ key, target: "VALUE", result: "EQUAL", value: held.value }],
      success: [put, ...ops],
      failure: [],
    });
    return retry.succeeded
      ? written(ok, retry.revision)
      : { ok: false, reason: "used-elsewhere", detail: `counter ${code.counter}: raced` };
  }

  /** A key only this claim writes (leased: it matters only while the call is retried). */
  async #receipt(): Promise<Op> {
    const lease = await this.#o.leases.lease(LEASE_MARGIN_S);
    const key = `${this.#o.prefix}claims/${
      encodeURIComponent(this.#o.node)
    }/${crypto.randomUUID()}`;
    return { put: { key, value: "", lease } };
  }

  async #claimSpa(request: OpenRequest, ops: Op[], ok: Verdict): Promise<Verdict> {
    const spa = request.spa!;
    const key = spaKey(this.#o.prefix, spa.digest);
    // Kept past any time the packet could still be accepted (its age is bounded by max_age).
    const door = request.door;
    const maxAgeMs = door.kind === "spa" ? door.spa.maxAgeMs : 120_000;
    const lease = await this.#o.leases.lease((2 * maxAgeMs) / 1000 + LEASE_MARGIN_S);
    // The value names this claim: a transaction sent twice finds its own.
    const mine = `${spa.seen} ${this.#o.node} ${crypto.randomUUID()}`;
    const result = await this.#o.client.txn({
      compare: [{ key, target: "CREATE", createRevision: "0" }],
      success: [{ put: { key, value: mine, lease } }, ...ops],
      failure: [{ range: { key } }],
    });
    const held = result.succeeded ? undefined : (result.responses[0] as KeyValue[])[0];
    return result.succeeded || held?.value === mine
      ? written(ok, result.succeeded ? result.revision : undefined)
      : { ok: false, reason: "used-elsewhere", detail: "this SPA packet was used already" };
  }
}

/** A verdict that a shared door's grant was written at `revision`. */
function written(ok: Verdict, revision: string | undefined): Verdict {
  return ok.ok && ok.until !== undefined && revision !== undefined ? { ...ok, revision } : ok;
}

/** The key a put op writes. */
function putKey(op: Op): string {
  return "put" in op ? op.put.key : "";
}
