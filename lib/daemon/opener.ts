/**
 * The one place where a decision becomes an open door. Requests of one event-loop turn
 * are handled together, one batch at a time:
 *
 * 1. plan: pure data: for each (door, source) the record to keep and whether it is fresh
 *    (a door already open is extended, its open command does not run again);
 * 2. commit: the used codes and the records reach the store in one transaction;
 * 3. act: only after the commit, the firewall lets the source through and the open
 *    command runs; the close is scheduled.
 *
 * A failed commit acts on nothing and schedules nothing: the door stays shut. A close
 * that fails is retried with backoff and stays in the store until it succeeds.
 * @module
 */
import { setImmediate } from "node:timers";
import { openKey, type OpenRecord } from "../store/store.ts";
import { type Entry, OpenEntries } from "./open_entries.ts";
import { type CloseContext, closeInTurn } from "./close_door.ts";
import { brief, describeFailure, type Plan, planOpens, whoWaits } from "./open_plan.ts";
import type { OpenerOptions, OpenRequest, RestoreOptions, RevokeMatch } from "./open_request.ts";
import { Admission } from "./admission.ts";

export type { OpenerOptions, OpenRequest, RestoreOptions, RevokeMatch };

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/**
 * Opens doors (commit, then act) and closes them on time.
 *
 * @example A door opens only after its code is committed, and closes after `for`
 * ```ts
 * import { Opener } from "./opener.ts";
 * import { MemoryStore } from "../store/store.ts";
 * import { DryRunFirewall } from "../testing/mod.ts";
 * import { Counters } from "../counters.ts";
 * import { systemClock } from "../clock.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { legacy: { sequence: [7000], open: { nft: { port: 22 } } } } });
 * const nft = new DryRunFirewall();
 * const store = new MemoryStore();
 * const opener = new Opener({
 *   store,
 *   firewalls: { nft, iptables: new DryRunFirewall() },
 *   runner: { run: () => Promise.reject(), spawn: () => { throw new Error(); }, close() {} },
 *   clock: systemClock,
 *   counters: new Counters(),
 *   report: () => {},
 * });
 * opener.request({ door: doors[0], source: "192.0.2.7" });
 * await opener.settled();
 * assertEquals(nft.calls, ["open legacy 192.0.2.7"]);
 * assertEquals(store.snapshot().open.length, 1);
 * opener.cancelTimers();
 * ```
 */
export class Opener {
  readonly #options: OpenerOptions;
  /** The open doors and their closes' deadlines. */
  readonly #entries: OpenEntries;
  #requests: OpenRequest[] = [];
  #flushing: Promise<void> | undefined;
  /** Committed batches still acting (the firewall or a command at work). */
  readonly #acting = new Set<Promise<unknown>>();
  #scheduled = false;
  readonly #closing = new Set<Promise<unknown>>();
  readonly #now: () => number;
  readonly #admission: Admission | undefined;
  /** What a close works with. */
  readonly #closeContext: CloseContext;

  /** @param options the store, the firewalls, the runner, the clock, the counters and the report. */
  constructor(options: OpenerOptions) {
    this.#options = options;
    this.#now = options.clock.now;
    this.#admission = options.fleet ? new Admission(options.fleet, options.report) : undefined;
    this.#entries = new OpenEntries((entry) => this.#due(entry), options.clock);
    this.#closeContext = {
      options,
      entries: this.#entries,
      now: this.#now,
      schedule: (entry, wait) => this.#schedule(entry, wait),
    };
  }

  /** The doors open now (and those still to be closed), as the store keeps them. */
  records(): OpenRecord[] {
    return this.#entries.records();
  }

  /**
   * Takes over the records a store kept: those past their time are closed now, the
   * others when their time comes. An open command not known to have run (sesame stopped
   * between the commit and the command's end: under a burst, every command the worker
   * had queued) runs now, after its close command: the door was promised and its code is
   * used up, and close-then-open leaves one open in effect whether or not the first run
   * happened (an `iptables -I` run twice with one `-D` at the close would stay open).
   */
  async restore(records: readonly OpenRecord[], options: RestoreOptions = {}): Promise<void> {
    const now = this.#now();
    const due: Promise<unknown>[] = [];
    for (const record of records) {
      const timeoutMs = options.timeoutOf?.(record.door) ?? DEFAULT_CLOSE_TIMEOUT_MS;
      const entry = this.#entries.adopt(record, timeoutMs);
      // Too little time left to run an open and then its close: closed now, not reopened.
      if (record.until <= now + timeoutMs || !record.pending) {
        if (record.until <= now) due.push(closeInTurn(this.#closeContext, entry));
        else this.#schedule(entry);
        continue;
      }
      // A door or user no longer in the config gets its close, never a new open.
      if (options.known && !options.known(record)) {
        this.#schedule(entry);
        continue;
      }
      // The close is armed only once the open has ended: a close that ran first would
      // leave the late open with no record to close it. Not awaited: the start goes on.
      // Requests meanwhile extend it once it is known to have opened; if it did not, the
      // next one opens it afresh.
      const recovering = this.#recover(entry);
      entry.opened = recovering;
      recovering.then((ok) => {
        if (!ok && entry.opened === recovering) entry.failed = true;
      });
      this.#acting.add(recovering);
      recovering.finally(() => this.#acting.delete(recovering));
    }
    await Promise.all(due);
  }

  /** Close-then-open of a record whose open was not seen to run; then its close is armed. */
  async #recover(entry: Entry): Promise<boolean> {
    const { runner, counters, report } = this.#options;
    const { record } = entry;
    const key = openKey(record);
    if (record.close) {
      await runner.run(record.close, { timeoutMs: entry.timeoutMs, essential: true }); // may fail
    }
    const result = await runner.run(record.pending!, { timeoutMs: entry.timeoutMs });
    if (this.#entries.get(key) !== entry) {
      // Closed meanwhile (a revoke): what this open let in goes again.
      if (record.close) {
        await runner.run(record.close, { timeoutMs: entry.timeoutMs, essential: true });
      }
      return false;
    }
    this.#schedule(entry);
    if (result.code !== 0) {
      counters.openFailures++;
      report({ ...brief(record), kind: "open-failed", error: describeFailure(result) });
      return false;
    }
    counters.opens++;
    counters.door(record.door).opens++;
    this.#ran(key);
    report({ ...brief(record), kind: "opened", recovered: true });
    return true;
  }

  /**
   * The open command of `key`'s door ran: its record loses `pending` (a start need not run
   * it again). Not synced: a power loss at worst runs it once more.
   */
  #ran(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry?.record.pending) return; // closed meanwhile: nothing to write back
    const { pending: _, ...record } = entry.record;
    entry.record = record;
    this.#options.store.commit({ opened: [record], now: this.#now(), sync: "normal" }).catch(
      () => {}, // the next start runs it again: harmless for an idempotent command
    );
  }

  /** Asks for a door to open; handled with the rest of this turn's requests. */
  request(request: OpenRequest): void {
    this.#options.counters.openDecisions++;
    this.#admission?.start(request);
    this.#requests.push(request);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // After this turn's I/O callbacks (setImmediate, not setTimeout(0), which Deno delays by
    // a millisecond or more): every open decided in this turn of the event loop joins the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flushing ??= this.#drain().finally(() => this.#flushing = undefined);
    });
  }

  /**
   * Resolves when every request made so far has been committed and acted on (or refused),
   * and every close under way has ended.
   */
  async settled(): Promise<void> {
    while (
      this.#scheduled || this.#flushing || this.#acting.size > 0 || this.#closing.size > 0
    ) {
      await (this.#flushing ??
        (this.#acting.size > 0
          ? Promise.all(this.#acting)
          : this.#closing.size > 0
          ? Promise.all(this.#closing)
          : new Promise((r) => setImmediate(r))));
    }
  }

  /**
   * Shutdown: closes every door a command opened (nothing would close it while sesame is
   * not running). Doors that only a firewall opened stay until their time, which the
   * kernel enforces by itself; their records stay in the store for the next start.
   */
  async closeAll(): Promise<void> {
    await this.settled();
    const closing: Promise<unknown>[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.record.firewall && !entry.record.close) this.#entries.deadlines.cancel(entry);
      else closing.push(closeInTurn(this.#closeContext, entry, false));
    }
    await Promise.all(closing);
    await Promise.all(this.#closing);
    this.cancelTimers();
  }

  /**
   * Closes now the open doors `match` names (firewall element removed, close command run,
   * record dropped); returns the records it closed and those whose close failed (retried
   * with backoff). Established connections continue.
   */
  async revoke(match: RevokeMatch): Promise<{ closed: OpenRecord[]; failed: OpenRecord[] }> {
    await this.settled();
    const entries = this.#entries.matching(match);
    const closed: OpenRecord[] = [], failed: OpenRecord[] = [];
    await Promise.all(entries.map(async (entry) => {
      const record = entry.record;
      // A close that fails is retried as any other, and said so.
      (await closeInTurn(this.#closeContext, entry, true, true) ? closed : failed).push(record);
    }));
    return { closed, failed };
  }

  /** Cancels every timer without closing anything (the end of a run; tests). */
  cancelTimers(): void {
    this.#entries.deadlines.clear();
  }

  async #drain(): Promise<void> {
    while (this.#requests.length > 0) {
      const requests = this.#requests;
      this.#requests = [];
      await this.#open(requests);
    }
  }

  /** One batch: the fleet's claims, plan, commit, act. */
  async #open(batch: readonly OpenRequest[]): Promise<void> {
    const { store, counters, report } = this.#options;
    const requests = this.#admission ? await this.#admission.admit(batch) : batch;
    const tell = whoWaits(batch, requests);
    if (requests.length === 0) return;
    // A door whose last open failed is opened afresh: an extension would not run its command.
    const openNow = (key: string) => {
      const entry = this.#entries.get(key);
      // A door whose grant is closing is opened afresh (after the close); once a fresh
      // grant has replaced it, requests extend that one.
      const closing = entry?.closing !== undefined && entry.closingVersion === entry.version;
      return entry && !entry.failed && !closing ? entry.record : undefined;
    };
    const plans = planOpens(requests, openNow, this.#now());
    const used = requests.flatMap((r) => r.code ? [r.code] : []);
    const spa = requests.flatMap((r) => r.spa ? [r.spa] : []);
    try {
      await store.commit({
        used,
        opened: plans.map((p) => p.record),
        now: this.#now(),
        // The kernel forgets a firewall door with the machine; a close command's record
        // must outlive it (else nothing would run the close after a power loss).
        sync: plans.every((p) => p.record.close === null) ? "normal" : "full",
        ...(spa.length > 0 ? { spa } : {}),
      });
    } catch (e) {
      counters.commitFailures++;
      report({
        kind: "commit-failed",
        refused: plans.map((p) => `${p.door.name} ${p.record.source}`),
        error: (e as Error).message,
      });
      // Shared grants claimed for them go back: the other gateways close them too.
      for (const request of requests) void this.#options.fleet?.withdraw?.(request).catch(() => {});
      for (const told of tell.values()) told(false);
      return; // nothing acts, nothing is scheduled: the doors stay shut
    }
    // Acted on without waiting: the next batch commits while the firewall works on this
    // one (its batcher keeps batches in order and joins those that queue up meanwhile).
    // Each #act records its entry and close timer before its first await.
    const acting = Promise.all(plans.map(async (plan) => {
      const opened = await this.#act(plan);
      tell.get(openKey(plan.record))?.(opened);
    }));
    this.#acting.add(acting);
    acting.finally(() => this.#acting.delete(acting));
  }

  /**
   * Act on one committed plan: the entry and its close timer, then the firewall and the
   * command. Resolves true when the door is open here: this plan's actions worked, and for
   * an extension, the open it extends too (once that is known).
   */
  async #act(plan: Plan): Promise<boolean> {
    const entry = this.#entries.take(plan.record, plan.timeoutMs);
    // Scheduled before acting: a door left half open by a failed action is still closed in time.
    this.#schedule(entry);
    // A fresh open of a door whose close runs waits for the close: its actions come after.
    const closing = plan.fresh ? entry.closing : undefined;
    const own = closing
      ? closing.catch(() => false).then(() => this.#perform(plan, entry))
      : this.#perform(plan, entry);
    // Whether the door opened: a fresh plan's own outcome; an extension's, that of the open
    // it extends (however many extensions overlap it). An extension's own failure (its
    // firewall call) does not make the door unopened: its command ran, and must not again.
    if (plan.fresh) {
      entry.opened = own;
      entry.failed = false;
      entry.revoked = undefined; // a new grant: a revoke of the old one does not carry over
    }
    const opening = entry.opened ?? Promise.resolve(true);
    const [done, opened] = await Promise.all([own, opening]);
    if (!opened && entry.opened === opening) entry.failed = true;
    // Said once the open it extends is known to have worked.
    if (done && opened && !plan.fresh) {
      this.#options.report({ ...brief(plan.record), kind: "extended" });
    }
    return done && opened;
  }

  /** The firewall and the command of one plan; true when they worked. */
  async #perform({ record, fresh, timeoutMs, at }: Plan, entry: Entry): Promise<boolean> {
    const { firewalls, runner, counters, report } = this.#options;
    const key = openKey(record);
    const failed = (error: string) => {
      counters.openFailures++;
      report({
        kind: "open-failed",
        door: record.door,
        source: record.source,
        until: record.until,
        error,
      });
      return false;
    };
    if (record.firewall) {
      try {
        await firewalls[record.firewall.kind].open(record);
      } catch (e) {
        return failed((e as Error).message);
      }
    }
    if (fresh && record.pending) {
      const result = await runner.run(record.pending, { timeoutMs });
      if (this.#entries.get(key) !== entry) {
        // Revoked while the open ran: its close may have come first; it runs again after.
        if (record.close) await runner.run(record.close, { timeoutMs, essential: true });
        return false;
      }
      if (result.code !== 0) return failed(describeFailure(result));
      this.#ran(key);
    }
    if (fresh) {
      counters.opens++;
      const counts = counters.door(record.door);
      counts.opens++;
      if (record.user !== undefined) {
        counts.userOpens.set(record.user, (counts.userOpens.get(record.user) ?? 0) + 1);
      }
      if (at !== undefined) {
        counters.openLatency.observe(Math.max(0, this.#now() - at) / 1000);
      }
    }
    if (fresh) report({ ...brief(record), kind: "opened" });
    return true;
  }

  #schedule(entry: Entry, wait = Math.max(0, entry.record.until - this.#now())): void {
    this.#entries.deadlines.schedule(entry, wait);
  }

  /**
   * A close's time came (or a retry's), on the monotonic clock: an extension moved the
   * deadline, so a deadline that comes is the door's. The wall clock is not asked: a clock
   * stepped back must not keep a door open by the step.
   */
  #due(entry: Entry): void {
    this.#track(closeInTurn(this.#closeContext, entry));
  }

  #track(p: Promise<unknown>): void {
    this.#closing.add(p);
    p.finally(() => this.#closing.delete(p));
  }
}
