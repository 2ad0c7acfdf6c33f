/**
 * Leases for keys that only need cleaning up (used SPA packets, grants, confirmations):
 * one lease serves every key that must outlive it by no more than its time, so a knock
 * costs no lease call of its own. A lease never decides when a door closes: etcd 3.4
 * rounds short leases up and renews every lease when the leader changes.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { EtcdClient } from "./etcd.ts";

/** Shortest lease granted, s: a new one every few minutes at most. */
const MIN_TTL_S = 600;

/** Hands out a lease that lives at least as long as asked. */
export class LeasePool {
  readonly #client: Pick<EtcdClient, "grantLease">;
  readonly #clock: Clock;
  #current: { id: Promise<string>; until: number } | undefined;

  /** @param client grants the leases. @param clock monotonic time for their ends. */
  constructor(client: Pick<EtcdClient, "grantLease">, clock: Clock) {
    this.#client = client;
    this.#clock = clock;
  }

  /** A lease ID that lives at least `seconds` more. */
  async lease(seconds: number): Promise<string> {
    const now = this.#clock.monotonic();
    const need = Math.ceil(seconds);
    if (!this.#current || this.#current.until < now + need * 1000) {
      const ttl = Math.max(MIN_TTL_S, need * 2);
      // Counted from before the call: the lease may end earlier than that, never later.
      const current = { id: this.#client.grantLease(ttl), until: now + ttl * 1000 };
      this.#current = current;
      current.id.catch(() => {
        if (this.#current === current) this.#current = undefined;
      });
    }
    return await this.#current.id;
  }

  /**
   * Forgets the lease handed out: etcd answered that it does not know it (a restart that
   * lost its data, a restore, a revoke by hand). The next {@link lease} grants a new one.
   */
  invalidate(): void {
    this.#current = undefined;
  }
}

/** True when etcd's answer says a lease it was given does not exist. */
export function leaseLost(error: unknown): boolean {
  return /lease not found/i.test(String((error as Error)?.message ?? error));
}
