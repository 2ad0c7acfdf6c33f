/**
 * The nftables backend (its rules are rendered by nft_rules.ts). sesame owns one table, `inet sesame`: per door a set of IPv4 and
 * a set of IPv6 sources with per-element timeouts, and one input chain that drops the
 * door's protected ports unless the source is in the door's set. The kernel removes an
 * element when its time is up, daemon or no daemon; established connections continue.
 * The table stays when sesame stops, so the ports stay protected.
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { parseAddress } from "../address.ts";
import type { Door } from "../config/types.ts";
import { FirewallError } from "../errors.ts";
import type { OpenRecord } from "../store/store.ts";
import { Batcher } from "./batcher.ts";
import { type Firewall, type Records, recordsNow, type StartOptions } from "./firewall.ts";
import { adminSets, elementLines, nftRuleset } from "./nft_rules.ts";
import { resolveClosedReply } from "./host_ruleset.ts";
import { canUntrack } from "./untrack_decision.ts";
import { NftSession } from "./nft_session.ts";
import { NftMonitor } from "./nft_monitor.ts";
import type { CommandRunner } from "./runner.ts";

/** Where nft lives on Debian and most distributions. */
export const NFT_PATH = "/usr/sbin/nft";
const TIMEOUT_MS = 10_000;
/** Most commands sent as one nft -i line (64 openings of 3); a larger backlog goes to nft -f. */
const SESSION_LINES = 64 * 3;
/** nft's answer to creating an element that exists. */
const ALREADY_THERE = /File exists/;

function setError(problems: ReadonlyMap<string, string>): FirewallError {
  return new FirewallError(
    [...problems].map(([set, why]) =>
      `nft set "${set}" ${why}: a door with "set" needs it in your own ruleset as a set of addresses with "flags timeout" (see the README)`
    ).join("\n"),
  );
}

/**
 * nftables through `nft -f -` (start, reload, backlogs) and a long-lived `nft -i` session
 * (openings). Openings are batched: while one transaction runs, the next openings queue
 * and go into the next one, so a burst costs a few transactions, not one per knock.
 *
 * @example
 * ```ts ignore
 * // needs root and nft
 * const nft = new NftFirewall(new WorkerRunner());
 * await nft.start(config.doors, []);
 * await nft.open({ door: "ssh", source: "192.0.2.7", until: Date.now() + 30_000, close: null });
 * ```
 */
export class NftFirewall implements Firewall {
  readonly #runner: CommandRunner;
  readonly #nft: string;
  readonly #now: () => number;
  readonly #session: NftSession | undefined;
  /** sesame's table as the last start left it, without elements (`nft -t`). */
  #expected: string | undefined;
  /** The admin's sets that doors name, and their listing (with handles) after the last start. */
  #adminSets: readonly string[] = [];
  #expectedSets = "";
  /** The sources sesame put into the admin's sets, with their time. */
  readonly #adminElements = new Map<
    string,
    {
      set: string;
      address: string;
      until: number;
      /** sesame created it (it was not in the set already): revoke may delete it. */
      mine: boolean;
    }
  >();
  /** Follows `nft monitor`, once {@link watch} was called. */
  readonly #monitor: NftMonitor;
  /** How the protected ports refuse others, as the last start resolved it. */
  #closedReply: "drop" | "reject" = "drop";
  /** Whether knocks are kept out of conntrack, as the last start decided. */
  #untrack = true;
  #capture: { readonly group: number; readonly addresses?: readonly string[] } | undefined;
  readonly #clock: Clock;
  /** Every use of nft after start goes through here: one transaction at a time. */
  readonly #batcher = new Batcher<readonly string[]>((items) => this.#commit(items));

  /**
   * @param options.mode `session` (default): openings go to one long-lived `nft -i`, and a
   *   backlog of more than 64 to one `nft -f -`; `batch`: every batch runs its own `nft -f -`.
   * @param options.clock wall time for element timeouts, timers for the watch. @default systemClock
   */
  constructor(
    runner: CommandRunner,
    options: { nftPath?: string; clock?: Clock; mode?: "session" | "batch" } = {},
  ) {
    this.#runner = runner;
    this.#nft = options.nftPath ?? NFT_PATH;
    this.#clock = options.clock ?? systemClock;
    this.#now = this.#clock.now;
    this.#session = options.mode === "batch" ? undefined : new NftSession(runner, this.#nft);
    this.#monitor = new NftMonitor(runner, this.#nft, this.#clock);
  }

  async start(doors: readonly Door[], records: Records, options: StartOptions = {}): Promise<void> {
    // Alone, between batches of openings: an opening is either in the records written
    // here or applied after them, never overwritten by them.
    const ownTable = await this.#batcher.exclusive(() =>
      this.#replace(doors, recordsNow(records), options)
    );
    // Start the session now (a no-op transaction), so the first opening does not pay for it.
    // Only a warm-up: the table is in place, so a failure here (another tool flushing the
    // ruleset this very moment, which the watch repairs) does not fail the start.
    if (this.#session && ownTable) {
      await this.#batcher.add(["add element inet sesame session_probe { 127.0.0.1 timeout 1s }"])
        .catch(() => {});
    }
  }

  /** The table and the admin sets' elements written as the config and records say. */
  async #replace(
    doors: readonly Door[],
    records: readonly OpenRecord[],
    options: StartOptions,
  ): Promise<boolean> {
    const wanted = adminSets(doors);
    const problems = await this.#checkSets(wanted);
    // A start or a reload changes nothing when a set is wrong; a repair puts sesame's own
    // table back first, and then reports the set.
    if (problems.size > 0 && !options.repair) throw setError(problems);
    if (!options.repair) {
      const list = (args: readonly string[]) => this.#list(args);
      this.#closedReply = await resolveClosedReply(options.closedReply, list, this.#runner);
      this.#capture = options.capture;
      this.#untrack = await canUntrack(this.#runner, doors, "nft");
    } else {
      // The rules changed under sesame (a firewall reload may have brought a stateful
      // ruleset): untracked knocks behind it would lock knockers out.
      this.#untrack = await canUntrack(this.#runner, doors, "nft", this.#untrack);
    }
    await this.#run(
      nftRuleset(doors, records, this.#now(), {
        closedReply: this.#closedReply,
        untrack: this.#untrack,
        ...(this.#capture ? { capture: this.#capture } : {}),
      }),
    );
    // The open sources of doors in the admin's sets go back in (the admin may have
    // reloaded the ruleset, which empties them).
    const now = this.#now();
    const names = new Set(doors.filter((d) => d.open?.nft?.sets).map((d) => d.name));
    this.#adminElements.clear();
    for (const r of records.filter((r) => names.has(r.door) && r.until > now)) {
      const address = parseAddress(r.source);
      const set = r.firewall?.sets?.[address?.family === 6 ? "v6" : "v4"];
      if (!set || problems.has(set)) continue;
      const entry = { set, address: r.source, until: r.until, mine: false };
      this.#adminElements.set(`${set}|${r.source}`, entry);
      await this.#run(elementLines(r, now).join("\n") + "\n").then(
        () => entry.mine = true,
        (e) => {
          if (!ALREADY_THERE.test((e as Error).message)) throw e;
        },
      );
    }
    // Without doors of its own sesame's table is absent on purpose; otherwise an empty
    // listing means another tool removed it right after: not intact, the watch repairs.
    const listing = await this.#listTable();
    const ownTable = doors.some((d) => d.open?.nft && !d.open.nft.sets);
    this.#expected = ownTable ? listing || undefined : listing;
    this.#adminSets = [...wanted.keys()];
    this.#expectedSets = await this.#listSets(this.#adminSets);
    if (problems.size > 0) throw setError(problems);
    return ownTable;
  }

  /**
   * What is wrong with the admin's sets: missing, of the other family, without
   * `flags timeout` (sesame's elements would never expire), or an interval set.
   */
  async #checkSets(
    sets: ReadonlyMap<string, "ipv4_addr" | "ipv6_addr">,
  ): Promise<Map<string, string>> {
    const problems = new Map<string, string>();
    for (const [set, type] of sets) {
      const info = await this.#setInfo(set);
      const flags = Array.isArray(info?.flags) ? info.flags : [];
      if (!info) problems.set(set, "does not exist");
      else if (info.type !== type) problems.set(set, `holds ${info.type}, not ${type}`);
      else if (!flags.includes("timeout")) problems.set(set, `has no "flags timeout"`);
      else if (flags.includes("interval")) problems.set(set, "is an interval set");
    }
    return problems;
  }

  open(record: OpenRecord): Promise<void> {
    let lines: string[];
    try {
      lines = elementLines(record, this.#now());
    } catch (e) {
      return Promise.reject(e);
    }
    const own = record.firewall?.sets?.[record.source.includes(":") ? "v6" : "v4"];
    const opening = this.#batcher.add(lines);
    if (!own) return opening;
    const key = `${own}|${record.source}`;
    const before = this.#adminElements.get(key);
    const entry = {
      set: own,
      address: record.source,
      until: record.until,
      mine: before !== undefined && before.mine && before.until > this.#now(),
    };
    this.#adminElements.set(key, entry);
    // In the admin's set the source may be there already (the admin's own element, or
    // ours from a moment ago): it is let in, which is what the door is for.
    return opening.then(() => {
      entry.mine = true;
    }, (e) => ALREADY_THERE.test((e as Error).message) ? undefined : Promise.reject(e));
  }

  close(_record: OpenRecord): Promise<void> {
    return Promise.resolve(); // the kernel expires the element
  }

  /**
   * Deletes the element now; an `add` first makes the delete succeed when the element
   * already expired (and gives the session an answer). In the admin's own set only an
   * element sesame created goes: an address that was in the set before stays, as the
   * admin made it.
   */
  revoke(record: OpenRecord): Promise<void> {
    let lines: string[];
    try {
      lines = elementLines(record, this.#now());
    } catch (e) {
      return Promise.reject(e);
    }
    const target = lines[0].replace(/^(add|create) element /, "").replace(
      / timeout \d+ms \}$/,
      " }",
    );
    if (record.firewall?.sets) {
      const key = `${target.slice(0, target.indexOf(" {"))}|${record.source}`;
      const entry = this.#adminElements.get(key);
      this.#adminElements.delete(key);
      if (!entry?.mine || entry.until <= this.#now()) return Promise.resolve();
    }
    return this.#batcher.add([`add element ${target}`, `delete element ${target}`]);
  }

  async leftover(): Promise<boolean> {
    return (await this.#listTable()) !== "";
  }

  async intact(): Promise<boolean> {
    return this.#expected !== undefined && (await this.#listTable()) === this.#expected &&
      (await this.#listSets(this.#adminSets)) === this.#expectedSets &&
      await this.#adminElementsPresent();
  }

  /**
   * The sources sesame let into the admin's sets are still there (until their time): a
   * ruleset reload recreates a set empty, with the same listing and handles as before.
   */
  async #adminElementsPresent(): Promise<boolean> {
    const now = this.#now();
    const bySet = new Map<string, string[]>();
    for (const [key, e] of this.#adminElements) {
      if (e.until <= now + 1000) this.#adminElements.delete(key); // expiring by itself
      else bySet.set(e.set, [...bySet.get(e.set) ?? [], e.address]);
    }
    for (const [set, addresses] of bySet) {
      const present = await this.#setElements(set);
      if (addresses.some((a) => !present.has(a))) return false;
    }
    return true;
  }

  /** The addresses in one of the admin's sets. */
  async #setElements(set: string): Promise<Set<string>> {
    const found = new Set<string>();
    const elements = (await this.#setInfo(set))?.elem;
    for (const e of Array.isArray(elements) ? elements : []) {
      const value = typeof e === "string" ? e : e?.elem?.val;
      if (typeof value === "string") found.add(value);
    }
    return found;
  }

  /** One of the admin's sets as nft's JSON describes it, or undefined when it is not there. */
  async #setInfo(
    set: string,
  ): Promise<{ type?: unknown; flags?: unknown; elem?: unknown } | undefined> {
    const output = await this.#list(["-j", "list", "set", ...set.split(" ")]);
    try {
      return (JSON.parse(output || "{}").nftables ?? []).find((o: { set?: unknown }) => o.set)
        ?.set;
    } catch {
      return undefined;
    }
  }

  /** Calls `onChange` when sesame's table may have changed: see {@link NftMonitor}. */
  watch(onChange: () => void): void {
    this.#monitor.start(onChange);
  }

  async shutdown(): Promise<void> {
    await this.#monitor.stop();
    await this.#session?.close();
  }

  /**
   * The admin's sets as listed with their handles and without elements: a set recreated
   * by a ruleset reload has a new handle (and lost its elements).
   */
  async #listSets(sets: readonly string[]): Promise<string> {
    const listings: string[] = [];
    for (const set of sets) listings.push(await this.#listSet(set));
    return listings.join("\n");
  }

  #listSet(set: string): Promise<string> {
    return this.#list(["-a", "-t", "list", "set", ...set.split(" ")]);
  }

  /** sesame's table without its elements and counter values, or "" when it is gone. */
  #listTable(): Promise<string> {
    return this.#list(["-t", "-s", "list", "table", "inet", "sesame"]);
  }

  /**
   * Packets the capture rules handed to the NFLOG group so far (their counters), or
   * undefined when there are none to read: set against what the reader parsed, the
   * difference is what the reader lost.
   */
  async captureLogged(): Promise<number | undefined> {
    const output = await this.#list(["-j", "list", "chain", "inet", "sesame", "capture"]);
    if (!output) return undefined;
    try {
      let total = 0;
      for (const item of JSON.parse(output).nftables ?? []) {
        const expr = item.rule?.expr as Record<string, { packets?: number }>[] | undefined;
        if (!expr?.some((e) => "log" in e)) continue;
        for (const e of expr) if (e.counter) total += e.counter.packets ?? 0;
      }
      return total;
    } catch {
      return undefined;
    }
  }

  /** What `nft ARGS` prints, or "" when it fails (what it lists is not there). */
  async #list(args: readonly string[]): Promise<string> {
    const result = await this.#runner.run(
      [this.#nft, ...args],
      { timeoutMs: TIMEOUT_MS, essential: true, capture: true },
    );
    return result.code === 0 ? result.output ?? "" : "";
  }

  /**
   * One batch: a few lines to the running session (lowest latency), a backlog to nft -f.
   * A batch that fails is retried opening by opening, so one bad opening cannot fail the
   * others (nft transactions are all or nothing).
   */
  async #commit(items: (readonly string[])[]): Promise<(Error | undefined)[]> {
    const send = async (lines: readonly string[]) => {
      if (this.#session && lines.length <= SESSION_LINES) await this.#session.run(lines);
      else await this.#run(lines.join("\n") + "\n");
    };
    try {
      await send(items.flat());
      return items.map(() => undefined);
    } catch (e) {
      if (items.length === 1) return [e as Error];
      const errors: (Error | undefined)[] = [];
      for (const item of items) errors.push(await send(item).then(() => undefined, (e) => e));
      return errors;
    }
  }

  async #run(script: string): Promise<void> {
    const result = await this.#runner.run([this.#nft, "-f", "-"], {
      timeoutMs: TIMEOUT_MS,
      input: script,
    });
    if (result.code !== 0) {
      throw new FirewallError(
        `nft failed (${result.timedOut ? "timed out" : `exit ${result.code}`}): ${result.error}`,
      );
    }
  }
}
