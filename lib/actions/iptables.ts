/**
 * The iptables backend, for hosts without nftables. sesame owns one chain, SESAME, in the
 * filter table of iptables and ip6tables, jumped to from INPUT: established connections
 * pass, each open source has an ACCEPT rule for the door's ports, and the ports are
 * dropped for everyone else. An ACCEPT rule carries `-m time --datestop`, so the kernel
 * stops honouring it at the door's time even if sesame died; sesame also deletes it then.
 * The chain is rebuilt (one iptables-restore transaction per family) at start and on
 * reload, which drops rules a crash left behind. It stays when sesame stops. Knocks stay
 * out of conntrack through two chains in the raw table (iptables_raw.ts).
 * @module
 */
import { type Clock, systemClock, type Timer } from "../clock.ts";
import type { Door } from "../config/types.ts";
import { FirewallError } from "../errors.ts";
import type { OpenRecord } from "../store/store.ts";
import { Batcher } from "./batcher.ts";
import { type Firewall, type Records, recordsNow, type StartOptions } from "./firewall.ts";
import type { CommandRunner } from "./runner.ts";
import { RAW_CHAINS, rawScript } from "./iptables_raw.ts";
import { canUntrack } from "./untrack_decision.ts";
import {
  acceptRule,
  CHAIN,
  familyOf,
  type IptablesFamily,
  iptablesScript,
} from "./iptables_rules.ts";

export { acceptRule, type IptablesFamily, iptablesScript };

const TIMEOUT_MS = 10_000;
/** More closes than this in one batch rebuild the chain instead. */
const REBUILD_AT = 64;
/** Changes per iptables-restore transaction: far inside the time limit with 10 000 rules. */
const CHUNK = 128;

/** One change to the chain: a source let in (replacing its older rule), or let go. */
type Change =
  | { readonly kind: "open"; readonly rule: string; readonly old?: string }
  | { readonly kind: "close"; readonly rule: string };

function changeLines(change: Change): string[] {
  if (change.kind === "close") return [`-D ${CHAIN} ${change.rule}`];
  return [`-I ${CHAIN} 2 ${change.rule}`, ...(change.old ? [`-D ${CHAIN} ${change.old}`] : [])];
}

/** Tool paths, per family. */
export interface IptablesPaths {
  /** iptables. @default "/usr/sbin/iptables" */
  v4: string;
  /** ip6tables. @default "/usr/sbin/ip6tables" */
  v6: string;
}

const DEFAULT_PATHS: IptablesPaths = { v4: "/usr/sbin/iptables", v6: "/usr/sbin/ip6tables" };

/** How often the chain and the jump are checked (iptables has no change feed sesame follows). */
const POLL_MS = 250;

/**
 * iptables and ip6tables through iptables-restore. Openings and closings are batched per
 * family like the nft backend's.
 *
 * @example
 * ```ts ignore
 * // needs root and iptables
 * const iptables = new IptablesFirewall(new WorkerRunner());
 * await iptables.start(config.doors, []);
 * ```
 */
export class IptablesFirewall implements Firewall {
  readonly #runner: CommandRunner;
  readonly #paths: IptablesPaths;
  readonly #now: () => number;
  /** The ACCEPT rule installed per door and source, to extend or delete it exactly. */
  readonly #rules = new Map<string, string>();
  /** Per family, the chain's rules but the per-source ones, as the last start left them. */
  #expected: Record<IptablesFamily, string> | undefined;
  #poll: Timer | undefined;
  readonly #clock: Clock;
  /** The doors of the last start: a chain rebuild needs their DROP rules. */
  #doors: readonly Door[] = [];
  /** How the protected ports refuse others, as the last start resolved it. */
  #closedReply: "drop" | "reject" = "drop";
  /** Whether knocks are kept out of conntrack, as the last start decided. */
  #untrack = false;
  readonly #batchers: Record<IptablesFamily, Batcher<Change>> = {
    v4: new Batcher((items) => this.#apply("v4", items)),
    v6: new Batcher((items) => this.#apply("v6", items)),
  };

  /** @param options.clock wall time for rule timeouts, the timer of the watch. @default systemClock */
  constructor(runner: CommandRunner, options: { paths?: IptablesPaths; clock?: Clock } = {}) {
    this.#runner = runner;
    this.#paths = options.paths ?? DEFAULT_PATHS;
    this.#clock = options.clock ?? systemClock;
    this.#now = this.#clock.now;
  }

  async start(doors: readonly Door[], records: Records, options: StartOptions = {}): Promise<void> {
    if (!options.repair) {
      this.#closedReply = await this.#resolveReply(options.closedReply);
      this.#untrack = await canUntrack(this.#runner, doors, "iptables");
    } else {
      // The rules changed under sesame: decided again (see NftFirewall's start).
      this.#untrack = await canUntrack(this.#runner, doors, "iptables", this.#untrack);
    }
    // Alone on both families: no batch of openings or closings interleaves with the chain
    // being rewritten, and the records are read when it is.
    return this.#batchers.v4.exclusive(() =>
      this.#batchers.v6.exclusive(() => this.#replace(doors, recordsNow(records)))
    );
  }

  /** `auto`: DROP when the INPUT chain's policy drops (closed ports are silent), else REJECT. */
  async #resolveReply(wanted: "auto" | "drop" | "reject" = "drop"): Promise<"drop" | "reject"> {
    if (wanted !== "auto") return wanted;
    const result = await this.#runner.run([this.#paths.v4, "-w", "-S", "INPUT"], {
      timeoutMs: TIMEOUT_MS,
      essential: true,
      capture: true,
    });
    if (result.code !== 0) return "drop";
    // Silent when INPUT drops by policy, or ends in DROP or a REJECT other than a TCP reset.
    const lines = (result.output ?? "").trim().split("\n");
    const last = lines.at(-1) ?? "";
    return lines.includes("-P INPUT DROP") ||
        /-j (DROP|REJECT)(?! --reject-with tcp-reset)/.test(last)
      ? "drop"
      : "reject";
  }

  async #replace(doors: readonly Door[], records: readonly OpenRecord[]): Promise<void> {
    const now = this.#now();
    for (const family of ["v4", "v6"] as const) {
      // Knocks untracked first: the listeners are bound already.
      await this.#run(family, rawScript(doors, this.#untrack));
      for (const { chain, from } of RAW_CHAINS) await this.#jump(family, "raw", from, chain);
      await this.#run(family, iptablesScript(family, doors, records, now, [], this.#closedReply));
      await this.#jump(family, "filter", "INPUT", CHAIN);
    }
    const expected = { v4: await this.#structure("v4"), v6: await this.#structure("v6") };
    // Gone already (another tool flushed it right after): nothing counts as intact until a
    // repair puts it back.
    const whole = (t: string) =>
      t.startsWith("0\n") && t.endsWith("jump true") &&
      RAW_CHAINS.every(({ chain, from }) => t.includes(`-A ${from} -j ${chain}\n`));
    this.#expected = whole(expected.v4) && whole(expected.v6) ? expected : undefined;
    this.#rules.clear();
    this.#doors = doors;
    const names = new Set(doors.filter((d) => d.open?.iptables).map((d) => d.name));
    for (const r of records) {
      if (r.firewall?.kind === "iptables" && names.has(r.door) && r.until > now) {
        this.#rules.set(key(r), acceptRule(r, now));
      }
    }
  }

  open(record: OpenRecord): Promise<void> {
    let family: IptablesFamily;
    try {
      family = familyOf(record.source);
    } catch (e) {
      return Promise.reject(e);
    }
    const rule = acceptRule(record, this.#now());
    const old = this.#rules.get(key(record));
    if (old === rule) return Promise.resolve();
    this.#rules.set(key(record), rule);
    return this.#batchers[family].add({ kind: "open", rule, old });
  }

  revoke(record: OpenRecord): Promise<void> {
    return this.close(record);
  }

  async close(record: OpenRecord): Promise<void> {
    const rule = this.#rules.get(key(record));
    if (!rule) return;
    this.#rules.delete(key(record));
    await this.#batchers[familyOf(record.source)].add({ kind: "close", rule });
  }

  /**
   * One batch of changes. Many closes at once (doors opened together closing together)
   * rebuild the chain from what is open: one transaction of n rules instead of n
   * deletions, each a search of the chain. Otherwise the changes go in chunks that finish
   * well inside the time limit; a chunk that fails is retried change by change, so one
   * change cannot fail another (a rule already gone counts as closed).
   */
  async #apply(family: IptablesFamily, changes: Change[]): Promise<(Error | undefined)[]> {
    if (changes.filter((c) => c.kind === "close").length > REBUILD_AT) {
      try {
        await this.#rebuild(family);
        return changes.map(() => undefined);
      } catch { /* fall back to the changes themselves */ }
    }
    const errors: (Error | undefined)[] = [];
    for (let at = 0; at < changes.length; at += CHUNK) {
      const chunk = changes.slice(at, at + CHUNK);
      try {
        await this.#restore(family, chunk.flatMap(changeLines));
        errors.push(...chunk.map(() => undefined));
      } catch {
        for (const change of chunk) {
          try {
            await this.#restore(family, changeLines(change));
            errors.push(undefined);
          } catch (e) {
            errors.push(change.kind === "close" ? undefined : e as Error); // gone is closed
          }
        }
      }
    }
    return errors;
  }

  /** The family's chain rewritten from the rules sesame holds open: kernel and memory agree. */
  async #rebuild(family: IptablesFamily): Promise<void> {
    const rules: string[] = [];
    for (const [k, rule] of this.#rules) {
      if (familyOf(k.slice(k.indexOf("\u0000") + 1)) === family) rules.push(rule);
    }
    await this.#run(
      family,
      iptablesScript(family, this.#doors, [], this.#now(), rules, this.#closedReply),
    );
  }

  async leftover(): Promise<boolean> {
    for (const tool of [this.#paths.v4, this.#paths.v6]) {
      const chain = await this.#runner.run([tool, "-w", "-S", CHAIN], {
        timeoutMs: TIMEOUT_MS,
        essential: true,
        capture: true,
      });
      if (chain.code === 0 && (chain.output ?? "").includes(`-N ${CHAIN}`)) return true;
    }
    return false;
  }

  async intact(): Promise<boolean> {
    if (!this.#expected) return false;
    for (const family of ["v4", "v6"] as const) {
      if ((await this.#structure(family)) !== this.#expected[family]) return false;
    }
    return true;
  }

  /**
   * iptables has no change feed sesame can follow: the chain and the jump are checked
   * every 250 ms (two short commands per family): under a tool that keeps flushing, the
   * protected port stands open at most that long (plus the repair) each time.
   */
  watch(onChange: () => void): void {
    this.#poll ??= this.#clock.setInterval(onChange, POLL_MS);
  }

  shutdown(): Promise<void> {
    this.#clock.clearTimeout(this.#poll);
    this.#poll = undefined;
    return Promise.resolve();
  }

  /** Makes `from` (in `table`) jump to `chain` first, unless it does already. */
  async #jump(family: IptablesFamily, table: string, from: string, chain: string): Promise<void> {
    const tool = this.#paths[family];
    const check = [tool, "-w", "-t", table, "-C", from, "-j", chain];
    const jump = await this.#runner.run(check, { timeoutMs: TIMEOUT_MS });
    if (jump.code === 0) return;
    const insert = [tool, "-w", "-t", table, "-I", from, "1", "-j", chain];
    await this.#check(await this.#runner.run(insert, { timeoutMs: TIMEOUT_MS }), tool);
  }

  /**
   * The SESAME chain without its per-source rules, sesame's lines of the raw table (its
   * chains and the jumps to them), and whether INPUT jumps to SESAME.
   */
  async #structure(family: IptablesFamily): Promise<string> {
    const tool = this.#paths[family];
    const chain = await this.#runner.run(
      [tool, "-w", "-S", CHAIN],
      { timeoutMs: TIMEOUT_MS, essential: true, capture: true },
    );
    const raw = await this.#runner.run(
      [tool, "-w", "-t", "raw", "-S"],
      { timeoutMs: TIMEOUT_MS, essential: true, capture: true },
    );
    const jump = await this.#runner.run(
      [tool, "-w", "-C", "INPUT", "-j", CHAIN],
      { timeoutMs: TIMEOUT_MS, essential: true },
    );
    const rules = (chain.output ?? "").split("\n").filter((l) => l && !l.includes(" -s "));
    const untracked = (raw.output ?? "").split("\n").filter((l) => l.includes("SESAME-KNOCKS"));
    return `${chain.code}\n${rules.join("\n")}\n${raw.code}\n${untracked.join("\n")}\njump ${
      jump.code === 0
    }`;
  }

  #restore(family: IptablesFamily, lines: string[]): Promise<void> {
    return this.#run(family, ["*filter", ...lines, "COMMIT"].join("\n") + "\n");
  }

  async #run(family: IptablesFamily, script: string): Promise<void> {
    const tool = `${this.#paths[family]}-restore`;
    await this.#check(
      await this.#runner.run([tool, "-w", "--noflush"], { timeoutMs: TIMEOUT_MS, input: script }),
      tool,
    );
  }

  #check(result: { code: number; timedOut: boolean; error: string }, tool: string): void {
    if (result.code !== 0) {
      throw new FirewallError(
        `${tool} failed (${
          result.timedOut ? "timed out" : `exit ${result.code}`
        }): ${result.error}`,
      );
    }
  }
}

function key(record: OpenRecord): string {
  return `${record.door}\u0000${record.source}`;
}
