/**
 * Many claims in one etcd transaction: the transactions asked for in one turn of the
 * event loop go to etcd nested in one (`compare: []`, each claim a transaction of its
 * own in `success`), so a burst of knocks costs one raft entry and one round trip per
 * turn instead of one per knock. Each nested transaction keeps its own compares and
 * answer. etcd refuses a transaction that writes one key twice, so a claim whose keys
 * another claim of the batch writes waits for the next batch.
 * @module
 */
import { setImmediate } from "node:timers";
import { EtcdAnswered, type EtcdClient, type Txn, type TxnResult } from "./etcd.ts";

/** At most this many claims a transaction (etcd's --max-txn-ops is 128 a level). */
const MAX_BATCH = 64;

interface Item {
  readonly txn: Txn;
  readonly keys: readonly string[];
  readonly resolve: (result: TxnResult) => void;
  readonly reject: (error: unknown) => void;
}

/** Sends the transactions of a turn as one. */
export class TxnBatcher {
  readonly #client: Pick<EtcdClient, "txn">;
  #waiting: Item[] = [];
  #scheduled = false;

  /** @param client sends the transactions. */
  constructor(client: Pick<EtcdClient, "txn">) {
    this.#client = client;
  }

  /** Runs `txn` (which writes `keys`) in the next batch; resolves with its own answer. */
  run(txn: Txn, keys: readonly string[]): Promise<TxnResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ txn, keys, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#waiting.length > 0) {
      const batch: Item[] = [], later: Item[] = [];
      const written = new Set<string>();
      for (const item of this.#waiting) {
        if (batch.length >= MAX_BATCH || item.keys.some((k) => written.has(k))) {
          later.push(item);
          continue;
        }
        for (const k of item.keys) written.add(k);
        batch.push(item);
      }
      this.#waiting = later;
      void this.#send(batch);
    }
  }

  async #send(batch: readonly Item[]): Promise<void> {
    try {
      const result = batch.length === 1
        ? await this.#client.txn(batch[0].txn)
        : await this.#client.txn({
          compare: [],
          success: batch.map((item) => ({ txn: item.txn })),
          failure: [],
        });
      if (batch.length === 1) return batch[0].resolve(result);
      batch.forEach((item, i) => {
        const own = result.responses[i] as TxnResult | undefined;
        if (own) item.resolve({ ...own, revision: result.revision });
        else item.reject(new Error("etcd's answer lacks a nested transaction"));
      });
    } catch (e) {
      // etcd refused the batch as a whole (too many operations, a lease one item names is
      // gone, …): each claim alone, so one cannot sink the others. A batch that got no
      // answer is not sent again claim by claim (that would only add to an overloaded etcd).
      if (batch.length > 1 && refusedWhole(e)) {
        for (const item of batch) {
          this.#client.txn(item.txn).then(item.resolve, item.reject);
        }
        return;
      }
      for (const item of batch) item.reject(e);
    }
  }
}

/** True when etcd answered the batch with an error of its own (not a lost answer). */
function refusedWhole(e: unknown): boolean {
  const answered = e instanceof EtcdAnswered ? e : (e as Error)?.cause;
  // "No leader" and its kin are about etcd, not about the batch.
  return answered instanceof EtcdAnswered &&
    !/no leader|timed out|leader changed|too many requests/i.test(answered.message);
}
